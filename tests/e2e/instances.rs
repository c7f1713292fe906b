//! "Before the call returns, on every instance", as an option (issue 23):
//! with `revoke_waits_for_every_instance`, a revoke answers once every live
//! instance has recorded that it applied it, and names any that did not —
//! which then refuses rather than vouches until it catches up.

use std::time::Duration;

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, Peer, Server, text};

use crate::revocation::{handshake_ok, ocsp_status, revoke};

/// Turns the option on in `config.toml` (read by every instance on this data
/// directory) and restarts `s`. The instances poll the feed (every 100 ms)
/// instead of listening: another instance is then tens of milliseconds
/// behind a change unless the call waits for it, so a call that did not
/// wait is caught.
fn every_instance(s: &mut Server) {
    let path = s.data("config.toml");
    let config = std::fs::read_to_string(&path).unwrap_or_default();
    // Before any table: a key after `[calendar]` would belong to it.
    let ours = "revoke_waits_for_every_instance = true\nfeed_listen = false\n";
    std::fs::write(&path, format!("{ours}{config}")).expect("config.toml");
    s.stop();
    s.spawn(&[]);
}

/// The heartbeats: (instance, applied feed position).
async fn heartbeats(s: &Server) -> Vec<(String, i64)> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.db.url).await.expect("connect");
    sqlx::query_as("select id, applied from instances order by id").fetch_all(&mut conn).await.expect("heartbeats")
}

/// Waits until both instances have recorded a heartbeat.
async fn both_heartbeats_in(s: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heartbeats(s).await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the instances never recorded heartbeats");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two PostgreSQL instances with the option on, each with its heartbeat in.
async fn two_instances_waiting_for_each_other() -> (Server, Peer) {
    let mut s = Server::start(Backend::Postgres).await;
    every_instance(&mut s);
    let peer = s.peer();
    both_heartbeats_in(&s).await;
    (s, peer)
}

/// Whether a change's answer names `peer` among the instances that had not
/// applied it (instances name themselves host/pid-random).
fn names(body: &serde_json::Value, peer: &Peer) -> bool {
    let pid = format!("/{}-", peer.pid().expect("the second instance runs"));
    let named = body["instances"]["not_applied"].as_array().cloned().unwrap_or_default();
    named.iter().any(|i| i["id"].as_str().is_some_and(|id| id.contains(&pid)))
}

fn signal(peer: &Peer, which: &str) {
    let pid = peer.pid().expect("the second instance runs").to_string();
    let o = std::process::Command::new("kill").args([which, &pid]).output().expect("kill");
    assert!(o.status.success(), "kill {which}: {}", text(&o));
}

/// Two PostgreSQL instances with the option on: each revoke through one
/// answers only once the other has recorded the position that carries it,
/// round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_answers_once_every_instance_applied_it() {
    let (mut s, peer) = two_instances_waiting_for_each_other().await;
    let admin = s.admin_pem();
    let own = format!("/{}-", s.pid().expect("pid"));
    for round in 0..10 {
        let d = device(&s, &admin, &format!("everywhere-{round}"));
        let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
        assert_eq!(status, 200, "{body}");
        // The other instance's record (this one applied it before answering).
        let seen: Vec<_> = heartbeats(&s).await.into_iter().filter(|(id, _)| !id.contains(&own)).collect();
        let position = body["instances"]["position"].as_i64().expect("the answer says where the change is");
        assert_eq!(body["instances"]["all_applied"], true, "round {round}: {body}");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen.iter().all(|(_, applied)| *applied >= position),
            "round {round}: the call answered before every instance applied position {position}: {seen:?}"
        );
    }
    let d = device(&s, &admin, "everywhere-last");
    assert_eq!(revoke(&s, &admin, &d.serial, "keyCompromise").0, 200);
    assert!(!s.through(&peer, |p| handshake_ok(p, &d.pem)), "the other instance let it in");
    assert_eq!(s.through(&peer, |p| ocsp_status(p, &d.pem)), "revoked keyCompromise");
}

