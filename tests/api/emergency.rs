//! An after-hours emergency report, worked through the API: the device is
//! on hold before the response, two operators claim at once, the winner
//! revokes. The clock stands on a Saturday night instead of the binary
//! running under libfaketime.

use connect_pki_e2e::client::Identity;
use connect_pki_e2e::fixtures::{PASSWORD, next_saturday_night};
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

async fn report(app: &TestApp, login: &str, password: &str, device: i64) -> (u16, Value) {
    let body = json!({"login_id": login, "password": password, "device_id": device});
    app.public_api("POST", "/api/v1/emergency", Some(&body)).await
}

/// A second 行政管理課 operator, for the double claim.
async fn second_operator(app: &TestApp) -> Identity {
    let body =
        json!({"display_name": "当番2", "login_id": "tooban2", "email": "t2@example.test", "role": "admin_division"});
    let (status, op2) = app.api("POST", "/api/v1/facilities/1/users", Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 201, "{op2}");
    let code = app.code_for(&app.admin, op2["id"].as_i64().expect("id")).await;
    app.enroll_generated(&code, Some(PASSWORD), "operator2").await
}

/// The one open escalation, in 行政管理課's queue.
async fn open_escalation(app: &TestApp) -> i64 {
    let (status, list) = app.api("GET", "/api/v1/escalations", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    let e = &list.as_array().expect("list")[0];
    assert_eq!((e["queue"].as_str(), e["status"].as_str()), (Some("admin_division"), Some("open")), "{e}");
    e["id"].as_i64().expect("id")
}

async fn saturday_night_report_goes_to_admin_division_and_ends_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("yoru.staff").await;
    let other = app.device("other.staff").await;
    let operator2 = second_operator(&app).await;
    app.clock.set(next_saturday_night());

    // Bad inputs first: nothing is held by any of them.
    assert_eq!(report(&app, "yoru.staff", "wrong password!", d.device_id).await.0, 401);
    assert_eq!(report(&app, "nobody.here", PASSWORD, d.device_id).await.0, 401);
    let (status, out) = report(&app, "yoru.staff", PASSWORD, other.device_id).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("not_your_device")), "{out}");
    assert_eq!(app.ocsp_status(&d.id).await, "good");

    let (status, out) = report(&app, "yoru.staff", PASSWORD, d.device_id).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["queue"], "admin_division", "Saturday night goes to 行政管理課: {out}");
    assert_eq!(out["held_serials"], json!([d.serial]));
    // On hold before the response: OCSP and our handshake refuse it.
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");
    assert!(!app.handshake_ok(&d.id).await);
    let (status, out) = report(&app, "yoru.staff", PASSWORD, d.device_id).await;
    assert_eq!(status, 409, "a second report of a held device: {out}");

    let id = open_escalation(&app).await;
    // Two operators claim at once: one wins, the other is told who did.
    let claim = format!("/api/v1/escalations/{id}/claim");
    let (a, b) =
        tokio::join!(app.api("POST", &claim, Some(&app.admin), None), app.api("POST", &claim, Some(&operator2), None));
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&200) && statuses.contains(&409), "{a:?} {b:?}");
    let (winner, loser) = if a.0 == 200 { (&app.admin, &b) } else { (&operator2, &a) };
    assert!(loser.1["error"]["message"].as_str().is_some_and(|m| m.contains("already claimed by user")), "{loser:?}");
    let body = json!({"outcome": "revoked", "note": "本人に確認、端末は見つからず"});
    let path = format!("/api/v1/escalations/{id}/resolve");
    let (status, out) = app.api("POST", &path, Some(winner), Some(&body)).await;
    let got = (status, out["status"].as_str(), out["outcome"].as_str());
    assert_eq!(got, (200, Some("resolved"), Some("revoked")), "{out}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked keyCompromise");
    audit_has_the_whole_story(&app).await;
}
both_backends!(saturday_night_report_goes_to_admin_division_and_ends_revoked);

async fn audit_has_the_whole_story(app: &TestApp) {
    let (_, log) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    let actions: Vec<String> = log
        .as_array()
        .expect("audit")
        .iter()
        .map(|r| format!("{} {}", r["action"].as_str().unwrap_or(""), r["outcome"].as_str().unwrap_or("")))
        .collect();
    for want in [
        "emergency.sign_in password checked",
        "emergency.sign_in unknown login ID",
        "emergency.sign_in ok",
        "escalation.open ok",
        "escalation.claim ok",
        "escalation.resolve ok",
    ] {
        assert!(actions.iter().any(|a| a == want), "no {want:?} in the audit log");
    }
}

/// `/metrics` shows the queue, holds, revocations by reason, OCSP traffic and
/// request latencies, in Prometheus text format. The recorder is shared by
/// every app in this process; the database figures are set from this app's
/// database when the page is rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_queue_and_revocations() {
    let app = spawn_app(Backend::Sqlite).await;
    let held = app.device("metric.held").await;
    let gone = app.device("metric.gone").await;
    let body = json!({"device_id": held.device_id});
    assert_eq!(app.api("POST", "/api/v1/escalations", Some(&app.admin), Some(&body)).await.0, 201);
    let path = format!("/api/v1/certificates/{}/revoke", gone.serial);
    let body = json!({"reason": "affiliationChanged"});
    assert_eq!(app.api("POST", &path, Some(&app.admin), Some(&body)).await.0, 200);
    assert_eq!(app.ocsp_status(&gone.id).await, "revoked affiliationChanged");
    let page =
        app.try_mtls(Some(&app.admin), connect_pki_e2e::client::Req::new("GET", "/metrics")).await.expect("HTTPS");
    assert_eq!(page.status, 200);
    let text = page.text();
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(value("connect_pki_escalations_open"), Some(1.0), "{text}");
    assert_eq!(value("connect_pki_certificates_on_hold"), Some(1.0), "{text}");
    assert_eq!(value("connect_pki_certificates_revoked{reason=\"affiliationChanged\"}"), Some(1.0), "{text}");
    assert!(value("connect_pki_escalation_oldest_open_age_seconds").is_some(), "{text}");
    assert!(value("connect_pki_ocsp_requests_total").is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.contains("connect_pki_http_request_duration_seconds_bucket"), "{text}");
}
