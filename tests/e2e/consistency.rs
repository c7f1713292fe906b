//! `connect-pki check` runs inside the service (issue 12, item 5): a
//! certificate in force that should not be — here a user marked retired
//! behind the service's back, as a restored backup or a hand edit leaves
//! it — shows in /metrics and as an error line naming it.

use std::time::{Duration, Instant};

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, Server, both_backends};

async fn the_service_checks_itself_and_says_so(backend: Backend) {
    let env = [("CONNECT_PKI_CONSISTENCY_CHECK_SECONDS", "1")];
    let s = Server::start_with(backend, &env).await;
    let d = device(&s, &s.admin_pem(), "behind.the.back");
    let offenders = |s: &Server| {
        let metrics = s.metrics();
        metrics.lines().find_map(|l| l.strip_prefix("connect_pki_consistency_offenders ").map(str::to_string))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while offenders(&s).as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "no check ran: {:?}", offenders(&s));
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = match backend {
        Backend::Sqlite => connect_pki_server::config::default_database_url(&s.data_dir),
        Backend::Postgres => s.db.url.clone(),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("the service's database");
    sqlx::query("update users set status = 'retired' where id = $1")
        .bind(d.user_id)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;

    while offenders(&s).as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "the offender was not counted: {:?}", offenders(&s));
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.log();
    let line = log.lines().find(|l| l.contains("consistency check: certificates in force")).expect("an error line");
    assert!(line.contains(&d.serial) && line.contains("ERROR"), "{line}");

    // Scraped ten times in a row, the database figures were read at most
    // twice (issue 24: every scrape ran the SQL): they are kept 5 s.
    let reads = |s: &Server| -> u64 {
        s.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("connect_pki_metrics_figures_read_total ").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    };
    let before = reads(&s);
    assert!(before >= 1, "the figures were never read");
    let started = Instant::now();
    for _ in 0..10 {
        reads(&s);
    }
    let after = reads(&s);
    assert!(after - before <= 1 + u64::from(started.elapsed() >= Duration::from_secs(5)), "{before} → {after}");
}
both_backends!(the_service_checks_itself_and_says_so);
