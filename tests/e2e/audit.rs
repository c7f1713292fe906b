//! `connect-pki audit verify` against the checkpoints the real binary wrote:
//! a log cut short fails naming the checkpoint, as does a forged checkpoint;
//! PostgreSQL refuses TRUNCATE of the log.

use connect_pki_e2e::{Backend, Server, both_backends, text};
use serde_json::json;
use sqlx::Connection;

fn verify(s: &Server, backend: Backend) -> (bool, String) {
    let bin = connect_pki_e2e::binary().display().to_string();
    let data = s.data_dir.display().to_string();
    let mut args = vec!["audit", "verify", "--data-dir", data.as_str()];
    if backend == Backend::Postgres {
        args.extend(["--database-url", s.db.url.as_str()]);
    }
    let o = s.run(&bin, &args);
    (o.status.success(), text(&o))
}

async fn owner(s: &Server, backend: Backend) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data("connect-pki.db").display()),
        Backend::Postgres => s.db.url.clone(),
    };
    sqlx::AnyConnection::connect(&url).await.expect("connect")
}

async fn a_log_cut_short_or_a_forged_checkpoint_fails_audit_verify(backend: Backend) {
    let mut s = Server::start(backend).await;
    let admin = s.admin_pem();
    for login in ["kiroku1", "kiroku2"] {
        let body = json!({"display_name": "記録", "login_id": login, "email": format!("{login}@example.test"), "role": "staff"});
        let (status, out) = s.api("POST", "/api/v1/facilities/1/users", Some(&admin), Some(&body));
        assert_eq!(status, 201, "{out}");
    }
    assert!(s.stop().is_some_and(|st| st.success()), "{}", s.log());
    assert!(s.log().contains("audit checkpoint"), "no checkpoint in the log: {}", s.log());
    let file = s.data("audit-checkpoints.jsonl");
    let original = std::fs::read_to_string(&file).expect("checkpoint file");
    let lines = original.lines().count();
    let (ok, out) = verify(&s, backend);
    assert!(ok && out.contains("audit checkpoints intact"), "{out}");

    // A checkpoint rewritten to name an earlier record does not carry our MAC.
    let mut last: serde_json::Value = serde_json::from_str(original.lines().last().expect("a line")).expect("JSON");
    last["id"] = json!(1);
    let forged: Vec<String> = original.lines().take(lines - 1).map(str::to_string).chain([last.to_string()]).collect();
    std::fs::write(&file, forged.join("\n") + "\n").expect("forge");
    let (ok, out) = verify(&s, backend);
    assert!(!ok && out.contains(&format!("line {lines}")) && out.contains("MAC that does not verify"), "{out}");
    std::fs::write(&file, &original).expect("restore");

    let mut conn = owner(&s, backend).await;
    if backend == Backend::Postgres {
        let refused = sqlx::query("truncate audit_log").execute(&mut conn).await.expect_err("TRUNCATE went through");
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }
    // The owner drops the guard and deletes the newest records: the chain
    // that is left is valid, the checkpoint names what is gone.
    let drop = match backend {
        Backend::Sqlite => "drop trigger audit_log_no_delete",
        Backend::Postgres => "drop trigger audit_log_no_change on audit_log",
    };
    sqlx::query(drop).execute(&mut conn).await.expect("drop guard");
    sqlx::query("delete from audit_log where id > 5").execute(&mut conn).await.expect("delete");
    let (ok, out) = verify(&s, backend);
    assert!(!ok && out.contains("hash chain intact"), "{out}");
    assert!(out.contains("BROKEN: checkpoint of") && out.contains(&format!("line {lines},")), "{out}");
    assert!(out.contains("truncated or its newest records deleted"), "{out}");
}
both_backends!(a_log_cut_short_or_a_forged_checkpoint_fails_audit_verify);

/// The checkpoint file is what tells a log cut short from a whole one:
/// `audit verify` fails without it, and, with no service running, when its
/// newest checkpoint leaves records of the log uncovered (an older file put
/// back).
async fn audit_verify_fails_without_checkpoints_or_with_an_older_file(backend: Backend) {
    let mut s = Server::start(backend).await;
    let admin = s.admin_pem();
    add_user(&s, &admin, "older1");
    assert!(s.stop().is_some_and(|st| st.success()), "{}", s.log());
    let file = s.data("audit-checkpoints.jsonl");
    let older = std::fs::read_to_string(&file).expect("checkpoint file");
    s.spawn(&[]);
    add_user(&s, &admin, "older2");
    assert!(s.stop().is_some_and(|st| st.success()), "{}", s.log());
    let (ok, out) = verify(&s, backend);
    assert!(ok && out.contains("audit checkpoints intact"), "{out}");

    std::fs::write(&file, &older).expect("an older checkpoint file put back");
    let (ok, out) = verify(&s, backend);
    assert!(!ok && out.contains("written after it with no checkpoint"), "{out}");

    std::fs::remove_file(&file).expect("remove");
    let (ok, out) = verify(&s, backend);
    assert!(!ok && out.contains("MISSING"), "{out}");
}
both_backends!(audit_verify_fails_without_checkpoints_or_with_an_older_file);

fn add_user(s: &Server, admin: &std::path::Path, login: &str) {
    let body =
        json!({"display_name": "記録", "login_id": login, "email": format!("{login}@example.test"), "role": "staff"});
    let (status, out) = s.api("POST", "/api/v1/facilities/1/users", Some(admin), Some(&body));
    assert_eq!(status, 201, "{out}");
}
