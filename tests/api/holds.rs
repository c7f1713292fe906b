//! Holds placed by an emergency report are lifted only through its
//! escalation (issue 10): a direct release of such a certificate is refused
//! whoever asks, while the escalation is open or claimed; resolving it as
//! released lifts exactly the holds the report placed. Holds placed directly
//! stay free to release.

use connect_pki_ca::{DeviceSubject, KeyKind};
use connect_pki_domain::{Clock, DeviceId, FacilityId, UserId};
use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::client::Identity;
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use serde_json::{Value, json};

async fn post(app: &TestApp, who: &Identity, path: &str, body: Option<&Value>) -> (u16, Value) {
    app.api("POST", path, Some(who), body).await
}

async fn change(app: &TestApp, who: &Identity, serial: &str, what: &str) -> (u16, Value) {
    post(app, who, &format!("/api/v1/certificates/{serial}/{what}"), None).await
}

/// `who` reports the device of `d` lost; returns the escalation id and the
/// serials the report held.
async fn report(app: &TestApp, who: &Identity, d: &Enrolled) -> (i64, Value) {
    let body = json!({"device_id": d.device_id, "note": "端末が見当たらない"});
    let (status, out) = post(app, who, "/api/v1/escalations", Some(&body)).await;
    assert_eq!(status, 201, "{out}");
    (out["id"].as_i64().expect("id"), out["serials"].clone())
}

/// The escalation's status as the queue lists it.
async fn escalation_status(app: &TestApp, id: i64) -> String {
    let (status, list) = app.api("GET", "/api/v1/escalations?status=all", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    let e = list.as_array().expect("list").iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id}: {list}"));
    e["status"].as_str().expect("status").to_string()
}

/// 行政管理課 claims and resolves escalation `id` as `outcome`; returns the
/// serials the resolution changed.
async fn claim_and_resolve(app: &TestApp, id: i64, outcome: &str) -> Value {
    let (status, out) = post(app, &app.admin, &format!("/api/v1/escalations/{id}/claim"), None).await;
    assert_eq!(status, 200, "{out}");
    let body = json!({"outcome": outcome, "note": "本人と連絡がつき、端末は手元にあった"});
    let (status, out) = post(app, &app.admin, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, out["outcome"].as_str()), (200, Some(outcome)), "{out}");
    out["serials"].clone()
}

fn assert_held_by(reply: &(u16, Value), escalation: i64) {
    let (status, out) = reply;
    assert_eq!((*status, out["error"]["code"].as_str()), (409, Some("held_by_escalation")), "{out}");
    let message = out["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("escalation {escalation}")), "the refusal names the escalation: {out}");
}

/// A facility with its manager and one staff device.
async fn facility(app: &TestApp) -> (Enrolled, Enrolled) {
    let f = app.facility(&app.admin, "訪問介護ひがし", "higashi.kanri").await;
    let manager = app.manager(&f, "manager").await;
    let staff = app.staff(&manager.id, f.id, "taro").await;
    (manager, staff)
}

/// The attack as found: the manager reports a staff device, then releases the
/// hold directly. Refused, before and after the claim, for every role; the
/// escalation stays open and the certificate held until it is resolved.
async fn a_release_cannot_bypass_the_escalation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, staff) = facility(&app).await;
    let (id, held) = report(&app, &manager.id, &staff).await;
    assert_eq!(held, json!([staff.serial]));
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");

    assert_held_by(&change(&app, &manager.id, &staff.serial, "release").await, id);
    assert_eq!(escalation_status(&app, id).await, "open");
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");
    assert!(!app.handshake_ok(&staff.id).await, "still held: the handshake is refused");
    // 行政管理課 too: the way out is the escalation, for everyone.
    assert_held_by(&change(&app, &app.admin, &staff.serial, "release").await, id);

    let (status, out) = post(&app, &app.admin, &format!("/api/v1/escalations/{id}/claim"), None).await;
    assert_eq!(status, 200, "{out}");
    assert_held_by(&change(&app, &manager.id, &staff.serial, "release").await, id);
    assert_held_by(&change(&app, &app.admin, &staff.serial, "release").await, id);
    assert_eq!(escalation_status(&app, id).await, "claimed");
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");

    let body = json!({"outcome": "released", "note": "端末は見つかった"});
    let (status, out) = post(&app, &app.admin, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, &out["serials"]), (200, &json!([staff.serial])), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "good");
    let (status, out) = change(&app, &manager.id, &staff.serial, "release").await;
    assert_eq!((status, out["changed"].as_bool()), (200, Some(false)), "{out}");
}
both_backends!(a_release_cannot_bypass_the_escalation);

