//! The delivery log of an escalation's notifications: a webhook URL is a
//! bearer secret on chat services, so only 行政管理課 (who configured it)
//! sees it; a manager working the same escalation sees that a webhook was
//! called, not where.

use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use connect_pki_ra::notify::NotifyConfig;
use serde_json::json;

/// Unreachable on purpose: the deliveries fail and stay in the log.
const WEBHOOK: &str = "http://127.0.0.1:9/services/T0KEN-of-the-chat-room";

/// A manager's report of a member of staff's device: the manager and the
/// path of the report's delivery log.
async fn reported(app: &TestApp, name: &str) -> (Enrolled, String) {
    let f = app.facility(&app.admin, &format!("{name}施設"), &format!("{name}.mgr")).await;
    let manager = app.manager(&f, &format!("{name}-mgr")).await;
    let staff = app.staff(&manager.id, f.id, &format!("{name}.staff")).await;
    let body = json!({"device_id": staff.device_id, "note": "紛失"});
    let (status, e) = app.api("POST", "/api/v1/escalations", Some(&manager.id), Some(&body)).await;
    assert_eq!(status, 201, "{e}");
    (manager, format!("/api/v1/escalations/{}/notifications", e["id"]))
}

fn to_the_webhook() -> NotifyConfig {
    NotifyConfig { webhook_url: Some(WEBHOOK.parse().expect("a URL")), ..NotifyConfig::default() }
}

async fn only_admin_division_sees_the_webhook_url(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = to_the_webhook())).await;
    let (manager, path) = reported(&app, "tsuchi").await;
    let (status, as_admin) = app.api("GET", &path, Some(&app.admin), None).await;
    assert_eq!(status, 200, "{as_admin}");
    let hooks: Vec<_> = as_admin.as_array().expect("log").iter().filter(|n| n["channel"] == "webhook").collect();
    assert!(!hooks.is_empty() && hooks.iter().all(|n| n["target"] == WEBHOOK), "{as_admin}");
    let (status, as_manager) = app.api("GET", &path, Some(&manager.id), None).await;
    assert_eq!(status, 200, "{as_manager}");
    let text = as_manager.to_string();
    assert!(!text.contains("T0KEN") && text.contains("webhook"), "{as_manager}");
}
both_backends!(only_admin_division_sees_the_webhook_url);

/// An emergency notice that cannot be delivered is tried again for a day
/// (`notify::EMERGENCY_RETRY`), however few attempts are configured — the
/// relay or chat service may be back within it — and only then given up, with
/// the attempts it took.
async fn an_emergency_notice_is_retried_for_a_day_before_it_is_given_up(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with(|c| {
            c.ra.notify = to_the_webhook();
            c.ra.notification_attempts = 3;
        }),
    )
    .await;
    let (_, path) = reported(&app, "saiso").await;
    let webhook = |log: &serde_json::Value| {
        log.as_array().expect("log").iter().find(|n| n["channel"] == "webhook").cloned().expect("a webhook")
    };
    let mut seen = Vec::new();
    // Well past every backoff: a try each time, until the day is over.
    for _ in 0..6 {
        connect_pki_ra::notify::deliver_due(app.state()).await.expect("a delivery pass");
        let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
        let hook = webhook(&log);
        seen.push((hook["attempts"].as_i64().expect("attempts"), hook["status"].as_str().expect("status").to_string()));
        app.clock.advance(time::Duration::hours(6));
    }
    let want: Vec<(i64, String)> =
        [(1, "pending"), (2, "pending"), (3, "pending"), (4, "pending"), (5, "failed"), (5, "failed")]
            .map(|(n, s)| (n, s.to_string()))
            .into();
    assert_eq!(seen, want);
}
both_backends!(an_emergency_notice_is_retried_for_a_day_before_it_is_given_up);

