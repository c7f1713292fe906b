//! "Before the call returns, on every instance", as an option (issue 23):
//! with `revoke_waits_for_every_instance`, a revoke answers once every live
//! instance has recorded that it applied it, and names any that did not —
//! which then refuses rather than vouches until it catches up.

use std::time::Duration;

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, Peer, Server, text};

use crate::revocation::{handshake_ok, ocsp_status, revoke};

/// Turns the option on in `config.toml` (read by every instance on this data
/// directory) and restarts `s`.
fn every_instance(s: &mut Server) {
    let path = s.data("config.toml");
    let config = std::fs::read_to_string(&path).unwrap_or_default();
    // Before any table: a key after `[calendar]` would belong to it.
    std::fs::write(&path, format!("revoke_waits_for_every_instance = true\n{config}")).expect("config.toml");
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

/// Two PostgreSQL instances with the option on, each with its heartbeat in.
async fn two_instances_waiting_for_each_other() -> (Server, Peer) {
    let mut s = Server::start(Backend::Postgres).await;
    every_instance(&mut s);
    let peer = s.peer();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heartbeats(&s).await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the instances never recorded heartbeats");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (s, peer)
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
    let peer_pid = format!("/{}-", peer.pid().expect("pid"));
    for round in 0..3 {
        let d = device(&s, &admin, &format!("stalled-{round}"));
        assert_eq!(s.through(&peer, |p| ocsp_status(p, &d.pem)), "good");
        signal(&peer, "-STOP");
        let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
        assert_eq!(status, 200, "{body}");
        let named = body["instances"]["not_applied"].as_array().cloned().unwrap_or_default();
        assert!(
            named.iter().any(|i| i["id"].as_str().is_some_and(|id| id.contains(&peer_pid))),
            "round {round}: the stalled instance is not named: {body}"
        );
        assert_eq!(body["instances"]["all_applied"], false, "{body}");
        signal(&peer, "-CONT");
        let url = format!("http://{}/ocsp", peer.public);
        let (issuing, ocsp) = (s.data("ca/issuing.pem"), s.data("ca/ocsp.pem"));
        let args = [
            "ocsp",
            "-issuer",
            issuing.to_str().expect("path"),
            "-cert",
            d.pem.to_str().expect("path"),
            "-url",
            &url,
            "-VAfile",
            ocsp.to_str().expect("path"),
        ];
        let said = text(&s.run("openssl", &args));
        assert!(
            !said.contains(": good"),
            "round {round}: the stalled instance vouched for a revoked certificate: {said}"
        );
        assert!(!s.through(&peer, |p| handshake_ok(p, &d.pem)), "round {round}: it let the revoked device in");
    }
}
