//! Account review (issue 25, item 8): a manager sees their facility's
//! devices nobody used for 90 days — from the recorded last use, not a
//! guess — is reminded on the console each quarter, confirms, and the
//! confirmation is in the audit log; 行政管理課 sees every facility's.

use connect_pki_domain::Role;
use connect_pki_e2e::{Backend, both_backends};

use crate::console_manager::{csrf_of, page_with, post};
use crate::world::world;

async fn unused_accounts_are_shown_for_review_each_quarter(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    // Never used: made straight in the store, no handshake.
    let idle = app.quick_user(w.facility_a, "tsukawanai", Role::Staff, 1).await;
    app.clock.advance(time::Duration::days(91));
    // hanako uses her device now; the count reaches the database.
    assert!(app.handshake_ok(&w.staff_a.id).await);
    connect_pki_ra::sightings::flush(app.state()).await.expect("sightings written");

    let queue = page_with(app, &w.manager_a.id, "/console/", "id=\"review-due\"").await;
    assert!(queue.contains("アカウントの棚卸しの時期"), "{queue}");
    let page = page_with(app, &w.manager_a.id, "/console/review", "使われていない端末").await;
    assert!(page.contains("tsukawanai") && page.contains("一度も使われていません"), "{page}");
    assert!(!page.contains("hanako"), "a device used today is listed: {page}");
    let other = page_with(app, &w.manager_b.id, "/console/review", "アカウントの棚卸し").await;
    assert!(!other.contains("tsukawanai"), "another facility's list: {other}");
    // The API says the same.
    let (status, api) =
        app.api("GET", &format!("/api/v1/facilities/{}/review", w.facility_a), Some(&w.manager_a.id), None).await;
    assert_eq!(status, 200, "{api}");
    let ids: Vec<i64> =
        api["unused"].as_array().expect("unused").iter().filter_map(|u| u["device_id"].as_i64()).collect();
    assert!(ids.contains(&idle[0].device_id) && !ids.contains(&w.staff_a.device_id), "{api}");
    assert_eq!(api["due"], true, "{api}");
    let city = page_with(app, &app.admin, "/console/review", "使われていない端末").await;
    assert!(city.contains("tsukawanai") && city.contains("デイケア南"), "{city}");

    // The manager's own device was just used too, once its count is written.
    connect_pki_ra::sightings::flush(app.state()).await.expect("sightings written");
    let r = post(app, &w.manager_a.id, "/console/review", &[("csrf", &csrf_of(&page))]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let after = page_with(app, &w.manager_a.id, "/console/review", "前回の確認").await;
    assert!(!after.contains("確認の時期です"), "{after}");
    let queue = page_with(app, &w.manager_a.id, "/console/", "対応待ちの届出").await;
    assert!(!queue.contains("id=\"review-due\""), "{queue}");
    let (_, log) = app.api("GET", "/api/v1/audit?action=account.review", Some(&app.admin), None).await;
    let rows = log.as_array().expect("log");
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0]["detail"]["count"], 1, "{log}");
    assert_eq!(idle.len(), 1);
    // A quarter later it is due again.
    app.clock.advance(time::Duration::days(91));
    page_with(app, &w.manager_a.id, "/console/", "id=\"review-due\"").await;
}
both_backends!(unused_accounts_are_shown_for_review_each_quarter);

/// The quarterly reminder by e-mail: none for a new facility, one to each
/// manager once a quarter has passed without a review (however often the
/// worker looks), none after the review until the next quarter.
async fn managers_are_reminded_by_email_once_a_quarter(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = connect_pki_e2e::Sinks::start_logging_to(dir.path().join("sinks.jsonl"), "unused");
    let notify = connect_pki_ra::notify::NotifyConfig {
        smtp_url: Some(sinks.smtp_url().parse().expect("an SMTP URL")),
        mail_from: "connect-pki@city.example".parse().expect("an address"),
        console_url: Some("https://pki.city.example:8443".parse().expect("a URL")),
        ..connect_pki_ra::notify::NotifyConfig::default()
    };
    let app =
        connect_pki_e2e::spawn_app_with(backend, connect_pki_e2e::AppOptions::with(|c| c.ra.notify = notify)).await;
    let f = app.facility(&app.admin, "棚卸しの施設", "tanaoroshi.kanri").await;
    let manager = app.manager(&f, "tanaoroshi").await;
    let reminders = async || {
        let (_, log) = app.api("GET", "/api/v1/audit?action=account.review_reminder", Some(&app.admin), None).await;
        log.as_array().expect("log").iter().filter(|r| r["facility_id"] == f.id).count()
    };
    connect_pki_ra::review::remind_due(app.state()).await.expect("remind");
    assert_eq!(reminders().await, 0, "a new facility is not due");
    app.clock.advance(time::Duration::days(92));
    for _ in 0..3 {
        connect_pki_ra::review::remind_due(app.state()).await.expect("remind");
    }
    assert_eq!(reminders().await, 1, "once a quarter, however often the worker looks");
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = sinks
            .entries()
            .into_iter()
            .filter(|e| e["kind"] == "email" && e["subject"].as_str().is_some_and(|s| s.contains("アカウントの棚卸し")))
            .collect();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0]["to"].as_array().is_some_and(|t| t.iter().any(|a| a == "tanaoroshi.kanri@example.test")),
        "{mails:?}"
    );
    assert!(mails[0].to_string().contains("/console/review"), "{mails:?}");
    // Reviewed: nothing until the next quarter.
    let page = page_with(&app, &manager.id, "/console/review", "アカウントの棚卸し").await;
    assert_eq!(post(&app, &manager.id, "/console/review", &[("csrf", &csrf_of(&page))]).await.status, 303);
    app.clock.advance(time::Duration::days(60));
    connect_pki_ra::review::remind_due(app.state()).await.expect("remind");
    assert_eq!(reminders().await, 1);
    app.clock.advance(time::Duration::days(32));
    connect_pki_ra::review::remind_due(app.state()).await.expect("remind");
    assert_eq!(reminders().await, 2);
}
both_backends!(managers_are_reminded_by_email_once_a_quarter);
