//! The instance's copy of the revocation state: repaired when it differs from
//! the database, and failing closed when the database cannot be read.

use std::path::Path;
use std::time::{Duration, Instant};

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, FakeTime, Server, both_backends, text};

use crate::revocation::{crl, handshake_ok, ocsp_status, ocsp_status_with, revoke};

fn db_url(s: &Server, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data("connect-pki.db").display()),
        Backend::Postgres => s.db.url.clone(),
    }
}

async fn execute(url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sqls` in one transaction: the running instance sees all of them or
/// none, as it would a restored backup.
async fn execute_at_once(url: &str, sqls: &[String]) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let mut tx = conn.begin().await.expect("begin");
    for sql in sqls {
        sqlx::query(sql).execute(&mut *tx).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().await.expect("commit");
}

/// The database server's clock.
async fn database_now(url: &str) -> time::OffsetDateTime {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let micros: i64 = sqlx::query_scalar("select cast(extract(epoch from clock_timestamp()) * 1000000 as bigint)")
        .fetch_one(&mut conn)
        .await
        .expect("the database's clock");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).expect("a time")
}

/// Polls `check` every 100 ms for up to `limit`; returns whether it held.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A change written to the database behind the feed's back (a restored
/// backup, a hand edit, a bug) is found by the reconciliation, repaired in
/// the index, enforced, and counted.
async fn reconciliation_repairs_an_index_that_differs(backend: Backend) {
    let s = Server::start_with(backend, &[("CONNECT_PKI_RECONCILE_SECONDS", "1")]).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "reconcile.staff");
    assert_eq!(ocsp_status(&s, &d.pem), "good");
    // A cached answer (no nonce) that a repair must not outlive.
    assert_eq!(ocsp_status_with(&s, &d.pem, &["-no_nonce"]), "good");
    execute(
        &db_url(&s, backend),
        &format!(
            "update certificates set status = 'revoked', revocation_reason = 'keyCompromise', revoked_at = 1795000000 \
             where serial = '{}'",
            d.serial
        ),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || ocsp_status(&s, &d.pem) == "revoked keyCompromise"),
        "the reconciliation did not bring the index to the database's state:\n{}",
        s.log()
    );
    assert!(!handshake_ok(&s, &d.pem), "a repaired revocation is enforced at the handshake too");
    assert_eq!(
        ocsp_status_with(&s, &d.pem, &["-no_nonce"]),
        "revoked keyCompromise",
        "the cached answer outlived the repair"
    );
    assert!(s.log_contains("index entry differed from the database"), "{}", s.log());
    let metrics = s.metrics();
    let divergences: f64 = metrics
        .lines()
        .find(|l| l.starts_with("connect_pki_index_divergences_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(divergences >= 1.0, "divergence not counted:\n{metrics}");
}
both_backends!(reconciliation_repairs_an_index_that_differs);

/// A revoked certificate whose row goes back to `valid` behind the feed's
/// back (a restored database, a failover to a replica that missed the last
/// commits, a hand edit) is never un-revoked by the reconciliation: the
/// revocation is written back to the database, and no answer in between —
/// OCSP with and without a nonce, the handshake, the CRL — says otherwise.
/// A revoked certificate whose row is gone altogether is kept revoked as a
/// recovered revocation, still there after a restart.
async fn reconciliation_writes_a_lost_revocation_back_and_never_undoes_it(backend: Backend) {
    let mut s = Server::start_with(backend, &[("CONNECT_PKI_RECONCILE_SECONDS", "1")]).await;
    let admin = s.admin_pem();
    let gone = device(&s, &admin, "lost.row");
    let d = device(&s, &admin, "lost.revocation");
    // Revoked first, so that deleting its feed rows leaves the feed's head where it was.
    assert_eq!(revoke(&s, &admin, &gone.serial, "keyCompromise").0, 200);
    // An OCSP answer without a nonce is cached: the one to watch after the edit.
    assert_eq!(ocsp_status_with(&s, &d.pem, &["-no_nonce"]), "good");
    let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ocsp_status_with(&s, &d.pem, &["-no_nonce"]), "revoked keyCompromise");
    let url = db_url(&s, backend);
    execute(
        &url,
        &format!(
            "update certificates set status = 'valid', revocation_reason = null, revoked_at = null where serial = '{}'",
            d.serial
        ),
    )
    .await;
    execute(&url, &format!("delete from cert_events where serial = '{}'", gone.serial)).await;
    execute(&url, &format!("delete from certificates where serial = '{}'", gone.serial)).await;
    // Several reconciliations run in this time; every answer stays revoked.
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        assert_eq!(ocsp_status(&s, &gone.pem), "revoked keyCompromise", "{}", s.log());
        assert_eq!(crl(&s)["revoked"][&gone.serial], "key_compromise", "the CRL dropped the row gone:\n{}", s.log());
        assert_eq!(ocsp_status_with(&s, &d.pem, &["-no_nonce"]), "revoked keyCompromise", "{}", s.log());
        assert_eq!(ocsp_status(&s, &d.pem), "revoked keyCompromise");
        assert!(!handshake_ok(&s, &d.pem), "the handshake was accepted again:\n{}", s.log());
        assert_eq!(crl(&s)["revoked"][&d.serial], "key_compromise", "the CRL dropped it:\n{}", s.log());
    }
    assert!(
        eventually(Duration::from_secs(10), || s.log_contains("the database lost revocations")),
        "the write-back is not in the log:\n{}",
        s.log()
    );
    let in_the_database = || {
        let (_, cert) = s.api("GET", &format!("/api/v1/certificates/{}", d.serial), Some(&admin), None);
        (cert["status"].as_str(), cert["reason"].as_str()) == (Some("revoked"), Some("keyCompromise"))
    };
    assert!(eventually(Duration::from_secs(10), in_the_database), "not written back:\n{}", s.log());
    let (_, audit) = s.api("GET", "/api/v1/audit?limit=1000", Some(&admin), None);
    let written_back = audit
        .as_array()
        .expect("audit")
        .iter()
        .any(|r| r["actor"] == "system:reconcile" && r["target"].as_str().is_some_and(|t| t.contains(&d.serial)));
    assert!(written_back, "no audit record of the write-back: {audit}");
    let metrics = s.metrics();
    assert!(
        metrics.lines().any(|l| l.starts_with("connect_pki_revocations_written_back_total") && !l.ends_with(" 0")),
        "write-back not counted:\n{metrics}"
    );
    // The recovered revocation is in the database: a restart keeps it.
    s.stop();
    s.spawn(&[]);
    assert_eq!(ocsp_status(&s, &gone.pem), "revoked keyCompromise", "{}", s.log());
    assert_eq!(crl(&s)["revoked"][&gone.serial], "key_compromise");
    assert!(!handshake_ok(&s, &gone.pem));
}
both_backends!(reconciliation_writes_a_lost_revocation_back_and_never_undoes_it);

/// The feed's last position, read directly.
async fn feed_head(url: &str) -> i64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("select coalesce(max(id), 0) from cert_events").fetch_one(&mut conn).await.expect("feed head")
}

/// A database that goes back behind a running instance (a backup restored
/// under it, a failover to a replica that missed the last commits) is
/// noticed at the next feed read: the instance fails closed, writes back the
/// revocations the database lost — a row set back to valid is revoked again,
/// a row gone entirely becomes a recovered revocation — reloads, and serves
/// again. No answer in between says `good` for either.
async fn a_database_that_goes_back_gets_its_lost_revocations_written_back(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let kept = device(&s, &admin, "went.back.kept");
    let gone = device(&s, &admin, "went.back.gone");
    let url = db_url(&s, backend);
    let before = feed_head(&url).await;
    for d in [&kept, &gone] {
        let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
        assert_eq!(status, 200, "{body}");
    }
    let served = crl(&s)["crl_number"].as_u64().expect("a CRL number");
    // The database loses the last commits: the revocations' feed rows, one
    // row's revocation, the other certificate altogether, and the CRL
    // numbers it gave out since — all at once, as a restore does.
    execute_at_once(
        &url,
        &[
        "update crl_state set crl_number = 1, position = 0".to_string(),
        format!("delete from cert_events where id > {before}"),
        format!("delete from cert_events where serial = '{}'", gone.serial),
        format!("delete from certificates where serial = '{}'", gone.serial),
        format!(
            "update certificates set status = 'valid', revocation_reason = null, revoked_at = null where serial = '{}'",
            kept.serial
        ),
        ],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || s.log_contains("revocations the database lost were put back")),
        "the database going back was not noticed:\n{}",
        s.log()
    );
    for d in [&kept, &gone] {
        assert!(!ocsp_raw(&s, &d.pem).contains(": good"), "{} answered good", d.serial);
        assert!(!handshake_ok(&s, &d.pem), "{} was accepted again", d.serial);
        assert_eq!(ocsp_status(&s, &d.pem), "revoked keyCompromise");
        assert_eq!(crl(&s)["revoked"][&d.serial], "key_compromise");
    }
    let now_served = crl(&s)["crl_number"].as_u64().expect("a CRL number");
    assert!(now_served > served, "the CRL number went back: {now_served} after {served}");
    let (_, cert) = s.api("GET", &format!("/api/v1/certificates/{}", kept.serial), Some(&admin), None);
    assert_eq!((cert["status"].as_str(), cert["reason"].as_str()), (Some("revoked"), Some("keyCompromise")), "{cert}");
    let (_, audit) = s.api("GET", "/api/v1/audit?action=revocations.write_back", Some(&admin), None);
    assert!(audit.to_string().contains(&gone.serial), "no audit record of the recovered revocation: {audit}");
    // The instance serves again: a new device works, and it is ready.
    let fresh = device(&s, &admin, "went.back.fresh");
    assert!(handshake_ok(&s, &fresh.pem), "{}", s.log());
    assert_eq!(s.curl_public("/readyz", &[]).1, 200);
    let metrics = s.metrics();
    assert!(metrics.contains("connect_pki_database_went_back_total"), "{metrics}");
}
both_backends!(a_database_that_goes_back_gets_its_lost_revocations_written_back);

/// Another database under a running instance (a dump restored into a new
/// one, a failover to a different server) is noticed by its incarnation even
/// when its feed is not behind: the instance writes back what that database
/// lacks, as when the feed goes back.
async fn another_database_under_a_running_instance_is_noticed(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "another.db");
    assert_eq!(revoke(&s, &admin, &d.serial, "keyCompromise").0, 200);
    let url = db_url(&s, backend);
    let head = feed_head(&url).await;
    execute_at_once(
        &url,
        &[
            "update database_incarnation set id = 'another database'".to_string(),
            format!(
                "update certificates set status = 'valid', revocation_reason = null, revoked_at = null where serial = '{}'",
                d.serial
            ),
        ],
    )
    .await;
    assert_eq!(feed_head(&url).await, head, "the feed did not go back: only the incarnation tells");
    assert!(
        eventually(Duration::from_secs(10), || s.log_contains("revocations the database lost were put back")),
        "another database was not noticed:\n{}",
        s.log()
    );
    assert_eq!(ocsp_status_with(&s, &d.pem, &["-no_nonce"]), "revoked keyCompromise");
    assert!(!handshake_ok(&s, &d.pem));
    let (_, cert) = s.api("GET", &format!("/api/v1/certificates/{}", d.serial), Some(&admin), None);
    assert_eq!((cert["status"].as_str(), cert["reason"].as_str()), (Some("revoked"), Some("keyCompromise")), "{cert}");
    assert_eq!(s.curl_public("/readyz", &[]).1, 200, "{}", s.log());
}
both_backends!(another_database_under_a_running_instance_is_noticed);

/// PostgreSQL, as an operator would do it: a dump taken before a revocation,
/// restored with `pg_restore --clean` under two running instances. Neither
/// takes the revocation back — handshake, OCSP (with and without a nonce)
/// and the CRL on both — the database gets it written back, and a
/// certificate the dump knows can still be revoked through either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_dump_restored_under_two_instances_takes_back_no_revocation() {
    let mut s = Server::start(Backend::Postgres).await;
    let peer = s.peer();
    let admin = s.admin_pem();
    let lost = device(&s, &admin, "dump.lost");
    let later = device(&s, &admin, "dump.later");
    let url = db_url(&s, Backend::Postgres);
    let dump = s.scratch("older.dump").display().to_string();
    let o = s.run("pg_dump", &["-Fc", "-f", &dump, &url]);
    assert!(o.status.success(), "pg_dump: {}", text(&o));
    assert_eq!(revoke(&s, &admin, &lost.serial, "keyCompromise").0, 200);
    assert!(
        eventually(Duration::from_secs(5), || s.through(&peer, |p| !handshake_ok(p, &lost.pem))),
        "the second instance never saw the revocation"
    );
    let o = s.run("pg_restore", &["--clean", "--if-exists", "--no-owner", "-d", &url, &dump]);
    assert!(o.status.success(), "pg_restore: {}", text(&o));
    // Until the write-back is done the instance fails closed, and refuses
    // every handshake (the admin's too): not yet.
    let in_the_database = |s: &Server| {
        let path = format!("/api/v1/certificates/{}", lost.serial);
        let (code, _, text) = s.curl_api(&path, &["--cert", &admin.display().to_string()]);
        let cert: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        code == 0 && (cert["status"].as_str(), cert["reason"].as_str()) == (Some("revoked"), Some("keyCompromise"))
    };
    assert!(eventually(Duration::from_secs(10), || in_the_database(&s)), "not written back:\n{}", s.log());
    let check = |s: &Server, who: &str| {
        assert!(!ocsp_raw(s, &lost.pem).contains(": good"), "{who} answered good");
        assert_eq!(ocsp_status_with(s, &lost.pem, &["-no_nonce"]), "revoked keyCompromise", "{who}");
        assert_eq!(ocsp_status(s, &lost.pem), "revoked keyCompromise", "{who}");
        assert!(!handshake_ok(s, &lost.pem), "{who} accepted the lost device again");
        assert_eq!(crl(s)["revoked"][&lost.serial], "key_compromise", "{who}'s CRL dropped it");
    };
    check(&s, "the first instance");
    assert!(
        eventually(Duration::from_secs(10), || s.through(&peer, |p| ocsp_status(p, &lost.pem))
            == "revoked keyCompromise"),
        "the second instance"
    );
    s.through(&peer, |p| check(p, "the second instance"));
    let (status, body) = s.through(&peer, |p| revoke(p, &admin, &later.serial, "keyCompromise"));
    assert_eq!(status, 200, "{body}");
    assert!(!handshake_ok(&s, &later.pem), "revoked through the second, accepted by the first");
    assert_eq!(ocsp_status(&s, &later.pem), "revoked keyCompromise");
    assert_eq!(s.through(&peer, |p| ocsp_status(p, &later.pem)), "revoked keyCompromise");
}

/// `openssl ocsp` without verification of the answer: its whole output.
fn ocsp_raw(s: &Server, pem: &Path) -> String {
    let url = format!("http://{}/ocsp", s.public);
    let issuing = s.data("ca/issuing.pem").display().to_string();
    let cert = pem.display().to_string();
    let ocsp = s.data("ca/ocsp.pem").display().to_string();
    text(&s.run("openssl", &["ocsp", "-issuer", &issuing, "-cert", &cert, "-url", &url, "-VAfile", &ocsp]))
}

/// An instance that cannot read the revocation feed cannot know of
/// revocations made on other instances: past the configured bound it stops
/// saying `good` and refuses new handshakes, and recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_read_the_feed_fails_closed() {
    let s = Server::start_with(Backend::Postgres, &[("CONNECT_PKI_FEED_MAX_LAG_SECONDS", "2")]).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "closed.staff");
    assert_eq!(ocsp_status(&s, &d.pem), "good");
    let ready = || s.curl_public("/readyz", &[]).1;
    assert_eq!(ready(), 200, "not ready before the cut");
    let name = s.db.url.rsplit('/').next().expect("database name").to_string();
    let admin_url = connect_pki_store::testing::postgres_admin_url();
    execute(&admin_url, &format!("alter database {name} allow_connections false")).await;
    execute(&admin_url, &format!("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'"))
        .await;

    let cut_off = eventually(Duration::from_secs(15), || ocsp_raw(&s, &d.pem).contains("trylater"));
    let handshake_refused = !handshake_ok(&s, &d.pem);
    // A load balancer asking /readyz sends the traffic elsewhere meanwhile.
    let (_, readiness, said) = s.curl_public("/readyz", &[]);
    execute(&admin_url, &format!("alter database {name} allow_connections true")).await;
    assert_eq!(readiness, 503, "ready while failing closed: {said}");
    assert!(said.contains("\"revocation_feed\":\"stale\""), "{said}");
    assert!(cut_off, "OCSP kept answering while the feed was unreadable:\n{}", ocsp_raw(&s, &d.pem));
    assert!(handshake_refused, "a new handshake was accepted while the feed was unreadable");
    assert!(s.log_contains("revocation feed read failed"), "{}", s.log());

    assert!(
        eventually(Duration::from_secs(20), || ocsp_raw(&s, &d.pem).contains(": good")),
        "OCSP did not recover once the database was back:\n{}",
        s.log()
    );
    assert!(eventually(Duration::from_secs(10), || handshake_ok(&s, &d.pem)), "handshakes did not recover");
    assert!(eventually(Duration::from_secs(10), || ready() == 200), "not ready again once the feed was read");
}

/// Due work is decided by the database's clock on PostgreSQL: an instance
/// whose own clock runs two hours ahead does not carry out a retirement
/// scheduled one hour from now, and the one on time does it when it falls due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_a_skewed_clock_runs_nothing_early() {
    // Both instances are set by the database's clock, which the test's own
    // may be off (the suite under libfaketime, tests/at-every-hour).
    let admin_url = connect_pki_store::testing::postgres_admin_url();
    let db_ahead = database_now(&admin_url).await - time::OffsetDateTime::now_utc();
    let s = Server::start_at(Backend::Postgres, FakeTime::ahead(db_ahead)).await;
    let admin = s.admin_pem();
    let later = device(&s, &admin, "skew.later");
    let soon = device(&s, &admin, "skew.soon");
    let vars = FakeTime::ahead(db_ahead + time::Duration::hours(2)).server_vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ahead = s.instance("ahead", &vars);
    ahead.start(Duration::from_secs(60)).expect("the instance whose clock is ahead starts");
    let retire_at = |user: i64, secs: i64| {
        let at = time::OffsetDateTime::now_utc() + db_ahead + time::Duration::seconds(secs);
        let at = at.format(&time::format_description::well_known::Rfc3339).expect("format");
        let (status, out) =
            s.api("POST", &format!("/api/v1/users/{user}/retire"), Some(&admin), Some(&serde_json::json!({"at": at})));
        assert_eq!((status, out["status"].as_str()), (200, Some("scheduled")), "{out}");
    };
    retire_at(later.user_id, 3600);
    retire_at(soon.user_id, 3);
    // The workers of both instances run every second: give the one ahead
    // several chances to act on its own clock.
    assert!(
        eventually(Duration::from_secs(15), || ocsp_status(&s, &soon.pem) == "revoked affiliationChanged"),
        "the retirement due in 3 s never happened"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ocsp_status(&s, &later.pem), "good", "a retirement due in an hour ran early:\n{}", ahead.log());
    let (_, user) = s.api("GET", "/api/v1/facilities/1/users", Some(&admin), None);
    let status = user.as_array().and_then(|a| a.iter().find(|u| u["id"] == later.user_id)).map(|u| u["status"].clone());
    assert_eq!(status, Some(serde_json::json!("active")), "{user}");
    ahead.kill();
}
