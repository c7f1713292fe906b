//! Rules that depend on time, on a clock the test steps instead of running
//! the binary under libfaketime: the SLA move of an emergency report, the
//! hold limit, the sign-in lockout and a scheduled retirement caught up after
//! downtime.
//!
//! Both backends: due work is measured against the injected clock whenever
//! it is not the system clock (on PostgreSQL in production, the database's
//! clock is the reference; see `service::due_now`).

use connect_pki_domain::Clock;
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use serde_json::{Value, json};

async fn report(app: &TestApp, login: &str, password: &str, device: i64) -> (u16, Value) {
    let body = json!({"login_id": login, "password": password, "device_id": device});
    app.public_api("POST", "/api/v1/emergency", Some(&body)).await
}

/// Audit records written by `actor` (the workers write as `system:…`).
async fn audit_by(app: &TestApp, actor: &str) -> Vec<Value> {
    let (status, log) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{log}");
    log.as_array().expect("audit").iter().filter(|r| r["actor"] == actor).cloned().collect()
}

/// Business hours: the manager's queue first, then 行政管理課 once the SLA
/// (1 minute here) passes unclaimed.
async fn weekday_report_goes_to_the_manager_then_to_admin_division_after_the_sla(backend: Backend) {
    let opts = AppOptions::with(|c| c.ra.escalation_sla = time::Duration::minutes(1));
    let app = spawn_app_with(backend, opts).await;
    let d = app.device("hiru.staff").await;
    app.clock.set(connect_pki_e2e::fixtures::next_business_morning());
    let (status, out) = report(&app, "hiru.staff", PASSWORD, d.device_id).await;
    assert_eq!((status, out["queue"].as_str()), (201, Some("manager")), "{out}");
    app.clock.advance(time::Duration::seconds(61));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, list) = app.api("GET", "/api/v1/escalations", Some(&app.admin), None).await;
        if list[0]["queue"] == "admin_division" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never moved to 行政管理課: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
both_backends!(weekday_report_goes_to_the_manager_then_to_admin_division_after_the_sla);

