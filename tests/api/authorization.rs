//! Every API operation × every role × own and other facility, against a
//! table written out here (not derived from the policy code).

use connect_pki_e2e::client::Identity;
use connect_pki_e2e::{Backend, both_backends};
use serde_json::{Value, json};

use crate::world::{World, world};

/// (operation, method, path, body, callers allowed)
type Op = (&'static str, &'static str, String, Option<Value>, &'static [&'static str]);

const EVERYONE: &[&str] = &["admin", "welfare", "manager", "staff"];
const CITY: &[&str] = &["admin", "welfare"];
const ADMIN: &[&str] = &["admin"];
const ADMIN_AND_MANAGER: &[&str] = &["admin", "manager"];

/// The targets a caller's scope resolves to: a user, a device and a
/// certificate serial in facility `f`.
struct Targets {
    user: i64,
    device: i64,
    serial: String,
}

fn targets(w: &World, admin_serial: &str, f: i64) -> Targets {
    if f == w.facility_b {
        Targets { user: w.manager_b.user_id, device: w.manager_b.device_id, serial: w.manager_b.serial.clone() }
    } else if f == w.facility_a {
        Targets { user: w.staff_a.user_id, device: w.staff_a.device_id, serial: w.staff_a.serial.clone() }
    } else {
        Targets { user: 1, device: 1, serial: admin_serial.to_string() }
    }
}

/// The operations with who may call them in `scope` ("own" or "other")
/// when the facility in the path is `f`.
fn ops(scope: &str, f: i64, t: &Targets) -> Vec<Op> {
    let own = scope == "own";
    let in_own = |allowed: &'static [&'static str]| if own { allowed } else { ADMIN };
    let bad_user = json!({"display_name": "x", "login_id": "X", "email": "x@example.test"});
    vec![
        ("whoami", "GET", "/api/v1/whoami".into(), None, EVERYONE),
        ("openapi", "GET", "/api/v1/openapi.json".into(), None, EVERYONE),
        ("list applications", "GET", "/api/v1/applications".into(), None, CITY),
        ("approve", "POST", "/api/v1/applications/999999/approve".into(), None, CITY),
        ("reject", "POST", "/api/v1/applications/999999/reject".into(), Some(json!({"reason": "x"})), CITY),
        ("list facilities", "GET", "/api/v1/facilities".into(), None, &["admin", "welfare", "manager"]),
        (
            "read facility",
            "GET",
            format!("/api/v1/facilities/{f}"),
            None,
            if own { &["admin", "welfare", "manager"] } else { CITY },
        ),
        (
            "read lifetimes",
            "GET",
            format!("/api/v1/facilities/{f}/lifetimes"),
            None,
            if own { &["admin", "welfare", "manager"] } else { CITY },
        ),
        // Nothing set: setting nothing again changes nothing.
        ("set lifetimes", "PUT", format!("/api/v1/facilities/{f}/lifetimes"), Some(json!({})), ADMIN),
        ("resume facility", "POST", format!("/api/v1/facilities/{f}/resume"), None, ADMIN),
        ("suspend facility", "POST", "/api/v1/facilities/999999/suspend".into(), None, ADMIN),
        ("close facility", "POST", "/api/v1/facilities/999999/close".into(), None, ADMIN),
        ("register user", "POST", format!("/api/v1/facilities/{f}/users"), Some(bad_user), in_own(ADMIN_AND_MANAGER)),
        ("list users", "GET", format!("/api/v1/facilities/{f}/users"), None, in_own(ADMIN_AND_MANAGER)),
        (
            "enrollment code",
            "POST",
            format!("/api/v1/users/{}/enrollment-codes", t.user),
            None,
            in_own(ADMIN_AND_MANAGER),
        ),
        ("read device", "GET", format!("/api/v1/devices/{}", t.device), None, in_own(ADMIN_AND_MANAGER)),
        ("read certificate", "GET", format!("/api/v1/certificates/{}", t.serial), None, in_own(ADMIN_AND_MANAGER)),
        ("certificate use", "GET", format!("/api/v1/certificates/{}/use", t.serial), None, in_own(ADMIN_AND_MANAGER)),
        (
            "incident record",
            "GET",
            format!("/api/v1/certificates/{}/incident", t.serial),
            None,
            in_own(ADMIN_AND_MANAGER),
        ),
        ("relying parties", "GET", "/api/v1/relying-parties".into(), None, ADMIN),
        // The list has no facility in its path: each caller gets their scope.
        ("expiring certificates", "GET", "/api/v1/certificates/expiring".into(), None, ADMIN_AND_MANAGER),
        ("renew", "POST", "/api/v1/certificates/renew".into(), Some(json!({"csr": "not a csr"})), EVERYONE),
        // Outside the renewal window for every caller's fresh certificate: 409.
        ("renew with a new key", "POST", "/api/v1/certificates/renew-pkcs12".into(), None, EVERYONE),
        // Allowed, these change nothing: the certificate is valid (nothing to
        // release) and the user active (not deletable yet) — 409 either way.
        (
            "release certificate",
            "POST",
            format!("/api/v1/certificates/{}/release", t.serial),
            None,
            in_own(ADMIN_AND_MANAGER),
        ),
        ("delete user", "DELETE", format!("/api/v1/users/{}", t.user), None, in_own(ADMIN_AND_MANAGER)),
        // An empty change: allowed, changes nothing.
        ("edit user", "PATCH", format!("/api/v1/users/{}", t.user), Some(json!({})), in_own(ADMIN_AND_MANAGER)),
        // To a facility that does not exist: 404 for 行政管理課, 403 for everyone else.
        (
            "transfer user",
            "POST",
            format!("/api/v1/users/{}/transfer", t.user),
            Some(json!({"facility_id": 99_999})),
            ADMIN,
        ),
        ("audit", "GET", "/api/v1/audit?limit=1".into(), None, CITY),
        ("account review", "GET", format!("/api/v1/facilities/{f}/review"), None, in_own(ADMIN_AND_MANAGER)),
        ("confirm review", "POST", format!("/api/v1/facilities/{f}/review"), None, in_own(ADMIN_AND_MANAGER)),
        // The user is no manager of the facility (or not of it): 404 for the city, 403 for the rest.
        (
            "reissue a manager's code",
            "POST",
            format!("/api/v1/facilities/{f}/managers/{}/enrollment-codes", t.user),
            None,
            CITY,
        ),
        ("find people", "GET", "/api/v1/people?q=kanri".into(), None, ADMIN),
        // 行政管理課 may act for a device-management system; nobody else here is one.
        ("mdm challenge", "POST", "/api/v1/mdm/challenges".into(), Some(json!({"user_id": t.user})), in_own(ADMIN)),
        (
            "mdm SCEP profile",
            "POST",
            "/api/v1/mdm/scep-profiles".into(),
            Some(json!({"user_id": t.user})),
            in_own(ADMIN),
        ),
        // Not a device-management account: 422 for 行政管理課, 403 for the rest.
        ("webhook secret", "GET", format!("/api/v1/users/{}/webhook-secret", t.user), None, ADMIN),
        // A new password for the target's emergency reports, shown once.
        (
            "reset emergency password",
            "POST",
            format!("/api/v1/users/{}/emergency-password", t.user),
            None,
            in_own(ADMIN_AND_MANAGER),
        ),
    ]
}