/// The other instance stalls (SIGSTOP): the revoke still answers, naming it;
/// once it runs again its first answer about the certificate is never
/// `good` — it fails closed until it has read the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_instance_is_named_and_never_vouches_for_what_it_missed() {
    let (mut s, peer) = two_instances_waiting_for_each_other().await;
    let admin = s.admin_pem();
    for round in 0..3 {
        let d = device(&s, &admin, &format!("stalled-{round}"));
        assert_eq!(s.through(&peer, |p| ocsp_status(p, &d.pem)), "good");
        signal(&peer, "-STOP");
        let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
        assert_eq!(status, 200, "{body}");
        assert!(names(&body, &peer), "round {round}: the stalled instance is not named: {body}");
        assert_eq!(body["instances"]["all_applied"], false, "{body}");
        signal(&peer, "-CONT");
        let said = s.through(&peer, |p| ocsp_status_or_refusal(p, &d.pem));
        assert!(
            !said.contains(": good"),
            "round {round}: the stalled instance vouched for a revoked certificate: {said}"
        );
        assert!(!s.through(&peer, |p| handshake_ok(p, &d.pem)), "round {round}: it let the revoked device in");
    }
}

/// Runs `sql` on the test database as its owner.
async fn execute(s: &Server, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.db.url).await.expect("connect");
    sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The other instance cannot read the feed (its database role lost the
/// right to): a revoke through the first names it after the bounded wait,
/// and by then it has gone a second without a feed read, so with the option
/// on it fails closed — OCSP `tryLater`, the handshake refused — instead of
/// vouching for the certificate with its old index. Once it can read again
/// it says `revoked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_follow_is_named_and_fails_closed() {
    let mut s = Server::start(Backend::Postgres).await;
    every_instance(&mut s);
    let db = s.db.url.rsplit('/').next().expect("a database name").to_string();
    let role = format!("{db}_peer");
    execute(&s, &format!("drop role if exists {role}")).await;
    execute(&s, &format!("create role {role} login")).await;
    for sql in
        ["grant all on all tables in schema public to {role}", "grant all on all sequences in schema public to {role}"]
    {
        execute(&s, &sql.replace("{role}", &role)).await;
    }
    let url = format!("postgres://{role}@127.0.0.1:5432/{db}");
    let peer = s.peer_with(&[("CONNECT_PKI_DATABASE_URL", &url)]);
    let admin = s.admin_pem();
    both_heartbeats_in(&s).await;
    let d = device(&s, &admin, "cannot-follow");
    assert_eq!(s.through(&peer, |p| ocsp_status(p, &d.pem)), "good");
    execute(&s, &format!("revoke select on cert_events from {role}")).await;
    let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    assert!(names(&body, &peer), "the instance that cannot follow is not named: {body}");
    let said = s.through(&peer, |p| ocsp_status_or_refusal(p, &d.pem));
    assert!(!said.contains(": good") && said.contains("trylater"), "it vouched for what it missed: {said}");
    assert!(!s.through(&peer, |p| handshake_ok(p, &d.pem)), "it let the revoked device in");
    execute(&s, &format!("grant select on cert_events to {role}")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.through(&peer, |p| ocsp_status_or_refusal(p, &d.pem)) != "revoked keyCompromise" {
        assert!(std::time::Instant::now() < deadline, "it never caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(peer);
    execute(&s, &format!("drop owned by {role}")).await;
    execute(&s, &format!("drop role {role}")).await;
}

/// What our responder says about `pem`: the status, or the refusal.
fn ocsp_status_or_refusal(s: &Server, pem: &std::path::Path) -> String {
    let url = format!("http://{}/ocsp", s.public);
    let (issuing, ocsp) = (s.data("ca/issuing.pem"), s.data("ca/ocsp.pem"));
    let args = [
        "ocsp",
        "-issuer",
        issuing.to_str().expect("path"),
        "-cert",
        pem.to_str().expect("path"),
        "-url",
        &url,
        "-VAfile",
        ocsp.to_str().expect("path"),
    ];
    let said = text(&s.run("openssl", &args));
    if said.contains("Response verify OK") { ocsp_status(s, pem) } else { said }
}
