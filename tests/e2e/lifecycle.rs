//! Facilities, staff and enrollment (issue 3), driven through the real
//! binary with curl and openssl on both backends.

use std::path::{Path, PathBuf};

use connect_pki_e2e::{Backend, Server, both_backends, run, text};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn application(name: &str, login: &str) -> Value {
    json!({
        "name": name, "kind": "external", "address": "千歳市東雲町2丁目34番地", "department": "福祉課",
        "manager": {"name": "施設 管理者", "login_id": login, "email": format!("{login}@example.test"), "phone": "0123-24-3131"},
        "purpose_attested": true, "terms_version": "2026-04-01"
    })
}

/// Everyone the tests act as, enrolled through the real flow.
struct World {
    s: Server,
    admin: PathBuf,
    welfare: PathBuf,
    manager_a: PathBuf,
    staff_a: PathBuf,
    manager_b: PathBuf,
    facility_a: i64,
    facility_b: i64,
    staff_a_id: i64,
    staff_a_device: i64,
    staff_a_serial: String,
    manager_b_id: i64,
    manager_b_device: i64,
    manager_b_serial: String,
}

fn register(s: &Server, as_: &Path, facility: i64, login: &str, role: &str) -> i64 {
    let body = json!({"display_name": format!("{login} さん"), "login_id": login, "email": format!("{login}@example.test"), "role": role});
    let (status, out) = s.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(as_), Some(&body));
    assert_eq!(status, 201, "register {login}: {out}");
    out["id"].as_i64().expect("id")
}

fn code_for(s: &Server, as_: &Path, user: i64) -> String {
    let (status, out) = s.api("POST", &format!("/api/v1/users/{user}/enrollment-codes"), Some(as_), None);
    assert_eq!(status, 201, "code: {out}");
    out["code"].as_str().expect("code").to_string()
}

fn approve(s: &Server, as_: &Path, app: &Value) -> (i64, String) {
    let (status, created) = s.public_api("POST", "/api/v1/applications", Some(app));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    let (status, approval) = s.api("POST", &format!("/api/v1/applications/{id}/approve"), Some(as_), None);
    assert_eq!(status, 200, "{approval}");
    (
        approval["facility_id"].as_i64().expect("facility"),
        approval["enrollment_code"]["code"].as_str().expect("code").to_string(),
    )
}

fn whoami(s: &Server, pem: &Path) -> Value {
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(pem), None);
    assert_eq!(status, 200, "{me}");
    me
}

