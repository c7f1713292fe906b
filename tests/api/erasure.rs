//! アカウント削除 (issue 13, in part): deleting a user removes their name,
//! login ID, e-mail, phone and device labels from every table, from the
//! notification payloads and from the certificates (whose subject is a
//! pseudonym from now on); the audit log refers to them by id and keeps a
//! login ID typed at a failed sign-in only as a keyed hash, so the chain
//! still verifies. The evidence is a dump of the whole database made by a
//! tool no one here wrote, searched as text and as hex (certificate blobs).

use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{AppOptions, Backend, both_backends, spawn_app_with};
use connect_pki_ra::notify::NotifyConfig;
use serde_json::json;

use crate::retention::dump;

/// Where a person's data could hide in a dump: as text, or hex-encoded in a
/// blob (`X'…'` from sqlite3, `\x…` from pg_dump).
fn holds(dump: &str, value: &str) -> bool {
    let hex: String = value.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    dump.contains(value) || dump.to_lowercase().contains(&hex)
}

async fn a_deleted_user_leaves_no_personal_data(backend: Backend) {
    // A webhook that never answers: the notifications stay, with their payloads.
    let notify = NotifyConfig {
        webhook_url: Some("http://127.0.0.1:9/hook".parse().expect("a URL")),
        ..NotifyConfig::default()
    };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = notify)).await;
    let f = app.facility(&app.admin, "消去テスト施設", "kieru.kanri").await;
    let manager = app.manager(&f, "kieru-kanri-pc").await;
    let person = json!({"display_name": "消去 花子", "login_id": "kieru.hanako", "email": "kieru.hanako@example.test"});
    let (status, user) =
        app.api("POST", &format!("/api/v1/facilities/{}/users", f.id), Some(&manager.id), Some(&person)).await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_i64().expect("id");
    let code = app.code_for(&manager.id, user_id).await;
    let device = app.enroll_csr(&code, Some(PASSWORD), "花子のタブレット", "kieru.hanako").await;
    let staff = app.enrolled(device, user_id).await;
    // Her device is reported lost: notifications name her.
    let body = json!({"device_id": staff.device_id, "note": "紛失の届出"});
    let (status, out) = app.api("POST", "/api/v1/escalations", Some(&manager.id), Some(&body)).await;
    assert_eq!(status, 201, "{out}");
    // A sign-in with her login ID mistyped.
    let body = json!({"login_id": "kieru.hanakoo", "password": "違う", "device_id": staff.device_id});
    let (status, _) = app.public_api("POST", "/api/v1/emergency", Some(&body)).await;
    assert_eq!(status, 401);

    // The manager too leaves: their application carried name, e-mail, phone.
    let (status, out) =
        app.api("POST", &format!("/api/v1/users/{user_id}/retire"), Some(&manager.id), Some(&json!({}))).await;
    assert_eq!(status, 200, "{out}");
    let personal_before = dump(&app);
    let hers = ["消去 花子", "kieru.hanako", "kieru.hanako@example.test", "花子のタブレット"];
    for p in hers {
        assert!(holds(&personal_before, p), "{p:?} should be in the database before the deletion");
    }
    // The mistyped ID was never written down, only its keyed hash.
    assert!(!holds(&personal_before, "kieru.hanakoo"), "a typed login ID is in the database");
    assert!(personal_before.contains("login_id_hmac"), "the failed sign-in is not in the audit log");
    let (status, out) = app.api("DELETE", &format!("/api/v1/users/{user_id}"), Some(&manager.id), None).await;
    assert!(status == 200 || status == 204, "{status} {out}");
    for path in [format!("/api/v1/users/{}/retire", manager.user_id), format!("/api/v1/users/{}", manager.user_id)] {
        let (method, body) = if path.ends_with("retire") { ("POST", Some(json!({}))) } else { ("DELETE", None) };
        let (status, out) = app.api(method, &path, Some(&app.admin), body.as_ref()).await;
        assert!(status == 200 || status == 204, "{method} {path}: {status} {out}");
    }

    let after = dump(&app);
    let his = ["kieru.kanri", "kieru.kanri@example.test", "0123-24-3131", "施設 管理者", "kieru-kanri-pc"];
    for p in hers.iter().chain(his.iter()) {
        assert!(!holds(&after, p), "{p:?} is still in the database after the deletion");
    }
    // What happened stays, by id: the revoked certificates on the CRL and in
    // OCSP, the escalation, and an audit chain that still verifies.
    assert!(app.ocsp_status(&staff.id).await.starts_with("revoked"));
    let chain = app.state().store.verify_audit().await.expect("verify");
    assert!(chain.first_break.is_none(), "{chain:?}");
    let (_, audit) = app.api("GET", "/api/v1/audit?action=user.delete", Some(&app.admin), None).await;
    assert_eq!(audit.as_array().map(Vec::len), Some(2), "{audit}");
}
both_backends!(a_deleted_user_leaves_no_personal_data);
