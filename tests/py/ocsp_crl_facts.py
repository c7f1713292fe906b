"""Checks OCSP responses and CRLs with Python `cryptography`, a second
implementation: signatures, statuses, reasons, numbers.

usage:
  ocsp_crl_facts.py ocsp RESPONSE.der RESPONDER_ISSUER.pem
  ocsp_crl_facts.py crl CRL.der ISSUER.pem
Prints one JSON object.
"""
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp


def ocsp_facts(data, issuer):
    resp = ocsp.load_der_ocsp_response(data)
    out = {"response_status": resp.response_status.name}
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return out
    # The delegated responder certificate comes with the response; it must be
    # issued by our issuing CA, carry id-kp-OCSPSigning, and have signed it.
    responder = resp.certificates[0]
    responder.verify_directly_issued_by(issuer)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    responder.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    out["signature_verified"] = True
    out["responder_has_ocsp_signing"] = x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    out["responder_nocheck"] = any(isinstance(e.value, x509.OCSPNoCheck) for e in responder.extensions)
    out["responses"] = []
    for r in resp.responses:
        out["responses"].append({
            "serial": format(r.serial_number, "x"),
            "status": r.certificate_status.name,
            "reason": r.revocation_reason.name if r.revocation_reason else None,
            "revoked_at": r.revocation_time_utc.isoformat() if r.revocation_time_utc else None,
            "this_update": r.this_update_utc.isoformat(),
            "next_update": r.next_update_utc.isoformat() if r.next_update_utc else None,
            "validity_seconds": (r.next_update_utc - r.this_update_utc).total_seconds() if r.next_update_utc else None,
        })
    nonce = [e for e in resp.extensions if isinstance(e.value, x509.OCSPNonce)]
    out["nonce"] = nonce[0].value.nonce.hex() if nonce else None
    return out


def crl_facts(data, issuer):
    crl = x509.load_der_x509_crl(data)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoked = {}
    for r in crl:
        reason = None
        for e in r.extensions:
            if isinstance(e.value, x509.CRLReason):
                reason = e.value.reason.name
        revoked[format(r.serial_number, "x")] = reason
    return {
        "signature_valid": crl.is_signature_valid(issuer.public_key()),
        "version": 2 if crl.extensions else 1,
        "crl_number": number,
        "issuer": crl.issuer.rfc4514_string(),
        "next_update_after_last": (crl.next_update_utc - crl.last_update_utc).total_seconds(),
        "revoked": revoked,
    }


def main():
    kind, path, issuer_path = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(path, "rb").read()
    issuer = x509.load_pem_x509_certificate(open(issuer_path, "rb").read())
    print(json.dumps(ocsp_facts(data, issuer) if kind == "ocsp" else crl_facts(data, issuer)))


if __name__ == "__main__":
    main()
