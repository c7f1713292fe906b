//! Expiry notices (issue 12, item 3): the list of device certificates
//! running out (a manager's facility, every facility for 行政管理課, no one
//! else), the city's page with the CA certificates' remaining life, the
//! e-mails to the facility's managers once at 30 and once at 7 days — and
//! to 行政管理課 for the CA certificates — exactly once however many ticks
//! run at the same time, and the gauges in /metrics.

use std::time::Duration;

use connect_pki_domain::Role;
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::{AppOptions, Backend, Sinks, TestApp, both_backends, spawn_app_with};
use connect_pki_ra::expiry::tick;
use connect_pki_ra::notify::NotifyConfig;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::world::world;

const DAY: time::Duration = time::Duration::days(1);

fn instant(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("an RFC 3339 string"), &Rfc3339).expect("RFC 3339")
}

/// When `who`'s certificate runs out.
async fn not_after(app: &TestApp, who: &Identity) -> OffsetDateTime {
    instant(&app.whoami(who).await["not_after"])
}

/// The expiring list as `who` sees it: (status, body).
async fn expiring(app: &TestApp, who: &Identity, query: &str) -> (u16, Value) {
    app.api("GET", &format!("/api/v1/certificates/expiring{query}"), Some(who), None).await
}

fn serials(list: &Value) -> Vec<String> {
    let rows = list["certificates"].as_array().expect("certificates").iter();
    rows.map(|c| c["serial"].as_str().expect("serial").to_string()).collect()
}

/// `columns` of the expiry e-mails in the outbox, oldest first, read directly.
async fn outbox(app: &TestApp, columns: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.expect("direct connection");
    let sql = format!("select {columns} from notifications where event = 'expiring' order by id");
    let rows = sqlx::query(&sql).fetch_all(&pool).await.expect("the outbox");
    pool.close().await;
    rows
}

/// The expiry e-mails in the outbox: (recipient, payload), oldest first.
async fn queued(app: &TestApp) -> Vec<(String, Value)> {
    outbox(app, "target, payload")
        .await
        .iter()
        .map(|r| {
            use sqlx::Row;
            let target: String = r.try_get("target").expect("target");
            let payload: String = r.try_get("payload").expect("payload");
            (target, serde_json::from_str(&payload).expect("JSON payload"))
        })
        .collect()
}

/// The recipients of the notices about `serial` at `days`, sorted.
fn recipients(all: &[(String, Value)], serial: &str, days: u64) -> Vec<String> {
    let mut to: Vec<String> = all
        .iter()
        .filter(|(_, p)| p["serial"] == serial && p["threshold_days"] == days)
        .map(|(t, _)| t.clone())
        .collect();
    to.sort();
    to
}