/// A hold placed directly, with no escalation, is released directly; a
/// certificate an escalation holds can still be revoked, and that settles
/// the report (nothing of the device is in force any more).
async fn direct_holds_stay_free_and_revocation_stays_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, staff) = facility(&app).await;
    let (status, out) = change(&app, &manager.id, &staff.serial, "hold").await;
    assert_eq!((status, out["status"].as_str()), (200, Some("on_hold")), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");
    let (status, out) = change(&app, &manager.id, &staff.serial, "release").await;
    assert_eq!((status, out["status"].as_str(), out["changed"].as_bool()), (200, Some("valid"), Some(true)), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "good");

    let (id, _) = report(&app, &manager.id, &staff).await;
    let path = format!("/api/v1/certificates/{}/revoke", staff.serial);
    let (status, out) = post(&app, &manager.id, &path, Some(&json!({"reason": "keyCompromise"}))).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("revoked")), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked keyCompromise");
    assert_eq!(escalation_status(&app, id).await, "resolved");
}
both_backends!(direct_holds_stay_free_and_revocation_stays_allowed);

/// Resolving as released lifts the holds the report placed and no others: a
/// second certificate of the device, held directly before the report, stays
/// held, and stays free to release directly.
async fn released_lifts_only_the_escalations_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, staff) = facility(&app).await;
    let (second, second_serial) = second_certificate(&app, &staff).await;
    assert_eq!(app.ocsp_status(&second).await, "good");
    let (status, out) = change(&app, &manager.id, &second_serial, "hold").await;
    assert_eq!((status, out["status"].as_str()), (200, Some("on_hold")), "{out}");

    let (id, held) = report(&app, &manager.id, &staff).await;
    assert_eq!(held, json!([staff.serial]), "the report holds what was valid");
    assert_held_by(&change(&app, &manager.id, &staff.serial, "release").await, id);
    assert_eq!(claim_and_resolve(&app, id, "released").await, json!([staff.serial]));
    assert_eq!(app.ocsp_status(&staff.id).await, "good");
    assert_eq!(app.ocsp_status(&second).await, "revoked certificateHold", "a hold the report did not place");

    let (status, out) = change(&app, &manager.id, &second_serial, "release").await;
    assert_eq!((status, out["changed"].as_bool()), (200, Some(true)), "{out}");
    assert_eq!(app.ocsp_status(&second).await, "good");
}
both_backends!(released_lifts_only_the_escalations_holds);

