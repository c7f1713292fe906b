//! Checkpoints of the audit log's head outside the database: written at
//! intervals (only when the head moved) and at shutdown, and compared with
//! the log, so that a log cut short — TRUNCATE, the newest records deleted,
//! or cut and grown again — no longer passes verification, and a forged
//! checkpoint is noticed.

use std::time::Duration;

use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use connect_pki_server::checkpoint::{self, CHECKPOINT_FILE, CheckpointCheck};
use connect_pki_server::config::CheckpointSettings;
use connect_pki_store::Store;
use sqlx::Connection;

/// An app writing checkpoints into a directory of its own every `every`.
async fn app_with_checkpoints(backend: Backend, every: Duration) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = CheckpointSettings { dir: dir.path().to_path_buf(), every };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.audit_checkpoints = Some(settings))).await;
    (app, dir)
}

fn lines(dir: &tempfile::TempDir) -> Vec<String> {
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

async fn verify(app: &TestApp, dir: &tempfile::TempDir) -> CheckpointCheck {
    let store = Store::connect(&app.db.url).await.expect("store");
    let check = checkpoint::verify(&store, dir.path()).await.expect("verify runs");
    store.close().await;
    check
}

/// The head and the chain walk, read on a connection of their own.
async fn head_and_walk(app: &TestApp) -> (connect_pki_store::AuditHead, Option<(i64, String)>) {
    let store = Store::connect(&app.db.url).await.expect("store");
    let head = store.audit_head().await.expect("head").expect("a head");
    let walk = store.verify_audit().await.expect("walk").first_break;
    store.close().await;
    (head, walk)
}

fn broken(check: CheckpointCheck) -> String {
    match check {
        CheckpointCheck::Broken(why) => why,
        other => panic!("verification passed: {other:?}"),
    }
}

/// A direct connection, as the database's owner, with the append-only guard
/// of `statement` dropped first.
async fn as_owner(app: &TestApp, drop_guard: bool, statement: &str) -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.expect("connect");
    if drop_guard {
        let drop = match app.db.backend() {
            Backend::Sqlite => "drop trigger audit_log_no_delete",
            Backend::Postgres => "drop trigger audit_log_no_change on audit_log",
        };
        sqlx::query(drop).execute(&mut conn).await.expect("drop guard");
    }
    sqlx::query(statement).execute(&mut conn).await.map(|_| ())
}

