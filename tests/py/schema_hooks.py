"""Schemathesis hooks for tests/e2e/schema.rs (loaded by SCHEMATHESIS_HOOKS).

The run acts as one facility manager, and every operation is fuzzed,
the destructive ones included: retiring users, reporting devices lost,
revoking, holding and releasing certificates, opening escalations. A
generated call that hit the manager's own user, device or certificate
would lock the run out of the API (the handshake is refused from then on),
so those three values, and only those, are turned into ids that exist
nowhere just before the call goes out. Every other user, device and
certificate of the facility stays fair game.

Environment:
  SCHEMA_OWN_USER, SCHEMA_OWN_DEVICE, SCHEMA_OWN_SERIAL  the manager's own ids
  SCHEMA_EXPECT_HTTPS_REQUIRED=1  the run is against the plain listener:
                                  every answer must be 403 https_required
"""

import os

import schemathesis

OWN_USER = os.environ.get("SCHEMA_OWN_USER", "")
OWN_DEVICE = os.environ.get("SCHEMA_OWN_DEVICE", "")
OWN_SERIAL = os.environ.get("SCHEMA_OWN_SERIAL", "").lower()
# Far above any id the run can create, and a serial no certificate has
# (serials are at most 20 bytes; this one is 21).
NOWHERE = 10**15
NOWHERE_SERIAL = "00" * 21


def _same_serial(value) -> bool:
    # The API accepts uppercase and openssl's colons, and a leading zero
    # byte names another serial, so compare the way the server parses.
    text = str(value).replace(":", "").lower()
    return OWN_SERIAL != "" and text == OWN_SERIAL


def _same_id(value, own: str) -> bool:
    return own != "" and str(value) == own


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    if path.startswith("/api/v1/users/") and _same_id(params.get("id"), OWN_USER):
        params["id"] = NOWHERE
    if path.startswith("/api/v1/devices/") and _same_id(params.get("id"), OWN_DEVICE):
        params["id"] = NOWHERE
    if "serial" in params and _same_serial(params["serial"]):
        params["serial"] = NOWHERE_SERIAL
    if isinstance(case.body, dict) and _same_id(case.body.get("device_id"), OWN_DEVICE):
        case.body["device_id"] = NOWHERE
    # Every state change on the API is JSON, also one without a body (a
    # browser form cannot send that type to another site). Without it the
    # bodiless calls would all stop at the 415 and their handlers would
    # never be reached.
    if case.method.upper() not in ("GET", "HEAD", "OPTIONS") and case.media_type is None:
        headers = dict(case.headers or {})
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        case.headers = headers


@schemathesis.check
def https_required_on_plain_http(ctx, response, case):
    """On the plain listener every call to a public API path, whatever its
    method, is refused unread with a JSON 403 https_required."""
    if os.environ.get("SCHEMA_EXPECT_HTTPS_REQUIRED") != "1":
        return None
    if response.status_code != 403:
        raise AssertionError(f"expected 403 https_required on plain HTTP, got {response.status_code}")
    code = (response.json() or {}).get("error", {}).get("code")
    if code != "https_required":
        raise AssertionError(f"expected error code https_required, got {code!r}")
    return None