async fn authorization_matrix_over_the_api(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let admin_serial = app.admin_serial();
    // (name, own facility for this caller, other facility)
    let callers: Vec<(&str, &Identity, i64, i64)> = vec![
        ("admin", &app.admin, 1, w.facility_a),
        ("welfare", &w.welfare, 1, w.facility_a),
        ("manager", &w.manager_a.id, w.facility_a, w.facility_b),
        ("staff", &w.staff_a.id, w.facility_a, w.facility_b),
    ];
    let mut failures = Vec::new();
    for (who, id, own, other) in &callers {
        for (scope, f) in [("own", *own), ("other", *other)] {
            for (op, method, path, body, allowed) in ops(scope, f, &targets(&w, &admin_serial, f)) {
                let (status, out) = app.api(method, &path, Some(id), body.as_ref()).await;
                let expect_allowed = allowed.contains(who);
                let was_allowed = status != 403 && status != 401;
                if was_allowed != expect_allowed || (!expect_allowed && out["error"]["code"] != "forbidden") {
                    failures.push(format!("{who} {op} ({scope}): {status} {out}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "authorization mismatches:\n{}", failures.join("\n"));
    // A manager of A can neither see nor touch B, nor act as the city; and the
    // other way round.
    let path = format!("/api/v1/facilities/{}/users", w.facility_b);
    assert_eq!(app.api("GET", &path, Some(&w.manager_a.id), None).await.0, 403);
    let path = format!("/api/v1/devices/{}", w.staff_a.device_id);
    assert_eq!(app.api("GET", &path, Some(&w.manager_b.id), None).await.0, 403);
    let body =
        json!({"display_name": "x", "login_id": "newadmin", "email": "x@example.test", "role": "admin_division"});
    let path = format!("/api/v1/facilities/{}/users", w.facility_a);
    let (status, out) = app.api("POST", &path, Some(&w.manager_a.id), Some(&body)).await;
    assert_eq!(status, 403, "{out}");
}
both_backends!(authorization_matrix_over_the_api);