/// A second valid certificate of the device of `d`, signed by the service's
/// CA and stored with its feed row as issuance stores one. The API keeps one
/// live certificate per device (renewal supersedes), so the test writes it:
/// the rule must not rely on that.
async fn second_certificate(app: &TestApp, d: &Enrolled) -> (Identity, String) {
    let me = app.whoami(&d.id).await;
    let subject = DeviceSubject {
        facility: FacilityId(me["facility_id"].as_i64().expect("facility")),
        user: UserId(d.user_id),
        device: DeviceId(d.device_id),
        login_id: me["login_id"].as_str().unwrap_or("taro").to_string(),
    };
    let now = app.clock.now();
    let (cert, key) =
        app.ca.issuing.issue_device_with_new_key(KeyKind::P256, &subject, now).expect("second certificate");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.expect("direct connection");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query(
        "insert into certificates (serial, device_id, der, not_before, not_after, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, 'valid', $6, $6)",
    )
    .bind(cert.serial.to_hex())
    .bind(d.device_id)
    .bind(cert.der.clone())
    .bind(cert.not_before.unix_timestamp())
    .bind(cert.not_after.unix_timestamp())
    .bind(now.unix_timestamp())
    .execute(&mut *tx)
    .await
    .expect("insert certificate");
    sqlx::query("insert into cert_events (serial, status, reason, at) values ($1, 'valid', null, $2)")
        .bind(cert.serial.to_hex())
        .bind(now.unix_timestamp())
        .execute(&mut *tx)
        .await
        .expect("insert feed row");
    tx.commit().await.expect("commit");
    pool.close().await;
    app.state().revocations.sync().await.expect("the index follows the feed");
    (Identity { cert_der: cert.der, key_der: key.pkcs8_der().to_vec() }, cert.serial.to_hex())
}

/// The pages say it in Japanese, naming the report's reception number.
#[test]
fn the_refusal_reads_in_japanese() {
    use connect_pki_ra::{Conflict, ServiceError};
    use connect_pki_server::http::error::ApiError;
    let serial = "0a0b".parse().expect("serial");
    let held = connect_pki_store::Conflict::HeldByEscalation { escalation: 42, serial };
    let e = ApiError::Service(ServiceError::Conflict(Conflict::Record(held)));
    assert_eq!(e.status(), 409);
    let message = e.message_ja();
    assert!(message.contains("受付 42") && message.contains("解除"), "{message}");
}

/// A manager whose own device 行政管理課 reported lost may work the report
/// but not lift its hold: only someone other than the holder can say the
/// device was found.
async fn the_holder_cannot_lift_the_hold_on_their_own_device(backend: Backend) {
    // The next business morning can be days away (after a weekend or
    // holidays): past the default hold limit, which is not what this is about.
    let opts = AppOptions::with(|c| c.ra.hold_limit = time::Duration::days(14));
    let app = spawn_app_with(backend, opts).await;
    let (manager, _) = facility(&app).await;
    let (id, held) = report(&app, &app.admin, &manager).await;
    assert_eq!(held, json!([manager.serial]));
    // The report holds that device's certificate: the manager acts from a second device.
    let code = app.code_for(&app.admin, manager.user_id).await;
    let second = app.enroll_csr(&code, None, "manager-2", "higashi.kanri").await;
    // Business hours, when a manager may otherwise lift a hold.
    app.clock.set(connect_pki_e2e::fixtures::next_business_morning());
    let (status, out) = post(&app, &second, &format!("/api/v1/escalations/{id}/claim"), None).await;
    assert_eq!(status, 200, "{out}");
    let body = json!({"outcome": "released", "note": "自分の端末は見つかった"});
    let (status, out) = post(&app, &second, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("forbidden")), "{out}");
    assert_eq!(app.ocsp_status(&manager.id).await, "revoked certificateHold");
    // Another member of 行政管理課 (not the reporter) may.
    app.clock.set(time::OffsetDateTime::now_utc());
    let colleague = app.register(&app.admin, 1, "gyosei.2", "admin_division").await;
    let code = app.code_for(&app.admin, colleague).await;
    let colleague = app.enroll_csr(&code, Some(connect_pki_e2e::fixtures::PASSWORD), "gyosei-2", "gyosei.2").await;
    let (status, out) = post(&app, &colleague, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(app.ocsp_status(&manager.id).await, "good");
}
both_backends!(the_holder_cannot_lift_the_hold_on_their_own_device);