/// The whole path of issue 3: application → approval by welfare_division →
/// manager enrolls (PKCS#12) → manager registers staff → staff enrolls with an
/// `openssl req` CSR → whoami says staff of that facility.
async fn world(backend: Backend) -> World {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();

    // 行政管理課 registers a 福祉課 user, who enrolls a browser-style PKCS#12.
    let welfare_id = register(&s, &admin, 1, "fukushi", "welfare_division");
    let welfare = s.enroll_generated(&code_for(&s, &admin, welfare_id), Some(PASSWORD), "welfare");
    assert_eq!(whoami(&s, &welfare)["role"], "welfare_division");

    // A facility applies on the public API; 福祉課 sees it pending and approves.
    let (status, created) =
        s.public_api("POST", "/api/v1/applications", Some(&application("デイケア南", "minami.kanri")));
    assert_eq!(status, 201, "{created}");
    let app_id = created["id"].as_i64().expect("id");
    let status_url = created["status_url"].as_str().expect("status url").to_string();
    let (_, pending) = s.api("GET", "/api/v1/applications?status=pending", Some(&welfare), None);
    assert!(pending.as_array().expect("list").iter().any(|a| a["id"] == app_id), "{pending}");
    let (status, approval) = s.api("POST", &format!("/api/v1/applications/{app_id}/approve"), Some(&welfare), None);
    assert_eq!(status, 200, "{approval}");
    let facility_a = approval["facility_id"].as_i64().expect("facility");
    let (_, st) = s.public_api("GET", &status_url, None);
    assert_eq!(st["status"], "approved", "{st}");

    // The manager enrolls with the code; openssl opens the PKCS#12.
    let code = approval["enrollment_code"]["code"].as_str().expect("code");
    let manager_a = s.enroll_generated(code, Some(PASSWORD), "manager-a");
    let me = whoami(&s, &manager_a);
    assert_eq!((me["role"].as_str(), me["facility_id"].as_i64()), (Some("facility_manager"), Some(facility_a)));

    // The manager registers staff; staff enrolls with an openssl CSR.
    let staff_a_id = register(&s, &manager_a, facility_a, "hanako", "staff");
    let staff_a = s.enroll_csr(&code_for(&s, &manager_a, staff_a_id), Some(PASSWORD), "staff-a", "/CN=hanako");
    let me = whoami(&s, &staff_a);
    assert_eq!(me["role"], "staff");
    assert_eq!(me["facility_id"], facility_a);
    assert_eq!(me["login_id"], "hanako");
    let staff_a_device = me["device_id"].as_i64().expect("device");
    let staff_a_serial = me["serial"].as_str().expect("serial").to_string();
    let root = s.data("ca/root.pem").display().to_string();
    let issuing = s.data("ca/issuing.pem").display().to_string();
    let o = run(
        "openssl",
        &["verify", "-CAfile", &root, "-untrusted", &issuing, &staff_a.display().to_string()],
        s.dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));

    // A second facility, approved by 行政管理課.
    let (facility_b, code) = approve(&s, &admin, &application("地域包括支援センター北", "kita.kanri"));
    let manager_b = s.enroll_generated(&code, Some(PASSWORD), "manager-b");
    let me = whoami(&s, &manager_b);
    let (manager_b_id, manager_b_device) = (me["user_id"].as_i64().expect("id"), me["device_id"].as_i64().expect("d"));
    let manager_b_serial = me["serial"].as_str().expect("serial").to_string();
    World {
        s,
        admin,
        welfare,
        manager_a,
        staff_a,
        manager_b,
        facility_a,
        facility_b,
        staff_a_id,
        staff_a_device,
        staff_a_serial,
        manager_b_id,
        manager_b_device,
        manager_b_serial,
    }
}

async fn whole_path_from_application_to_staff_device(backend: Backend) {
    let w = world(backend).await;
    // Managers see only their own facility in the list.
    let (_, list) = w.s.api("GET", "/api/v1/facilities", Some(&w.manager_a), None);
    let ids: Vec<i64> = list.as_array().expect("list").iter().filter_map(|f| f["id"].as_i64()).collect();
    assert_eq!(ids, vec![w.facility_a]);
    let (_, users) = w.s.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a), None);
    let hanako =
        users.as_array().expect("users").iter().find(|u| u["login_id"] == "hanako").expect("staff listed").clone();
    assert_eq!(hanako["status"], "active");
    assert_eq!(hanako["devices"][0]["certificates"][0]["serial"], w.staff_a_serial.as_str());
    assert_eq!(hanako["devices"][0]["certificates"][0]["status"], "valid");

    // The audit chain the run produced verifies, and breaks on a direct edit.
    let bin = connect_pki_e2e::binary().display().to_string();
    let data = w.s.data_dir.display().to_string();
    let mut args = vec!["audit", "verify", "--data-dir", data.as_str()];
    let url = w.s.db.url.clone();
    if backend == Backend::Postgres {
        args.extend(["--database-url", url.as_str()]);
    }
    let o = run(&bin, &args, w.s.dir.path());
    assert!(o.status.success() && text(&o).contains("intact"), "{}", text(&o));
    let (_, log) = w.s.api("GET", "/api/v1/audit?limit=10000", Some(&w.admin), None);
    let actions: Vec<&str> = log.as_array().expect("audit").iter().filter_map(|r| r["action"].as_str()).collect();
    for a in [
        "application.submit",
        "application.approve",
        "user.create",
        "enrollment_code.create",
        "enrollment.redeem",
        "device.create",
        "certificate.issue",
    ] {
        assert!(actions.contains(&a), "no {a} in the audit log: {actions:?}");
    }
    let (status, csv) =
        w.s.api("GET", &format!("/api/v1/audit?format=csv&facility_id={}", w.facility_a), Some(&w.admin), None);
    let csv = csv.as_str().expect("csv text").to_string();
    assert_eq!(status, 200);
    assert!(csv.starts_with("id,at,actor,action,target,outcome,detail,facility_id,user_id,hash"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(&format!(",{},", w.facility_a))), "{csv}");

    edit_one_audit_row(&w.s, backend).await;
    let o = run(&bin, &args, w.s.dir.path());
    assert!(!o.status.success(), "audit verify passed after an edit: {}", text(&o));
    assert!(text(&o).contains("BROKEN at record 5"), "{}", text(&o));
}
both_backends!(whole_path_from_application_to_staff_device);