/// A mail server that accepts and then never says a word holds up neither
/// the webhook nor the worker: the report's webhook arrives while the e-mail
/// waits, and the e-mail attempt ends at the send timeout (the whole
/// exchange, not only the connect), recorded to be tried again.
async fn a_stalled_mail_server_holds_up_neither_the_webhook_nor_the_worker(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = connect_pki_e2e::Sinks::start_logging_to(dir.path().join("sinks.jsonl"), "unused");
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = stalled.local_addr().expect("address").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = stalled.accept().await {
            held.push(conn);
        }
    });
    let notify = NotifyConfig {
        webhook_url: Some(sinks.webhook_url("/hook").parse().expect("a URL")),
        smtp_url: Some(format!("smtp://127.0.0.1:{port}").parse().expect("an SMTP URL")),
        ..NotifyConfig::default()
    };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = notify)).await;
    let (_, path) = reported(&app, "teitai").await;
    let state = app.state().clone();
    let started = std::time::Instant::now();
    let pass = tokio::spawn(async move { connect_pki_ra::notify::deliver_due(&state).await });
    let webhook_arrived = loop {
        if sinks.entries().iter().any(|e| e["kind"] == "webhook") {
            break Some(started.elapsed());
        }
        if started.elapsed() > std::time::Duration::from_secs(5) {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(webhook_arrived.is_some(), "no webhook within 5 s while the mail server stalled");
    assert!(!pass.is_finished(), "the e-mail did not wait for the stalled server at all");
    let finished = tokio::time::timeout(std::time::Duration::from_secs(40), pass).await;
    holder.abort();
    finished.expect("the delivery pass never ended: a stalled mail server held it").expect("task").expect("a pass");
    let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
    let emails: Vec<_> = log.as_array().expect("log").iter().filter(|n| n["channel"] == "email").collect();
    assert!(!emails.is_empty(), "{log}");
    for e in emails {
        assert_eq!((e["status"].as_str(), e["attempts"].as_i64()), (Some("pending"), Some(1)), "{e}");
        assert!(e["last_error"].as_str().is_some_and(|m| m.contains("no answer within")), "{e}");
    }
}
both_backends!(a_stalled_mail_server_holds_up_neither_the_webhook_nor_the_worker);

/// A webhook that answers after `delay`: 200, with nothing in the body;
/// and how many requests reached it.
async fn slow_webhook(
    delay: std::time::Duration,
) -> (String, tokio::task::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = arrived.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, server, arrived)
}

/// A notice whose send takes longer than a third of its lease keeps the
/// lease while it is sent: another instance looking when the first lease
/// would have run out finds nothing to send, so the notice goes out once.
async fn a_notice_being_sent_keeps_its_lease(backend: Backend) {
    let (url, server, arrived) = slow_webhook(std::time::Duration::from_secs(8)).await;
    let notify = NotifyConfig { webhook_url: Some(url.parse().expect("a URL")), ..NotifyConfig::default() };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = notify)).await;
    let (_, path) = reported(&app, "enchou").await;
    // This pass or the service's own worker sends it, whichever leases it
    // first: the clock below starts when the request reaches the webhook.
    let state = app.state().clone();
    let pass = tokio::spawn(async move { connect_pki_ra::notify::deliver_due(&state).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while arrived.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the notice was never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Past the first renewal (half the send timeout), before the answer.
    tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
    let store = &app.state().store;
    let later = connect_pki_domain::Clock::now(&*app.clock) + time::Duration::seconds(31);
    let taken = store
        .lease_notifications(
            "another-instance",
            later,
            time::Duration::seconds(30),
            connect_pki_domain::NotifyChannel::Webhook,
            5,
        )
        .await
        .expect("lease");
    assert!(taken.is_empty(), "another instance could take the notice being sent: {taken:?}");
    pass.await.expect("task").expect("a pass");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let hook = loop {
        let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
        let hook = log.as_array().expect("log").iter().find(|n| n["channel"] == "webhook").cloned().expect("a webhook");
        if hook["status"] == "delivered" || std::time::Instant::now() > deadline {
            break hook;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    server.abort();
    assert_eq!((hook["status"].as_str(), hook["attempts"].as_i64()), (Some("delivered"), Some(1)), "{hook}");
    assert_eq!(arrived.load(std::sync::atomic::Ordering::SeqCst), 1, "sent more than once");
}
both_backends!(a_notice_being_sent_keeps_its_lease);

/// A mail server that answers, but each line only after 9 s: every single
/// wait is inside a per-command timeout, so only the bound on the whole
/// exchange ends the attempt. It is recorded to be tried again, and the
/// webhook of the same report went out meanwhile.
async fn a_mail_server_that_answers_each_line_slowly_is_bounded_as_a_whole(backend: Backend) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = connect_pki_e2e::Sinks::start_logging_to(dir.path().join("sinks.jsonl"), "unused");
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = slow.local_addr().expect("address").port();
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = slow.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = conn.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                let pause = std::time::Duration::from_secs(9);
                tokio::time::sleep(pause).await;
                if write.write_all(b"220 slow.example ESMTP\r\n").await.is_err() {
                    return;
                }
                while let Ok(Some(_)) = lines.next_line().await {
                    tokio::time::sleep(pause).await;
                    if write.write_all(b"250 ok\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let notify = NotifyConfig {
        webhook_url: Some(sinks.webhook_url("/hook").parse().expect("a URL")),
        smtp_url: Some(format!("smtp://127.0.0.1:{port}").parse().expect("an SMTP URL")),
        ..NotifyConfig::default()
    };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = notify)).await;
    let (_, path) = reported(&app, "osoi").await;
    connect_pki_ra::notify::deliver_due(app.state()).await.expect("a delivery pass");
    server.abort();
    let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
    // Recorded by the same pass: the webhook's exchange was made and
    // answered (the sink answers it), not held up by the mail server.
    let hooks: Vec<_> = log.as_array().expect("log").iter().filter(|n| n["channel"] == "webhook").collect();
    assert!(!hooks.is_empty(), "{log}");
    for h in hooks {
        assert_eq!(h["attempts"], 1, "{h}");
        assert!(h["last_error"].as_str().is_none_or(|m| !m.contains("no answer")), "the webhook waited: {h}");
    }
    let emails: Vec<_> = log.as_array().expect("log").iter().filter(|n| n["channel"] == "email").collect();
    assert!(!emails.is_empty(), "{log}");
    for e in emails {
        assert_eq!((e["status"].as_str(), e["attempts"].as_i64()), (Some("pending"), Some(1)), "{e}");
        assert!(e["last_error"].as_str().is_some_and(|m| m.contains("the whole exchange")), "{e}");
    }
}
both_backends!(a_mail_server_that_answers_each_line_slowly_is_bounded_as_a_whole);

/// A chat service that answers 503 while `down` is set and 200 otherwise;
/// the number of deliveries it accepted.
async fn flaky_webhook(
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut buf).await;
            let answer: &[u8] = if down.load(Ordering::SeqCst) {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            } else {
                counted.fetch_add(1, Ordering::SeqCst);
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = conn.write_all(answer).await;
        }
    });
    (url, accepted, server)
}

