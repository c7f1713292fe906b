//! The delivery log of an escalation's notifications: a webhook URL is a
//! bearer secret on chat services, so only 行政管理課 (who configured it)
//! sees it; a manager working the same escalation sees that a webhook was
//! called, not where.

use connect_pki_e2e::{AppOptions, Backend, both_backends, spawn_app_with};
use connect_pki_server::service::notify::NotifyConfig;
use serde_json::json;

/// Unreachable on purpose: the deliveries fail and stay in the log.
const WEBHOOK: &str = "http://127.0.0.1:9/services/T0KEN-of-the-chat-room";

async fn only_admin_division_sees_the_webhook_url(backend: Backend) {
    let notify = NotifyConfig { webhook_url: Some(WEBHOOK.into()), ..NotifyConfig::default() };
    let app = spawn_app_with(backend, AppOptions { notify, ..AppOptions::default() }).await;
    let f = app.facility(&app.admin, "通知先施設", "tsuchi.mgr").await;
    let manager = app.manager(&f, "tsuchi-mgr").await;
    let staff = app.staff(&manager.id, f.id, "tsuchi.staff").await;
    let body = json!({"device_id": staff.device_id, "note": "紛失"});
    let (status, e) = app.api("POST", "/api/v1/escalations", Some(&manager.id), Some(&body)).await;
    assert_eq!(status, 201, "{e}");
    let path = format!("/api/v1/escalations/{}/notifications", e["id"]);
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