async fn edit_one_audit_row(s: &Server, backend: Backend) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data("connect-pki.db").display()),
        Backend::Postgres => s.db.url.clone(),
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let drop = match backend {
        Backend::Sqlite => "drop trigger audit_log_no_update",
        Backend::Postgres => "drop trigger audit_log_no_change on audit_log",
    };
    sqlx::query(drop).execute(&mut conn).await.expect("drop guard");
    sqlx::query("update audit_log set outcome = 'refused' where id = 5").execute(&mut conn).await.expect("edit");
}

/// (operation, method, path, body, callers allowed)
type Op<'a> = (&'a str, &'a str, String, Option<Value>, &'a [&'a str]);

/// Every API operation × every role × own and other facility, against a
/// table written out here (not derived from the policy code).
async fn authorization_matrix_over_the_api(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    // (name, own facility for this caller, other facility)
    let callers: Vec<(&str, &PathBuf, i64, i64)> = vec![
        ("admin", &w.admin, 1, w.facility_a),
        ("welfare", &w.welfare, 1, w.facility_a),
        ("manager", &w.manager_a, w.facility_a, w.facility_b),
        ("staff", &w.staff_a, w.facility_a, w.facility_b),
    ];
    // Targets in the caller's own facility and in the other one.
    let user_in = |f: i64| {
        if f == w.facility_b {
            w.manager_b_id
        } else if f == w.facility_a {
            w.staff_a_id
        } else {
            1
        }
    };
    let device_in = |f: i64| {
        if f == w.facility_b {
            w.manager_b_device
        } else if f == w.facility_a {
            w.staff_a_device
        } else {
            1
        }
    };
    let admin_serial = s.init["bootstrap"]["serial"].as_str().expect("serial").to_string();
    let serial_in = |f: i64| {
        if f == w.facility_b {
            w.manager_b_serial.clone()
        } else if f == w.facility_a {
            w.staff_a_serial.clone()
        } else {
            admin_serial.clone()
        }
    };
    let bad_user = json!({"display_name": "x", "login_id": "X", "email": "x@example.test"});
    let mut failures = Vec::new();
    for (who, pem, own, other) in &callers {
        for (scope, f) in [("own", *own), ("other", *other)] {
            // (operation, method, path, body, roles allowed in this scope)
            let ops: Vec<Op> = vec![
                ("whoami", "GET", "/api/v1/whoami".into(), None, &["admin", "welfare", "manager", "staff"]),
                ("openapi", "GET", "/api/v1/openapi.json".into(), None, &["admin", "welfare", "manager", "staff"]),
                ("list applications", "GET", "/api/v1/applications".into(), None, &["admin", "welfare"]),
                ("approve", "POST", "/api/v1/applications/999999/approve".into(), None, &["admin", "welfare"]),
                (
                    "reject",
                    "POST",
                    "/api/v1/applications/999999/reject".into(),
                    Some(json!({"reason": "x"})),
                    &["admin", "welfare"],
                ),
                ("list facilities", "GET", "/api/v1/facilities".into(), None, &["admin", "welfare", "manager"]),
                (
                    "read facility",
                    "GET",
                    format!("/api/v1/facilities/{f}"),
                    None,
                    if scope == "own" { &["admin", "welfare", "manager"] } else { &["admin", "welfare"] },
                ),
                ("resume facility", "POST", format!("/api/v1/facilities/{f}/resume"), None, &["admin"]),
                ("suspend facility", "POST", "/api/v1/facilities/999999/suspend".into(), None, &["admin"]),
                ("close facility", "POST", "/api/v1/facilities/999999/close".into(), None, &["admin"]),
                (
                    "register user",
                    "POST",
                    format!("/api/v1/facilities/{f}/users"),
                    Some(bad_user.clone()),
                    if scope == "own" { &["admin", "manager"] } else { &["admin"] },
                ),
                (
                    "list users",
                    "GET",
                    format!("/api/v1/facilities/{f}/users"),
                    None,
                    if scope == "own" { &["admin", "manager"] } else { &["admin"] },
                ),
                (
                    "enrollment code",
                    "POST",
                    format!("/api/v1/users/{}/enrollment-codes", user_in(f)),
                    None,
                    if scope == "own" { &["admin", "manager"] } else { &["admin"] },
                ),
                (
                    "read device",
                    "GET",
                    format!("/api/v1/devices/{}", device_in(f)),
                    None,
                    if scope == "own" { &["admin", "manager"] } else { &["admin"] },
                ),
                (
                    "read certificate",
                    "GET",
                    format!("/api/v1/certificates/{}", serial_in(f)),
                    None,
                    if scope == "own" { &["admin", "manager"] } else { &["admin"] },
                ),
                (
                    "renew",
                    "POST",
                    "/api/v1/certificates/renew".into(),
                    Some(json!({"csr": "not a csr"})),
                    &["admin", "welfare", "manager", "staff"],
                ),
                ("audit", "GET", "/api/v1/audit?limit=1".into(), None, &["admin"]),
            ];
            for (op, method, path, body, allowed) in ops {
                let (status, out) = s.api(method, &path, Some(pem), body.as_ref());
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
    let (status, _) = s.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_b), Some(&w.manager_a), None);
    assert_eq!(status, 403);
    let (status, _) = s.api("GET", &format!("/api/v1/devices/{}", w.staff_a_device), Some(&w.manager_b), None);
    assert_eq!(status, 403);
    let body =
        json!({"display_name": "x", "login_id": "newadmin", "email": "x@example.test", "role": "admin_division"});
    let (status, out) =
        s.api("POST", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a), Some(&body));
    assert_eq!(status, 403, "{out}");
}
both_backends!(authorization_matrix_over_the_api);

/// Bad inputs: each gets its status and a JSON error, and nothing is created.
async fn bad_inputs_get_clear_errors_and_change_nothing(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let (_, before) = s.api("GET", "/api/v1/audit?limit=10000", Some(&w.admin), None);
    let audit_before = before.as_array().expect("audit").len();

    // Malformed JSON, unknown facility kind, oversize body, not JSON.
    let (code, status, body) = s
        .curl_public("/api/v1/applications", &["-H", "content-type: application/json", "--data-binary", "{\"name\": "]);
    assert_eq!((code, status), (0, 400), "{body}");
    assert!(body.contains("malformed_json"), "{body}");
    let mut app = application("x", "someone");
    app["kind"] = "spaceship".into();
    let (status, out) = s.public_api("POST", "/api/v1/applications", Some(&app));
    assert_eq!(status, 422, "{out}");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("spaceship")), "{out}");
    let mut big = application("x", "someone");
    big["address"] = "あ".repeat(100_000).into();
    let (status, out) = s.public_api("POST", "/api/v1/applications", Some(&big));
    assert_eq!(status, 413, "{out}");
    let (_, status, body) = s.curl_public("/api/v1/applications", &["--data-binary", "name=x"]);
    assert_eq!(status, 415, "{body}");
    let mut no_purpose = application("x", "someone");
    no_purpose["purpose_attested"] = false.into();
    let (status, out) = s.public_api("POST", "/api/v1/applications", Some(&no_purpose));
    assert_eq!((status, out["error"]["code"].as_str()), (422, Some("invalid")), "{out}");

    // Duplicate login ID: at application time and at registration.
    let (status, out) = s.public_api("POST", "/api/v1/applications", Some(&application("x", "hanako")));
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("conflict")), "{out}");
    let body = json!({"display_name": "別の花子", "login_id": "hanako", "email": "h2@example.test"});
    let (status, out) =
        s.api("POST", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a), Some(&body));
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("conflict")), "{out}");

    // Codes: reused, expired, locked.
    let user = register(s, &w.manager_a, w.facility_a, "jiro", "staff");
    let code = code_for(s, &w.manager_a, user);
    // Bad CSRs first: none of them uses the code or counts as a wrong try.
    let (_, good_csr) = s.openssl_csr("jiro-ok", "/CN=jiro", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let der = s.scratch("jiro-ok.der");
    let o = run(
        "openssl",
        &[
            "req",
            "-in",
            &s.scratch("jiro-ok.csr").display().to_string(),
            "-outform",
            "DER",
            "-out",
            &der.display().to_string(),
        ],
        s.dir.path(),
    );
    assert!(o.status.success());
    let mut bytes = std::fs::read(&der).expect("der");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&der, &bytes).expect("write");
    let o = run(
        "openssl",
        &[
            "req",
            "-inform",
            "DER",
            "-in",
            &der.display().to_string(),
            "-out",
            &s.scratch("broken.csr").display().to_string(),
        ],
        s.dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let broken = std::fs::read_to_string(s.scratch("broken.csr")).expect("csr");
    let (_, rsa1024) = s.openssl_csr("weak", "/CN=jiro", &["rsa:1024"]);
    let (_, claims_admin) = s.openssl_csr("claims", "/CN=admin", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    for (csr, status_want, code_want) in [
        (broken, 400, "bad_csr"),
        (rsa1024, 422, "key_not_allowed"),
        (claims_admin, 422, "csr_subject_mismatch"),
        ("garbage".to_string(), 400, "bad_csr"),
    ] {
        let (status, out) =
            s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "csr": csr, "password": PASSWORD})));
        assert_eq!((status, out["error"]["code"].as_str()), (status_want, Some(code_want)), "{out}");
    }
    // Missing password on first enrollment.
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "csr": good_csr})));
    assert_eq!((status, out["error"]["code"].as_str()), (422, Some("password_required")), "{out}");
    let (_, users) = s.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a), None);
    let jiro = users.as_array().expect("users").iter().find(|u| u["login_id"] == "jiro").expect("jiro").clone();
    assert_eq!(jiro["devices"].as_array().map(Vec::len), Some(0), "a refused enrollment created a device: {jiro}");
    assert_eq!(jiro["status"], "invited");

    // The code still works after all that; then it is used up.
    let (status, out) =
        s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "csr": good_csr, "password": PASSWORD})));
    assert_eq!(status, 201, "{out}");
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "csr": good_csr})));
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("code_used")), "{out}");

    // Expired: a code whose expiry has passed (set in the database, as time would).
    let code = code_for(s, &w.manager_a, user);
    expire_codes(s, backend).await;
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "generate_key": true})));
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("code_expired")), "{out}");

    // Locked: five wrong secrets, then even the right one is refused.
    let code = code_for(s, &w.manager_a, user);
    let (id, _) = code.split_once('-').expect("id");
    for i in 0..5 {
        let wrong = format!("{id}-0000-0000-0000-000{i}");
        let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": wrong, "generate_key": true})));
        let want = if i < 4 { "invalid_code" } else { "code_locked" };
        assert_eq!(out["error"]["code"].as_str(), Some(want), "try {i}: {status} {out}");
    }
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "generate_key": true})));
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("code_locked")), "{out}");
    let (_, users) = s.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a), None);
    let jiro = users.as_array().expect("users").iter().find(|u| u["login_id"] == "jiro").expect("jiro").clone();
    assert_eq!(jiro["devices"].as_array().map(Vec::len), Some(1), "{jiro}");

    // Nothing above created a facility, an application or a user beyond jiro.
    let (_, facilities) = s.api("GET", "/api/v1/facilities", Some(&w.admin), None);
    assert_eq!(facilities.as_array().map(Vec::len), Some(3));
    let (_, apps) = s.api("GET", "/api/v1/applications", Some(&w.admin), None);
    assert_eq!(apps.as_array().map(Vec::len), Some(2));
    let (_, after) = s.api("GET", "/api/v1/audit?limit=10000", Some(&w.admin), None);
    let new: Vec<String> = after.as_array().expect("audit")[audit_before..]
        .iter()
        .map(|r| format!("{} {}", r["action"].as_str().unwrap_or(""), r["outcome"].as_str().unwrap_or("")))
        .collect();
    assert!(!new.iter().any(|a| a.starts_with("application.submit") || a.starts_with("facility.")), "{new:?}");
}
both_backends!(bad_inputs_get_clear_errors_and_change_nothing);