/// The metric `name` (with its labels) in a /metrics page.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// /metrics until `check` holds (the recorder is shared by every app of
/// this process, so another test's scrape can interleave with ours).
async fn metrics_until(app: &TestApp, check: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..5 {
        let page = app.try_mtls(Some(&app.admin), Req::new("GET", "/metrics")).await.expect("HTTPS");
        assert_eq!(page.status, 200);
        text = page.text();
        if check(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}

/// A manager sees their facility's certificates, 行政管理課 every
/// facility's (each row naming its facility), anyone else 403; a revoked
/// certificate leaves the list; `days` outside 1..=400 is a JSON 400.
async fn the_list_is_the_manager_s_own_and_the_city_s_all(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let staff_b = app.staff(&w.manager_b.id, w.facility_b, "kita.staff").await;
    let (status, list) = expiring(app, &w.manager_a.id, "").await;
    assert_eq!((status, list["within_days"].as_i64()), (200, Some(30)), "{list}");
    assert!(serials(&list).is_empty(), "nothing runs out within 30 days of issuance: {list}");

    let end = not_after(app, &w.staff_a.id).await;
    app.clock.set(end - 29 * DAY);
    let (status, a) = expiring(app, &w.manager_a.id, "").await;
    assert_eq!(status, 200, "{a}");
    let listed = serials(&a);
    assert!(listed.contains(&w.staff_a.serial) && listed.contains(&w.manager_a.serial), "{a}");
    assert!(!listed.contains(&w.manager_b.serial) && !listed.contains(&staff_b.serial), "only facility A: {a}");
    assert!(!a.to_string().contains("地域包括支援センター北"), "{a}");
    let row = a["certificates"].as_array().expect("rows").iter().find(|c| c["serial"] == w.staff_a.serial.as_str());
    let row = row.expect("hanako's certificate");
    assert_eq!(row["facility_id"], w.facility_a);
    assert_eq!(row["facility_name"], "デイケア南");
    assert_eq!((row["login_id"].as_str(), row["device_id"].as_i64()), (Some("hanako"), Some(w.staff_a.device_id)));
    assert_eq!((row["status"].as_str(), row["days_left"].as_i64()), (Some("valid"), Some(29)));
    assert_eq!(instant(&row["not_after"]), end);

    let (status, all) = expiring(app, &app.admin, "").await;
    assert_eq!(status, 200, "{all}");
    let listed = serials(&all);
    for s in [&w.staff_a.serial, &w.manager_a.serial, &w.manager_b.serial, &staff_b.serial, &app.admin_serial()] {
        assert!(listed.contains(s), "行政管理課 sees {s}: {all}");
    }
    let rows = all["certificates"].as_array().expect("rows");
    let b_row = rows.iter().find(|c| c["serial"] == staff_b.serial.as_str()).expect("facility B's staff");
    assert_eq!(
        (b_row["facility_id"].as_i64(), b_row["facility_name"].as_str()),
        (Some(w.facility_b), Some("地域包括支援センター北"))
    );

    for who in [&w.staff_a.id, &w.welfare] {
        let (status, body) = expiring(app, who, "").await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    }
    for bad in ["?days=0", "?days=401", "?days=abc", "?days=-1", "?days=99999999999"] {
        let (status, body) = expiring(app, &app.admin, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["code"].is_string(), "{bad}: {body}");
    }
    let (status, narrow) = expiring(app, &app.admin, "?days=28").await;
    assert_eq!((status, narrow["within_days"].as_i64()), (200, Some(28)), "{narrow}");
    assert!(serials(&narrow).is_empty(), "29 days left is not within 28: {narrow}");
    let (_, wide) = expiring(app, &app.admin, "?days=400").await;
    assert_eq!(serials(&wide).len(), listed.len(), "{wide}");

    // Revoked: no longer listed, for anyone.
    let path = format!("/api/v1/certificates/{}/revoke", staff_b.serial);
    let body = serde_json::json!({"reason": "affiliationChanged"});
    assert_eq!(app.api("POST", &path, Some(&w.manager_b.id), Some(&body)).await.0, 200);
    let (_, all) = expiring(app, &app.admin, "").await;
    assert!(!serials(&all).contains(&staff_b.serial), "{all}");

    // The console: the manager's page lists their own, the city's page
    // every facility's, with the CA certificates.
    let page = app.try_mtls(Some(&w.manager_a.id), Req::new("GET", "/console/expiring")).await.expect("page");
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(text.contains(&w.staff_a.serial) && text.contains("30 日以内"), "{text}");
    assert!(!text.contains(&w.manager_b.serial), "{text}");
    let city = app.try_mtls(Some(&app.admin), Req::new("GET", "/console/certificates/expiring")).await.expect("page");
    assert_eq!(city.status, 200, "{}", city.text());
    let text = city.text();
    assert!(text.contains("href=\"/console/certificates/expiring\" aria-current=\"page\""), "{text}");
    for s in [&w.staff_a.serial, &w.manager_b.serial] {
        assert!(text.contains(s.as_str()), "{s}: {text}");
    }
    assert!(text.contains("デイケア南") && text.contains("地域包括支援センター北"), "{text}");
    assert!(text.contains("ルートCA") && text.contains("発行CA") && text.contains("約 9 年"), "{text}");
    assert!(!text.contains(&staff_b.serial), "revoked: {text}");
    for who in [&w.manager_a.id, &w.welfare, &w.staff_a.id] {
        let refused =
            app.try_mtls(Some(who), Req::new("GET", "/console/certificates/expiring")).await.expect("refusal");
        assert_eq!(refused.status, 403, "{}", refused.text());
        assert!(!refused.text().contains(&w.staff_a.serial) && !refused.text().contains("ルートCA"));
    }
}
both_backends!(the_list_is_the_manager_s_own_and_the_city_s_all);

/// 行政管理課's number, which every e-mail ends with.
fn city_desk() -> connect_pki_ra::settings::CityDesk {
    connect_pki_ra::settings::CityDesk::new(Some("03-5555-0100".into()), Some("平日 8:30〜17:15".into()))
        .expect("a number")
}

/// An app whose e-mail goes to `sinks` (or nowhere reachable).
async fn app_mailing(backend: Backend, smtp_url: String) -> TestApp {
    app_mailing_with(backend, smtp_url, connect_pki_ra::Settings::default().notification_attempts).await
}

/// [`app_mailing`], trying each notice `attempts` times.
async fn app_mailing_with(backend: Backend, smtp_url: String, attempts: u32) -> TestApp {
    let notify = NotifyConfig {
        smtp_url: Some(smtp_url.parse().expect("an SMTP URL")),
        mail_from: "connect-pki@city.example".parse().expect("an address"),
        on_call: vec!["it-oncall@city.example".parse().expect("an address")],
        console_url: Some("https://pki.city.example:8443".parse().expect("a URL")),
        ..NotifyConfig::default()
    };
    spawn_app_with(
        backend,
        AppOptions::with(|c| {
            c.ra.notify = notify;
            c.ra.notification_attempts = attempts;
            c.ra.city_desk = city_desk();
        }),
    )
    .await
}

fn sinks() -> (tempfile::TempDir, Sinks) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = Sinks::start_logging_to(dir.path().join("sinks.jsonl"), "unused");
    (dir, sinks)
}

/// The e-mails the sink received to `to` whose subject contains `subject`.
async fn mails_to(sinks: &Sinks, to: &str, subject: &str, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..100 {
        got = sinks
            .entries()
            .into_iter()
            .filter(|e| {
                e["kind"] == "email"
                    && e["to"].as_array().is_some_and(|t| t.iter().any(|a| a == to))
                    && e["subject"].as_str().is_some_and(|s| s.contains(subject))
            })
            .collect();
        if got.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// "2027-11-20 09:00": `t` in Asia/Tokyo (UTC+9, no daylight saving time).
fn tokyo(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    (t + time::Duration::hours(9)).format(&fmt).expect("format")
}

/// 29 days before the end each manager of the facility gets one e-mail per
/// certificate; another tick sends nothing; 6 days before, one more each;
/// a revoked certificate gets none; the list shows what was sent.
async fn managers_are_told_once_at_30_and_once_at_7_days(backend: Backend) {
    let (_dir, sinks) = sinks();
    let app = app_mailing(backend, sinks.smtp_url()).await;
    let a = app.facility(&app.admin, "デイケア南", "minami.kanri").await;
    let manager = app.manager(&a, "manager-a").await;
    let second = app.register(&manager.id, a.id, "minami.fuku", "facility_manager").await;
    let code = app.code_for(&manager.id, second).await;
    let second = app.enroll_generated(&code, Some(connect_pki_e2e::fixtures::PASSWORD), "manager-a2").await;
    let staff = app.staff(&manager.id, a.id, "hanako").await;
    let gone = app.staff(&manager.id, a.id, "taro").await;
    let b = app.facility(&app.admin, "地域包括支援センター北", "kita.kanri").await;
    let manager_b = app.manager(&b, "manager-b").await;
    let path = format!("/api/v1/certificates/{}/revoke", gone.serial);
    let body = serde_json::json!({"reason": "affiliationChanged"});
    assert_eq!(app.api("POST", &path, Some(&manager.id), Some(&body)).await.0, 200);
    let managers_a = vec!["minami.fuku@example.test".to_string(), "minami.kanri@example.test".to_string()];

    let end = not_after(&app, &staff.id).await;
    app.clock.set(end - 31 * DAY);
    assert_eq!(tick(app.state()).await.expect("tick"), 0, "nothing is due 31 days before");
    app.clock.set(end - 29 * DAY);
    // admin (no manager to tell), manager A, its second manager, hanako, manager B.
    assert_eq!(tick(app.state()).await.expect("tick"), 5);
    let first = queued(&app).await;
    assert_eq!(recipients(&first, &staff.serial, 30), managers_a, "{first:?}");
    assert_eq!(recipients(&first, &manager_b.serial, 30), vec!["kita.kanri@example.test".to_string()]);
    assert!(recipients(&first, &gone.serial, 30).is_empty() && recipients(&first, &gone.serial, 7).is_empty());
    assert!(recipients(&first, &app.admin_serial(), 30).is_empty(), "facility 1 has no manager");
    assert_eq!(first.len(), 2 * 3 + 1, "three certificates of A to two managers, one of B to one: {first:?}");
    let p = &first.iter().find(|(_, p)| p["serial"] == staff.serial.as_str()).expect("hanako's notice").1;
    assert_eq!((p["device_id"].as_i64(), p["login_id"].as_str()), (Some(staff.device_id), Some("hanako")));

    assert_eq!(tick(app.state()).await.expect("tick"), 0, "already told");
    app.clock.advance(DAY);
    assert_eq!(tick(app.state()).await.expect("tick"), 0, "still told");
    assert_eq!(queued(&app).await.len(), first.len());

    let mail = mails_to(&sinks, "minami.kanri@example.test", "hanako", 1).await;
    assert_eq!(mail.len(), 1, "{:?}", sinks.entries());
    let m = &mail[0];
    assert!(m["subject"].as_str().is_some_and(|s| s.contains("残り30日以内")), "{m}");
    let text = m["body"].as_str().expect("body");
    for needle in [
        "デイケア南",
        "hanako さん（hanako）",
        &staff.serial,
        &tokyo(end),
        "（日本時間）",
        "https://pki.city.example:8443/console/expiring",
        "至急のときの連絡先: 行政管理課（電話 03-5555-0100、平日 8:30〜17:15）",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(text.contains(&format!("端末 {}「hanako」", staff.device_id)), "{text}");
    assert_eq!(mails_to(&sinks, "minami.fuku@example.test", "hanako", 1).await.len(), 1);

    let (_, list) = expiring(&app, &manager.id, "").await;
    let row = list["certificates"].as_array().expect("rows").iter().find(|c| c["serial"] == staff.serial.as_str());
    assert_eq!(row.expect("listed")["notices_sent"], serde_json::json!([30]), "{list}");

    app.clock.set(end - 6 * DAY);
    assert_eq!(tick(app.state()).await.expect("tick"), 5);
    assert_eq!(tick(app.state()).await.expect("tick"), 0);
    let second_round = queued(&app).await;
    assert_eq!(recipients(&second_round, &staff.serial, 7), managers_a);
    assert_eq!(recipients(&second_round, &staff.serial, 30), managers_a, "the 30-day notice is not repeated");
    assert_eq!(second_round.len(), 2 * first.len());
    assert!(recipients(&second_round, &gone.serial, 7).is_empty());
    let mail = mails_to(&sinks, "minami.kanri@example.test", "残り7日以内", 3).await;
    assert_eq!(mail.len(), 3, "manager A, the second manager and hanako: {:?}", sinks.entries());
    assert!(mail.iter().all(|m| m["subject"].as_str().is_some_and(|s| s.starts_with("【重要】"))));
    let (_, list) = expiring(&app, &second, "").await;
    let row = list["certificates"].as_array().expect("rows").iter().find(|c| c["serial"] == staff.serial.as_str());
    assert_eq!(row.expect("listed")["notices_sent"], serde_json::json!([7, 30]), "{list}");

    // Each notice is in the audit log, once.
    let (status, audit) =
        app.api("GET", "/api/v1/audit?action=certificate.expiry_notice&limit=1000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{audit}");
    let target = format!("certificate:{}", staff.serial);
    let mut days: Vec<i64> = audit
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["target"] == target.as_str())
        .map(|r| r["detail"]["threshold_days"].as_i64().expect("threshold"))
        .collect();
    days.sort_unstable();
    assert_eq!(days, vec![7, 30], "{audit}");

    // After a restart nothing is sent again.
    let mut app = app;
    app.stop().await;
    app.start().await;
    assert_eq!(tick(app.state()).await.expect("tick"), 0);
    assert_eq!(queued(&app).await.len(), second_round.len());
}
both_backends!(managers_are_told_once_at_30_and_once_at_7_days);

/// A certificate first seen inside the last week gets the 7-day notice
/// alone; nothing is recorded without an SMTP server to send it.
async fn first_seen_in_the_last_week_gets_the_final_notice_alone(backend: Backend) {
    let app = app_mailing(backend, "smtp://127.0.0.1:9".into()).await;
    let a = app.facility(&app.admin, "デイケア南", "minami.kanri").await;
    let manager = app.manager(&a, "manager-a").await;
    let staff = app.staff(&manager.id, a.id, "hanako").await;
    app.clock.set(not_after(&app, &staff.id).await - 5 * DAY);
    assert_eq!(tick(app.state()).await.expect("tick"), 3, "admin, manager, hanako");
    let all = queued(&app).await;
    assert_eq!(recipients(&all, &staff.serial, 7), vec!["minami.kanri@example.test".to_string()]);
    assert!(all.iter().all(|(_, p)| p["threshold_days"] == 7), "{all:?}");
    assert_eq!(tick(app.state()).await.expect("tick"), 0);

    let quiet = spawn_app_with(backend, AppOptions::default()).await;
    let f = quiet.facility(&quiet.admin, "デイケア南", "minami.kanri").await;
    let m = quiet.manager(&f, "manager-a").await;
    quiet.clock.set(not_after(&quiet, &m.id).await - 5 * DAY);
    assert_eq!(tick(quiet.state()).await.expect("tick"), 0);
    let (_, list) = expiring(&quiet, &m.id, "").await;
    let row = list["certificates"].as_array().expect("rows").iter().find(|c| c["serial"] == m.serial.as_str());
    assert_eq!(row.expect("listed")["notices_sent"], serde_json::json!([]), "{list}");
}
both_backends!(first_seen_in_the_last_week_gets_the_final_notice_alone);

/// A notice that is no emergency (an expiry notice) to a mail server that
/// refuses connections is tried `notification_attempts` times, each after
/// its backoff, then given up: failed, with the attempts and the error.
async fn an_expiry_notice_is_given_up_after_the_configured_attempts(backend: Backend) {
    let app = app_mailing_with(backend, "smtp://127.0.0.1:9".into(), 2).await;
    let a = app.facility(&app.admin, "デイケア北", "kita.kanri").await;
    let manager = app.manager(&a, "manager-k").await;
    app.clock.set(not_after(&app, &manager.id).await - 5 * DAY);
    assert!(tick(app.state()).await.expect("tick") > 0);
    let states = async || {
        use sqlx::Row;
        let mut out: Vec<(String, i64, bool)> = outbox(&app, "status, attempts, last_error")
            .await
            .iter()
            .map(|r| {
                let error: Option<String> = r.try_get("last_error").expect("last_error");
                (r.try_get("status").expect("status"), r.try_get("attempts").expect("attempts"), error.is_some())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        connect_pki_ra::notify::deliver_due(app.state()).await.expect("a delivery pass");
        seen.push(states().await);
        app.clock.advance(time::Duration::minutes(11));
    }
    let pending = |n| vec![("pending".to_string(), n, true)];
    let failed = vec![("failed".to_string(), 2, true)];
    assert_eq!(seen, vec![pending(1), failed.clone(), failed.clone(), failed]);
}
both_backends!(an_expiry_notice_is_given_up_after_the_configured_attempts);

/// Eight ticks at once, twenty times, each time with a new certificate
/// falling due: every notice is queued once — one e-mail per manager — and
/// no tick fails on the unique key.
async fn concurrent_ticks_send_each_notice_once(backend: Backend) {
    const ROUNDS: usize = 20;
    const TICKS: usize = 8;
    let app = app_mailing(backend, "smtp://127.0.0.1:9".into()).await;
    let a = app.facility(&app.admin, "デイケア南", "minami.kanri").await;
    let manager = app.manager(&a, "manager-a").await;
    // One certificate a day, so that each round one more falls due.
    let mut staff = Vec::new();
    for n in 0..ROUNDS {
        app.clock.advance(DAY);
        staff.extend(app.quick_user(a.id, &format!("staff{n}"), Role::Staff, 1).await);
    }
    let mut queued_before = queued(&app).await.len();
    for (round, s) in staff.iter().enumerate() {
        let end = not_after(&app, &manager.id).await + DAY * (round as i32 + 1);
        app.clock.set(end - 30 * DAY + time::Duration::minutes(1));
        let ticks: Vec<_> = (0..TICKS)
            .map(|_| {
                let state = app.state().clone();
                tokio::spawn(async move { tick(&state).await.map_err(|e| e.to_string()) })
            })
            .collect();
        let mut sent = 0;
        for t in ticks {
            sent += t.await.expect("the tick ran").expect("no tick fails");
        }
        let all = queued(&app).await;
        assert_eq!(
            recipients(&all, &s.serial, 30),
            vec!["minami.kanri@example.test".to_string()],
            "round {round}: {all:?}"
        );
        // Round 0 also finds the admin's and the manager's certificates due
        // (issued a day before the first staff member's); the admin's
        // facility has no manager to e-mail.
        let (new_notices, new_mails) = if round == 0 { (3, 2) } else { (1, 1) };
        assert_eq!(sent, new_notices, "round {round}");
        assert_eq!(all.len() - queued_before, new_mails, "round {round}");
        queued_before = all.len();
    }
    let (status, list) = expiring(&app, &app.admin, "").await;
    assert_eq!(status, 200, "{list}");
    let rows = list["certificates"].as_array().expect("rows");
    assert_eq!(rows.len(), ROUNDS + 2, "{list}");
    assert!(rows.iter().all(|r| r["notices_sent"] == serde_json::json!([30])), "{list}");
}
both_backends!(concurrent_ticks_send_each_notice_once);

/// The CA certificates: 行政管理課 (its active users and the on-call
/// address) gets one e-mail at 30 and one at 7 days before the issuing CA
/// runs out; /metrics shows both CA certificates' ends and how many device
/// certificates run out within 30 and 7 days.
async fn ca_certificates_are_announced_to_the_city_and_measured(backend: Backend) {
    let (_dir, sinks) = sinks();
    let app = app_mailing(backend, sinks.smtp_url()).await;
    app.quick_user(1, "gyosei", Role::AdminDivision, 1).await;
    let a = app.facility(&app.admin, "デイケア南", "minami.kanri").await;
    let manager = app.manager(&a, "manager-a").await;
    let end = not_after(&app, &manager.id).await;

    // Device certificates in /metrics, within 30 days and within 7.
    let in_force = |n: f64, m: f64| {
        move |t: &str| {
            metric(t, "connect_pki_certificates_expiring{within_days=\"30\"}") == Some(n)
                && metric(t, "connect_pki_certificates_expiring{within_days=\"7\"}") == Some(m)
        }
    };
    let text = metrics_until(&app, in_force(0.0, 0.0)).await;
    assert!(in_force(0.0, 0.0)(&text), "{text}");
    app.clock.set(end - 20 * DAY);
    // The bootstrap admin, gyosei and the manager.
    let text = metrics_until(&app, in_force(3.0, 0.0)).await;
    assert!(in_force(3.0, 0.0)(&text), "{text}");
    app.clock.set(end - 2 * DAY);
    let text = metrics_until(&app, in_force(3.0, 3.0)).await;
    assert!(in_force(3.0, 3.0)(&text), "{text}");

    let ca = |der: &[u8]| {
        let (_, c) = x509_parser::parse_x509_certificate(der).expect("CA certificate");
        (c.validity().not_after.timestamp(), c.tbs_certificate.raw_serial_as_string().replace(':', ""))
    };
    let (root_end, _) = ca(&app.ca.root_der);
    let (issuing_end, issuing_serial) = ca(&app.ca.issuing_der);
    assert_eq!(
        metric(&text, "connect_pki_ca_certificate_not_after_seconds{certificate=\"root\"}"),
        Some(root_end as f64)
    );
    assert_eq!(
        metric(&text, "connect_pki_ca_certificate_not_after_seconds{certificate=\"issuing\"}"),
        Some(issuing_end as f64)
    );

    let issuing_end = OffsetDateTime::from_unix_timestamp(issuing_end).expect("time");
    app.clock.set(issuing_end - 29 * DAY);
    // The device certificates ran out years ago: the issuing CA alone.
    assert_eq!(tick(app.state()).await.expect("tick"), 1);
    assert_eq!(tick(app.state()).await.expect("tick"), 0);
    let all = queued(&app).await;
    let city = vec!["gyosei@example.test".to_string(), "it-oncall@city.example".to_string()];
    assert_eq!(recipients(&all, &issuing_serial, 30), city, "{all:?}");
    let mail = mails_to(&sinks, "gyosei@example.test", "発行CA", 1).await;
    assert_eq!(mail.len(), 1, "{:?}", sinks.entries());
    let text = mail[0]["body"].as_str().expect("body");
    assert!(text.contains(&issuing_serial) && text.contains(&tokyo(issuing_end)), "{text}");
    app.clock.set(issuing_end - 6 * DAY);
    assert_eq!(tick(app.state()).await.expect("tick"), 1);
    assert_eq!(tick(app.state()).await.expect("tick"), 0);
    assert_eq!(recipients(&queued(&app).await, &issuing_serial, 7), city);
    assert_eq!(mails_to(&sinks, "it-oncall@city.example", "発行CA", 2).await.len(), 2);
}
both_backends!(ca_certificates_are_announced_to_the_city_and_measured);