/// The chat service is down for 150 s (on the service's clock) after a
/// report: the emergency notice is tried all along, never given up, arrives
/// within a minute of the service coming back, and arrives once, however
/// many passes follow.
async fn an_emergency_notice_arrives_once_after_a_webhook_outage(backend: Backend) {
    use std::sync::atomic::Ordering;
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (url, accepted, server) = flaky_webhook(down.clone()).await;
    let notify = NotifyConfig { webhook_url: Some(url.parse().expect("a URL")), ..NotifyConfig::default() };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.notify = notify)).await;
    let (_, path) = reported(&app, "teiden").await;
    let second = time::Duration::seconds(1);
    let pass = || async { connect_pki_ra::notify::deliver_due(app.state()).await.expect("a delivery pass") };
    for _ in 0..150 {
        pass().await;
        app.clock.advance(second);
    }
    let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
    let hook = log.as_array().expect("log").iter().find(|n| n["channel"] == "webhook").cloned().expect("a webhook");
    assert_eq!(hook["status"], "pending", "given up during the outage: {hook}");
    assert!(hook["attempts"].as_i64().is_some_and(|n| n >= 6), "hardly tried during the outage: {hook}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    down.store(false, Ordering::SeqCst);
    let mut after = 0;
    while accepted.load(Ordering::SeqCst) == 0 && after <= 60 {
        pass().await;
        app.clock.advance(second);
        after += 1;
    }
    assert!(after <= 60, "the notice had not arrived a minute after the outage");
    // Ten more minutes of passes: nothing is sent again.
    for _ in 0..60 {
        app.clock.advance(time::Duration::seconds(10));
        pass().await;
    }
    server.abort();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the notice arrived more than once");
    let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
    let hook = log.as_array().expect("log").iter().find(|n| n["channel"] == "webhook").cloned().expect("a webhook");
    assert_eq!(hook["status"], "delivered", "{hook}");
}
both_backends!(an_emergency_notice_arrives_once_after_a_webhook_outage);