async fn expire_codes(s: &Server, backend: Backend) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data("connect-pki.db").display()),
        Backend::Postgres => s.db.url.clone(),
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query("update enrollment_codes set expires_at = 1000 where redeemed_at is null")
        .execute(&mut conn)
        .await
        .expect("expire");
}

/// Renewal over mTLS: a new certificate for the same device; the old one no
/// longer identifies anyone.
async fn renewal_supersedes_the_presented_certificate(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let (key, csr) = s.openssl_csr("staff-a-2", "/CN=hanako", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (status, out) = s.api("POST", "/api/v1/certificates/renew", Some(&w.staff_a), Some(&json!({"csr": csr})));
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["device_id"], w.staff_a_device);
    assert_eq!(out["superseded_serial"], w.staff_a_serial.as_str());
    let renewed = s.scratch("staff-a-2.pem");
    std::fs::write(
        &renewed,
        format!("{}{}", out["certificate"].as_str().expect("cert"), std::fs::read_to_string(key).expect("key")),
    )
    .expect("write");
    let me = whoami(s, &renewed);
    assert_eq!((me["device_id"].as_i64(), me["login_id"].as_str()), (Some(w.staff_a_device), Some("hanako")));
    // The superseded certificate no longer gets through the handshake.
    let (code, status, out) = s.curl_api("/api/v1/whoami", &["--cert", &w.staff_a.display().to_string()]);
    assert!(code != 0 && status == 0, "superseded certificate accepted: {code} {status} {out}");
    let (_, cert) = s.api("GET", &format!("/api/v1/certificates/{}", w.staff_a_serial), Some(&w.manager_a), None);
    assert_eq!((cert["status"].as_str(), cert["reason"].as_str()), (Some("superseded"), Some("superseded")), "{cert}");
}
both_backends!(renewal_supersedes_the_presented_certificate);

