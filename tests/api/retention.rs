//! Personal data that can be erased (issue 13, in part): a rejected
//! application is purged once its retention ends, and then a dump of the
//! whole database — Python's `sqlite3` `iterdump` or `pg_dump` — holds
//! nothing of the applicant, while the audit log's chain still verifies.

use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::json;

/// The whole database as SQL text, written by a tool no one here wrote.
pub(crate) fn dump(app: &TestApp) -> String {
    let out = match app.db.backend() {
        Backend::Sqlite => {
            let path = connect_pki_server::config::sqlite_path(&app.db.url).expect("a SQLite file");
            let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint('\\n'.join(c.iterdump()))";
            std::process::Command::new("python3").args(["-c", script]).arg(path).output().expect("python3 runs")
        }
        Backend::Postgres => std::process::Command::new("pg_dump")
            .args(["--data-only", "--inserts", &app.db.url])
            .output()
            .expect("pg_dump runs"),
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn a_rejected_application_is_purged_with_its_personal_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut form = application("消去される施設", "erase.taro");
    form["manager"] = json!({
        "name": "消去 太郎", "login_id": "erase.taro", "email": "erase.taro@example.test", "phone": "0123-98-7654"
    });
    form["address"] = json!("千歳市消去町9丁目9番地");
    let (status, submitted) = app.public_api("POST", "/api/v1/applications", Some(&form)).await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_i64().expect("id");
    let status_url = submitted["status_url"].as_str().expect("status URL").to_string();
    // The facility's name is free text too: the chain, which can forget
    // nothing, must not hold it (issue 24).
    let personal = ["消去 太郎", "erase.taro", "0123-98-7654", "千歳市消去町", "消去される施設"];

    let reason = json!({"reason": "対象外の事業所です"});
    let (status, out) =
        app.api("POST", &format!("/api/v1/applications/{id}/reject"), Some(&app.admin), Some(&reason)).await;
    assert_eq!(status, 200, "{out}");
    // Kept while the applicant may still read the reason.
    app.clock.advance(time::Duration::days(89));
    let purged = connect_pki_ra::applications::purge_rejected(app.state()).await.expect("purge");
    assert!(purged.is_empty(), "purged too early: {purged:?}");
    let (status, _) = app.public_api("GET", &status_url, None).await;
    assert_eq!(status, 200);
    let before = dump(&app);
    assert!(personal.iter().all(|p| before.contains(p)), "the dump should hold the application before the purge");

    app.clock.advance(time::Duration::days(2));
    let purged = connect_pki_ra::applications::purge_rejected(app.state()).await.expect("purge");
    assert_eq!(purged, vec![id]);
    let after = dump(&app);
    for p in personal {
        assert!(!after.contains(p), "{p:?} is still in the database after the purge");
    }
    let (status, _) = app.public_api("GET", &status_url, None).await;
    assert_eq!(status, 404);
    let chain = app.state().store.verify_audit().await.expect("verify");
    assert!(chain.first_break.is_none(), "{chain:?}");
    let (_, audit) = app.api("GET", "/api/v1/audit?action=application.purge", Some(&app.admin), None).await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
}
both_backends!(a_rejected_application_is_purged_with_its_personal_data);