/// The head is checkpointed at start and again only after it moved; the
/// last checkpoint is the head at shutdown; an untouched log verifies, with
/// the file private to its owner.
async fn checkpoints_follow_the_head_and_an_untouched_log_verifies(backend: Backend) {
    let (mut app, dir) = app_with_checkpoints(backend, Duration::from_millis(200)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines(&dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint at start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several intervals with nothing new: no new checkpoint.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(lines(&dir).len(), 1, "{:?}", lines(&dir));

    app.device("kiroku").await;
    let head = app.state().store.audit_head().await.expect("head").expect("a head");
    while !lines(&dir).last().is_some_and(|l| l.contains(&head.hash)) {
        assert!(std::time::Instant::now() < deadline + Duration::from_secs(10), "head never checkpointed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.device("saigo").await;
    app.stop().await;
    let all = lines(&dir);
    let ids: Vec<i64> = all
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON")["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "a checkpoint of a head that had not moved: {ids:?}");
    let last: serde_json::Value = serde_json::from_str(all.last().expect("a line")).expect("JSON");
    let (head, _) = head_and_walk(&app).await;
    assert_eq!((last["id"].as_i64(), last["count"].as_i64()), (Some(head.id), Some(head.count)), "{last}");
    assert_eq!(last["hash"], head.hash.as_str());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join(CHECKPOINT_FILE)).expect("file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    match verify(&app, &dir).await {
        CheckpointCheck::Intact { checkpoints, newest } => {
            assert_eq!(checkpoints, all.len());
            assert_eq!(newest.map(|c| c.id), Some(head.id));
        }
        other => panic!("an untouched log failed: {other:?}"),
    }
}
both_backends!(checkpoints_follow_the_head_and_an_untouched_log_verifies);

/// Deleting the newest records (as the owner, with the guard dropped)
/// leaves a valid chain, but not the checkpoint's record.
async fn deleting_the_newest_records_fails_naming_the_checkpoint(backend: Backend) {
    let (mut app, dir) = app_with_checkpoints(backend, Duration::from_secs(3600)).await;
    app.device("kesu").await;
    app.stop().await;
    // One at start (the bootstrap's records), one at shutdown (the device's).
    assert_eq!(lines(&dir).len(), 2, "{:?}", lines(&dir));
    let (head, _) = head_and_walk(&app).await;
    as_owner(&app, true, &format!("delete from audit_log where id > {}", head.id - 3)).await.expect("delete");
    // What the chain alone cannot see: it is still a valid chain.
    assert_eq!(head_and_walk(&app).await.1, None);
    let why = broken(verify(&app, &dir).await);
    let line = lines(&dir).len();
    assert!(why.contains(&format!("{CHECKPOINT_FILE} line {line}, record {}", head.id)), "{why}");
    assert!(why.contains("truncated or its newest records deleted"), "{why}");
}
both_backends!(deleting_the_newest_records_fails_naming_the_checkpoint);

/// TRUNCATE is refused by the trigger of migration 0007; a superuser who
/// drops it and truncates is caught by the checkpoints, also after the
/// service grew the log again past the old checkpoint's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_is_refused_and_detected_when_forced() {
    let (mut app, dir) = app_with_checkpoints(Backend::Postgres, Duration::from_secs(3600)).await;
    app.device("kiru").await;
    app.stop().await;
    let first = lines(&dir).len();
    let refused = as_owner(&app, false, "truncate audit_log").await.expect_err("TRUNCATE went through");
    assert!(refused.to_string().contains("audit_log is append-only"), "{refused}");
    assert!(matches!(verify(&app, &dir).await, CheckpointCheck::Intact { .. }));

    as_owner(&app, false, "drop trigger audit_log_no_truncate on audit_log").await.expect("drop");
    as_owner(&app, false, "truncate audit_log").await.expect("truncate as superuser");
    let why = broken(verify(&app, &dir).await);
    assert!(why.contains("record") && why.contains("which the log no longer holds (it holds 0 records)"), "{why}");

    // The service runs on and appends a new chain; its newer checkpoint
    // matches, the older ones still do not.
    app.start().await;
    for i in 0..3 {
        app.device(&format!("ato{i}")).await;
    }
    app.stop().await;
    assert!(lines(&dir).len() > first);
    let why = broken(verify(&app, &dir).await);
    assert!(why.contains(&format!("line {first},")), "{why}");
}

/// A checkpoint whose fields were changed (here its count, to hide deleted
/// records) no longer carries a valid MAC.
async fn a_checkpoint_with_a_tampered_mac_fails(backend: Backend) {
    let (mut app, dir) = app_with_checkpoints(backend, Duration::from_secs(3600)).await;
    app.device("nise").await;
    app.stop().await;
    assert!(matches!(verify(&app, &dir).await, CheckpointCheck::Intact { .. }));
    let path = dir.path().join(CHECKPOINT_FILE);
    let mut all = lines(&dir);
    let mut last: serde_json::Value = serde_json::from_str(all.last().expect("a line")).expect("JSON");
    last["count"] = serde_json::json!(last["count"].as_i64().expect("count") - 2);
    *all.last_mut().expect("a line") = last.to_string();
    std::fs::write(&path, all.join("\n") + "\n").expect("rewrite");
    let why = broken(verify(&app, &dir).await);
    assert!(why.contains(&format!("line {}", all.len())) && why.contains("MAC that does not verify"), "{why}");
}
both_backends!(a_checkpoint_with_a_tampered_mac_fails);