/// The Japanese pages: apply with an error shown in Japanese and the typed
/// values kept, then successfully; enroll a device from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_japanese_and_keep_what_was_typed() {
    let w = world(Backend::Sqlite).await;
    let s = &w.s;
    let (_, status, html) = s.curl_public("/apply", &[]);
    assert_eq!(status, 200);
    assert!(html.contains("施設利用申請") && html.contains("lang=\"ja\""), "{html}");

    let form = |extra: &[(&str, &str)]| {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in [
            ("name", "こども食堂ひがし"),
            ("kind", "external"),
            ("address", "千歳市東町"),
            ("department", ""),
            ("manager_name", "東 花子"),
            ("manager_login_id", "higashi"),
            ("manager_email", "h@example.test"),
            ("manager_phone", "0123-11-2222"),
            ("purpose_attested", "true"),
            ("terms_version", "2026-04-01"),
        ]
        .iter()
        .map(|(k, v)| (*k, extra.iter().find(|(ek, _)| ek == k).map_or(*v, |(_, ev)| *ev)))
        {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args
    };
    let args = form(&[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, status, html) = s.curl_public("/apply", &refs);
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("担当課（庁外の施設は必須）を確認してください"), "{html}");
    assert!(html.contains("value=\"こども食堂ひがし\""), "typed value lost: {html}");

    let args = form(&[("department", "こども家庭課")]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, status, html) = s.curl_public("/apply", &refs);
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("申請を受け付けました"), "{html}");

    // Enroll from the page with a code issued by the manager.
    let user = register(s, &w.manager_a, w.facility_a, "saburo", "staff");
    let code = code_for(s, &w.manager_a, user);
    let (_, status, html) =
        s.curl_public("/enroll", &["--data-urlencode", &format!("code={code}"), "--data-urlencode", "password=short"]);
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("パスワード（10文字以上）を確認してください"), "{html}");
    let (_, status, html) = s.curl_public(
        "/enroll",
        &["--data-urlencode", &format!("code={code}"), "--data-urlencode", &format!("password={PASSWORD}")],
    );
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("証明書を発行しました") && html.contains("data:application/x-pkcs12;base64,"), "{html}");
    let (_, status, html) = s.curl_public("/enroll", &["--data-urlencode", &format!("code={code}")]);
    assert_eq!(status, 409);
    assert!(html.contains("この登録コードは使用済みです"), "{html}");
}