/// A rejected report (a mistake, someone else's prank) lifts the holds it
/// placed, under the rules of a release: not by a manager at night.
async fn a_rejected_report_lifts_its_holds(backend: Backend) {
    // Next Saturday night is up to a week ahead: past the default hold
    // limit, which would revoke the hold before the rejection can lift it.
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.hold_limit = time::Duration::days(14))).await;
    let (manager, staff) = facility(&app).await;
    let (id, _) = report(&app, &manager.id, &staff).await;
    app.clock.set(connect_pki_e2e::fixtures::next_saturday_night());
    let (status, out) = post(&app, &manager.id, &format!("/api/v1/escalations/{id}/claim"), None).await;
    assert_eq!(status, 200, "{out}");
    let body = json!({"outcome": "rejected", "note": "誤報"});
    let (status, out) = post(&app, &manager.id, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("forbidden")), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");
    let (status, out) = post(&app, &app.admin, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, &out["serials"]), (200, &json!([staff.serial])), "{out}");
    assert_eq!(app.ocsp_status(&staff.id).await, "good");
    assert!(app.handshake_ok(&staff.id).await);
}
both_backends!(a_rejected_report_lifts_its_holds);

/// A manager's own lost device goes to 行政管理課 even in business hours:
/// the manager may not lift its hold, so their own queue is the wrong place.
async fn a_managers_own_device_is_reported_to_the_city(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, staff) = facility(&app).await;
    app.clock.set(connect_pki_e2e::fixtures::next_business_morning());
    let (own, _) = report(&app, &manager.id, &manager).await;
    let (theirs, _) = report(&app, &app.admin, &staff).await;
    let (_, list) = app.api("GET", "/api/v1/escalations?status=all", Some(&app.admin), None).await;
    let queue = |id: i64| {
        list.as_array().and_then(|l| l.iter().find(|e| e["id"] == id)).map(|e| e["queue"].clone()).unwrap_or_default()
    };
    assert_eq!(queue(own), "admin_division", "{list}");
    assert_eq!(queue(theirs), "manager", "a staff device in business hours stays with the manager: {list}");
}
both_backends!(a_managers_own_device_is_reported_to_the_city);

/// A hold 行政管理課 placed is lifted only by 行政管理課 (issue 24): the
/// facility's manager is refused, by the API (409 `held_by_city`) and on the
/// console (a Japanese page), and the certificate stays on hold; the city
/// lifts it. A manager's own hold stays the manager's to lift, until the city
/// holds it too: then it is the city's.
async fn a_hold_the_city_placed_is_lifted_only_by_the_city(backend: Backend) {
    use crate::console_manager::{csrf_of, page_with, post as post_form};
    let app = spawn_app(backend).await;
    let (manager, staff) = facility(&app).await;
    let serial = &staff.serial;
    let held_by_city = |reply: (u16, Value)| {
        assert_eq!((reply.0, reply.1["error"]["code"].as_str()), (409, Some("held_by_city")), "{}", reply.1);
    };
    assert_eq!(change(&app, &app.admin, serial, "hold").await.0, 200);
    held_by_city(change(&app, &manager.id, serial, "release").await);
    let path = format!("/console/certificates/{serial}/release");
    let confirm = page_with(&app, &manager.id, &path, "停止を解除する").await;
    let r = post_form(&app, &manager.id, &path, &[("csrf", &csrf_of(&confirm))]).await;
    assert!(r.status == 409 && r.text().contains("行政管理課が一時停止しました"), "{} {}", r.status, r.text());
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");
    assert_eq!(change(&app, &app.admin, serial, "release").await.0, 200);
    assert_eq!(app.ocsp_status(&staff.id).await, "good");

    assert_eq!(change(&app, &manager.id, serial, "hold").await.0, 200);
    assert_eq!(change(&app, &manager.id, serial, "release").await.0, 200);
    assert_eq!(change(&app, &manager.id, serial, "hold").await.0, 200);
    assert_eq!(change(&app, &app.admin, serial, "hold").await.0, 200);
    held_by_city(change(&app, &manager.id, serial, "release").await);
    assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold");
}
both_backends!(a_hold_the_city_placed_is_lifted_only_by_the_city);
