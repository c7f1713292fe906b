//! Every wait is bounded: a write that cannot get the writer lock within
//! `store::WRITE_WAIT` (another transaction holds it — a stalled session, a
//! `psql` left open) answers 503 with a message and changes nothing, while
//! OCSP, handshakes and reads go on; once the lock is free, the same call works.

use std::time::{Duration, Instant};

use connect_pki_e2e::{Backend, both_backends, spawn_app};
use serde_json::json;
use sqlx::Connection;

/// A session of its own holding the writer lock every write transaction
/// takes first (`store::WRITER_LOCK` on PostgreSQL, SQLite's write lock),
/// until it rolls back.
async fn holding_the_writer_lock(url: &str, backend: Backend) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(url).await.expect("a second connection");
    let hold = match backend {
        Backend::Postgres => vec!["begin", "select pg_advisory_xact_lock(7305001)"],
        Backend::Sqlite => vec!["begin immediate"],
    };
    for sql in hold {
        sqlx::query(sql).execute(&mut holder).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    holder
}

async fn a_write_behind_a_stalled_transaction_answers_busy_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("stalled.writer").await;
    let mut holder = holding_the_writer_lock(&app.db.url, backend).await;
    let path = format!("/api/v1/certificates/{}/revoke", d.serial);
    let body = json!({"reason": "keyCompromise"});
    let started = Instant::now();
    let (status, answer) =
        tokio::time::timeout(Duration::from_secs(30), app.api("POST", &path, Some(&app.admin), Some(&body)))
            .await
            .expect("no answer within 30 s while another transaction held the writer lock");
    let waited = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "busy", "{answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("nothing was changed")), "{answer}");
    assert!(waited >= connect_pki_store::WRITE_WAIT / 2, "it gave up long before its bound: {waited:?}");
    // Reads and the revocation checks go on while the lock is held.
    assert_eq!(app.ocsp_status(&d.id).await, "good");
    assert!(app.handshake_ok(&d.id).await);
    let (status, facilities) = app.api("GET", "/api/v1/facilities", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{facilities}");
    sqlx::query("rollback").execute(&mut holder).await.expect("rollback");
    holder.close().await.expect("close");
    let (status, answer) = app.api("POST", &path, Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 200, "once the lock is free: {answer}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked keyCompromise");
}
both_backends!(a_write_behind_a_stalled_transaction_answers_busy_and_changes_nothing);

/// Writers queued behind a stalled transaction never take the connections
/// readers need: with thirty revokes waiting for the writer lock, caller
/// authentication and reads answer at once, and every waiting revoke gets
/// its 503 and changes nothing.
async fn writers_queued_behind_a_stall_leave_the_readers_their_connections(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let mut devices = Vec::new();
    for n in 0..30 {
        devices.push(app.device(&format!("queued.{n}")).await);
    }
    let mut holder = holding_the_writer_lock(&app.db.url, backend).await;
    let mut revokes = tokio::task::JoinSet::new();
    for d in &devices {
        let (app, path) = (app.clone(), format!("/api/v1/certificates/{}/revoke", d.serial));
        revokes.spawn(async move {
            app.api("POST", &path, Some(&app.admin), Some(&json!({"reason": "keyCompromise"}))).await
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (status, answer) = app.api("GET", "/api/v1/facilities", Some(&app.admin), None).await;
    let read_took = started.elapsed();
    let answers =
        tokio::time::timeout(Duration::from_secs(60), revokes.join_all()).await.expect("no answers within 60 s");
    sqlx::query("rollback").execute(&mut holder).await.expect("rollback");
    assert_eq!(status, 200, "a read behind thirty waiting writers: {answer}");
    assert!(read_took < connect_pki_store::WRITE_WAIT / 3, "the read waited {read_took:?} for a connection");
    for (status, answer) in &answers {
        assert_eq!(*status, 503, "{answer}");
    }
    for d in &devices {
        assert_eq!(app.ocsp_status(&d.id).await, "good", "a refused revoke changed something");
    }
}
both_backends!(writers_queued_behind_a_stall_leave_the_readers_their_connections);
