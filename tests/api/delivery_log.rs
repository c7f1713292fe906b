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

/// A notification that cannot be delivered is tried `notification_attempts`
/// times, each retry after its backoff, and then given up: shown as failed
/// with the error, and not tried again however long one waits.
async fn a_notification_is_given_up_after_the_configured_attempts(backend: Backend) {
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
    // Well past every backoff: a try each time, until there are none left.
    for _ in 0..6 {
        connect_pki_ra::notify::deliver_due(app.state()).await.expect("a delivery pass");
        let (_, log) = app.api("GET", &path, Some(&app.admin), None).await;
        let hook = webhook(&log);
        seen.push((hook["attempts"].as_i64().expect("attempts"), hook["status"].as_str().expect("status").to_string()));
        app.clock.advance(time::Duration::minutes(11));
    }
    let want: Vec<(i64, String)> =
        [(1, "pending"), (2, "pending"), (3, "failed"), (3, "failed"), (3, "failed"), (3, "failed")]
            .map(|(n, s)| (n, s.to_string()))
            .into();
    assert_eq!(seen, want);
}
both_backends!(a_notification_is_given_up_after_the_configured_attempts);