/// The public endpoints are rate-limited per address, with a JSON 429 that
/// says how long to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_submissions_are_rate_limited() {
    let s = Server::start_with(Backend::Sqlite, &[("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "10")]).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (status, out) =
            s.public_api("POST", "/api/v1/applications", Some(&application(&format!("施設{i}"), &format!("rl{i:02}"))));
        statuses.push(status);
        if status == 429 {
            assert_eq!(out["error"]["code"], "rate_limited", "{out}");
            assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("seconds")), "{out}");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    let (_, _, headers) = s.curl_public(
        "/api/v1/applications",
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &application("x", "rl99").to_string(),
        ],
    );
    assert!(headers.to_lowercase().contains("retry-after:"), "{headers}");
}

/// The OpenAPI document is generated from the handlers and covers every API
/// route with its error responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_route() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (status, doc) = s.api("GET", "/api/v1/openapi.json", Some(&admin), None);
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let routes = [
        ("get", "/api/v1/whoami"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/api/v1/applications"),
        ("get", "/api/v1/applications"),
        ("get", "/api/v1/application-status/{token}"),
        ("post", "/api/v1/applications/{id}/approve"),
        ("post", "/api/v1/applications/{id}/reject"),
        ("get", "/api/v1/facilities"),
        ("get", "/api/v1/facilities/{id}"),
        ("post", "/api/v1/facilities/{id}/suspend"),
        ("post", "/api/v1/facilities/{id}/resume"),
        ("post", "/api/v1/facilities/{id}/close"),
        ("post", "/api/v1/facilities/{id}/users"),
        ("get", "/api/v1/facilities/{id}/users"),
        ("post", "/api/v1/users/{id}/enrollment-codes"),
        ("post", "/api/v1/enroll"),
        ("get", "/api/v1/devices/{id}"),
        ("get", "/api/v1/certificates/{serial}"),
        ("post", "/api/v1/certificates/renew"),
        ("get", "/api/v1/audit"),
        ("post", "/api/v1/certificates/{serial}/revoke"),
        ("post", "/api/v1/certificates/{serial}/hold"),
        ("post", "/api/v1/certificates/{serial}/release"),
        ("post", "/api/v1/devices/{id}/lost"),
        ("post", "/api/v1/users/{id}/retire"),
        ("delete", "/api/v1/users/{id}"),
        ("post", "/api/v1/emergency"),
        ("get", "/api/v1/escalations"),
        ("post", "/api/v1/escalations"),
        ("post", "/api/v1/escalations/{id}/claim"),
        ("post", "/api/v1/escalations/{id}/resolve"),
        ("get", "/api/v1/escalations/{id}/notifications"),
    ];
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the OpenAPI document");
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|k| k.starts_with('4')), "{method} {path} documents no error response");
    }
    let documented: usize =
        doc["paths"].as_object().expect("paths").values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(documented, routes.len(), "routes in the document but not in this test's list");
}
