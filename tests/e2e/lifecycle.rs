//! Facilities, staff and enrollment (issue 3), driven through the real
//! binary with curl and openssl on both backends.

use std::path::{Path, PathBuf};

use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, Server, both_backends, run, text};
use serde_json::{Value, json};

/// Everyone the tests act as, enrolled through the real flow.
struct World {
    s: Server,
    admin: PathBuf,
    manager_a: PathBuf,
    facility_a: i64,
    staff_a_serial: String,
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
    let staff_a_serial = me["serial"].as_str().expect("serial").to_string();
    let root = s.data("ca/root.pem").display().to_string();
    let issuing = s.data("ca/issuing.pem").display().to_string();
    let o = s.run("openssl", &["verify", "-CAfile", &root, "-untrusted", &issuing, &staff_a.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));

    World { s, admin, manager_a, facility_a, staff_a_serial }
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