/// The escalation of `device`, as 行政管理課 lists them.
async fn escalation_of(app: &TestApp, device: i64) -> Value {
    let (status, list) = app.api("GET", "/api/v1/escalations?status=all", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("list").iter().find(|e| e["device_id"] == device).cloned().expect("its escalation")
}

/// A report whose device the manager (here 行政管理課, from the staff page
/// or the API) then stopped — reported lost, or its certificate revoked —
/// is closed as revoked at once, and the SLA moves nothing to 行政管理課
/// (no 【至急】 for an emergency already handled); a report left alone still
/// moves.
async fn a_report_already_handled_is_closed_and_never_escalated(backend: Backend) {
    let opts = AppOptions::with(|c| c.ra.escalation_sla = time::Duration::minutes(1));
    let app = spawn_app_with(backend, opts).await;
    let lost = app.device("nakushita.staff").await;
    let revoked = app.device("shikkou.staff").await;
    let alone = app.device("sonomama.staff").await;
    app.clock.set(connect_pki_e2e::fixtures::next_business_morning());
    for (login, d) in [("nakushita.staff", &lost), ("shikkou.staff", &revoked), ("sonomama.staff", &alone)] {
        let (status, out) = report(&app, login, PASSWORD, d.device_id).await;
        assert_eq!((status, out["queue"].as_str()), (201, Some("manager")), "{out}");
    }
    let path = format!("/api/v1/devices/{}/lost", lost.device_id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let path = format!("/api/v1/certificates/{}/revoke", revoked.serial);
    let body = json!({"reason": "keyCompromise"});
    assert_eq!(app.api("POST", &path, Some(&app.admin), Some(&body)).await.0, 200);
    for d in [&lost, &revoked] {
        let e = escalation_of(&app, d.device_id).await;
        assert_eq!((e["status"].as_str(), e["outcome"].as_str()), (Some("resolved"), Some("revoked")), "{e}");
        assert!(e["resolution_note"].as_str().is_some_and(|n| n.contains("失効")), "{e}");
    }
    assert_eq!(escalation_of(&app, alone.device_id).await["status"], "open");
    app.clock.advance(time::Duration::seconds(61));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while escalation_of(&app, alone.device_id).await["queue"] != "admin_division" {
        assert!(std::time::Instant::now() < deadline, "the report left alone never moved to 行政管理課");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for d in [&lost, &revoked] {
        let e = escalation_of(&app, d.device_id).await;
        assert_eq!((e["queue"].as_str(), e["status"].as_str()), (Some("manager"), Some("resolved")), "{e}");
        let id = e["id"].as_i64().expect("id");
        let (status, sent) =
            app.api("GET", &format!("/api/v1/escalations/{id}/notifications"), Some(&app.admin), None).await;
        assert_eq!(status, 200, "{sent}");
        assert!(
            sent.as_array().expect("list").iter().all(|n| n["event"] != "escalated"),
            "【至急】 for a handled report: {sent}"
        );
    }
}
both_backends!(a_report_already_handled_is_closed_and_never_escalated);

/// The same promise for every bulk path that stops devices: a retirement
/// now, a retirement that comes due (run by the worker), and a facility
/// closed. Each report is closed as revoked in the transaction that stopped
/// its device, and only the report left alone moves to 行政管理課.
async fn a_report_whose_device_a_bulk_change_stopped_is_closed(backend: Backend) {
    let opts = AppOptions::with(|c| c.ra.escalation_sla = time::Duration::minutes(1));
    let app = spawn_app_with(backend, opts).await;
    let retired = app.device("taishoku.staff").await;
    let scheduled = app.device("yotei.staff").await;
    let alone = app.device("nokoru.staff").await;
    let closing = app.facility(&app.admin, "閉所する施設", "heisho.kanri").await;
    let manager = app.manager(&closing, "heisho-kanri-1").await;
    let staff = app.staff(&manager.id, closing.id, "heisho.staff").await;
    app.clock.set(connect_pki_e2e::fixtures::next_business_morning());
    let reports =
        [("taishoku.staff", &retired), ("yotei.staff", &scheduled), ("nokoru.staff", &alone), ("heisho.staff", &staff)];
    for (login, d) in reports {
        let (status, out) = report(&app, login, PASSWORD, d.device_id).await;
        assert_eq!((status, out["queue"].as_str()), (201, Some("manager")), "{out}");
    }
    let path = format!("/api/v1/users/{}/retire", retired.user_id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let path = format!("/api/v1/users/{}/retire", scheduled.user_id);
    let at = app.clock.now() + time::Duration::seconds(20);
    let body = json!({"at": at.format(&time::format_description::well_known::Rfc3339).expect("time")});
    let (status, out) = app.api("POST", &path, Some(&app.admin), Some(&body)).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("scheduled")), "{out}");
    let path = format!("/api/v1/facilities/{}/close", closing.id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    for d in [&retired, &staff] {
        let e = escalation_of(&app, d.device_id).await;
        assert_eq!((e["status"].as_str(), e["outcome"].as_str()), (Some("resolved"), Some("revoked")), "{e}");
    }
    assert_eq!(escalation_of(&app, scheduled.device_id).await["status"], "open", "not due yet");
    // Due, and still inside the SLA: the worker retires the user.
    app.clock.advance(time::Duration::seconds(30));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while escalation_of(&app, scheduled.device_id).await["status"] != "resolved" {
        assert!(std::time::Instant::now() < deadline, "the scheduled retirement never closed its report");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.clock.advance(time::Duration::seconds(31));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while escalation_of(&app, alone.device_id).await["queue"] != "admin_division" {
        assert!(std::time::Instant::now() < deadline, "the report left alone never moved to 行政管理課");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for d in [&retired, &scheduled, &staff] {
        let e = escalation_of(&app, d.device_id).await;
        assert_eq!((e["queue"].as_str(), e["status"].as_str()), (Some("manager"), Some("resolved")), "{e}");
        assert!(e["resolution_note"].as_str().is_some_and(|n| n.contains("失効")), "{e}");
    }
}
both_backends!(a_report_whose_device_a_bulk_change_stopped_is_closed);

/// A hold nobody resolves turns into a revocation at its limit, even across
/// a restart.
async fn a_hold_left_alone_becomes_a_revocation(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let d = app.device("forgotten").await;
    let body = json!({"device_id": d.device_id, "note": "電話で受付"});
    let (status, out) = app.api("POST", "/api/v1/escalations", Some(&app.admin), Some(&body)).await;
    assert_eq!((status, out["channel"].as_str()), (201, Some("phone")), "{out}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");
    app.stop().await;
    app.clock.advance(time::Duration::hours(73));
    app.start().await;
    assert_eq!(app.ocsp_status(&d.id).await, "revoked keyCompromise");
    // Done by the hold-limit worker at start, not by anyone's call.
    assert!(!audit_by(&app, "system:hold-limit").await.is_empty(), "no revocation by the hold limit in the audit log");
}
both_backends!(a_hold_left_alone_becomes_a_revocation);

/// Wrong passwords make the source wait: then even the right one is refused
/// from there, with the same answer as a wrong one, until the backoff ends.
async fn wrong_passwords_lock_the_emergency_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("locked.out").await;
    for i in 0..connect_pki_domain::sign_in::TRIES_PER_SOURCE {
        let (status, out) = report(&app, "locked.out", "not the password", d.device_id).await;
        assert_eq!((status, out["error"]["code"].as_str()), (401, Some("sign_in_failed")), "try {i}: {out}");
    }
    let (status, out) = report(&app, "locked.out", PASSWORD, d.device_id).await;
    assert_eq!((status, out["error"]["code"].as_str()), (401, Some("sign_in_failed")), "{out}");
    assert_eq!(app.ocsp_status(&d.id).await, "good");
    app.clock.advance(connect_pki_domain::sign_in::FIRST_BACKOFF);
    let (status, out) = report(&app, "locked.out", PASSWORD, d.device_id).await;
    assert_eq!(status, 201, "after the backoff: {out}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");
}
both_backends!(wrong_passwords_lock_the_emergency_sign_in);

/// A retirement that fell due while the service was down is carried out
/// before it answers again.
async fn scheduled_retirement_is_caught_up_after_downtime(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let d = app.device("away").await;
    let at = (connect_pki_domain::Clock::now(&*app.clock) + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let path = format!("/api/v1/users/{}/retire", d.user_id);
    let (status, out) = app.api("POST", &path, Some(&app.admin), Some(&json!({"at": at}))).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("scheduled")), "{out}");
    app.stop().await;
    app.clock.advance(time::Duration::seconds(3));
    app.start().await;
    // The first answers after the restart already reflect it.
    assert!(!app.handshake_ok(&d.id).await);
    assert_eq!(app.ocsp_status(&d.id).await, "revoked affiliationChanged");
    let done = audit_by(&app, "system:scheduled-retirement").await;
    assert!(done.iter().any(|r| r["action"] == "user.retire"), "not carried out by the scheduler: {done:?}");
}
both_backends!(scheduled_retirement_is_caught_up_after_downtime);
