//! The manager's destructive steps through the pages: each confirmation
//! names the person, the device and the effect; the POST does it (OCSP and
//! the handshake say so at once); the result page says what happened and
//! when. Retirement on a date is shown, cancellable until it runs, and the
//! JSON API cancels it too.

use connect_pki_domain::{Clock, Role};
use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::Value;
use time::Duration;

use crate::console_manager::{csrf_of, page_with, post};

/// A facility, its manager, and a staff member "千歳 花子" with two devices.
async fn facility_with_staff(app: &TestApp) -> (Enrolled, Vec<Enrolled>) {
    let f = app.facility(&app.admin, "手順テスト施設", "tejun.kanri").await;
    let manager = app.manager(&f, "tejun-pc").await;
    let devices = app.quick_user(f.id, "chitose.hanako", Role::Staff, 2).await;
    (manager, devices)
}

/// Confirms at `path` (which must name `names` and `effect`), then posts its
/// form with `fields`; returns the result page.
async fn confirm_and_do(
    app: &TestApp,
    manager: &Enrolled,
    path: &str,
    names: &[&str],
    effect: &str,
    fields: &[(&str, &str)],
) -> String {
    let confirm = page_with(app, &manager.id, path, effect).await;
    for n in names {
        assert!(confirm.contains(n), "the confirmation at {path} names {n:?}: {confirm}");
    }
    assert!(confirm.contains(&format!("action=\"{path}\"")), "{confirm}");
    let csrf = csrf_of(&confirm);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = post(app, &manager.id, path, &form).await;
    assert_eq!(r.status, 200, "POST {path}: {}", r.text());
    r.text()
}

async fn audit_actions(app: &TestApp, user: i64) -> Vec<String> {
    let (_, audit) = app.api("GET", &format!("/api/v1/audit?user_id={user}&limit=10000"), Some(&app.admin), None).await;
    audit.as_array().expect("audit").iter().map(|r| r["action"].as_str().unwrap_or_default().to_string()).collect()
}

async fn lost_hold_release_and_revoke_take_effect_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, devices) = facility_with_staff(&app).await;
    let (one, two) = (&devices[0], &devices[1]);
    let person = "chitose.hanako さん（chitose.hanako）";
    let now = app.clock.now();
    let when = format!("{}", (now + Duration::hours(9)).date());

    let lost = format!("/console/devices/{}/lost", one.device_id);
    let effect = "この端末は直ちに電子@連絡帳に接続できなくなります";
    let device = format!("端末 {}", one.device_id);
    let done = confirm_and_do(&app, &manager, &lost, &[person, &device], effect, &[]).await;
    assert!(done.contains("紛失として停止しました") && done.contains(&one.serial) && done.contains(&when), "{done}");
    assert_eq!(app.ocsp_status(&one.id).await, "revoked keyCompromise");
    assert!(!app.handshake_ok(&one.id).await, "the lost device is refused at once");
    // The device page no longer offers the step.
    let user = page_with(&app, &manager.id, &format!("/console/staff/{}", one.user_id), "紛失（停止）").await;
    assert!(!user.contains(&format!("id=\"lost-{}\"", one.device_id)), "{user}");

    let cert = |step: &str| format!("/console/certificates/{}/{step}", two.serial);
    let device = format!("端末 {}", two.device_id);
    let done = confirm_and_do(&app, &manager, &cert("hold"), &[person, &device, &two.serial], "一時停止", &[]).await;
    assert!(done.contains("一時停止しました") && done.contains("一時停止中"), "{done}");
    assert_eq!(app.ocsp_status(&two.id).await, "revoked certificateHold");
    assert!(!app.handshake_ok(&two.id).await);
    let done =
        confirm_and_do(&app, &manager, &cert("release"), &[person, &device], "再び電子@連絡帳に接続できる", &[]).await;
    assert!(done.contains("一時停止を解除しました") && done.contains("有効"), "{done}");
    assert_eq!(app.ocsp_status(&two.id).await, "good");
    assert!(app.handshake_ok(&two.id).await);
    // A revoke with a reason that is not allowed is refused in Japanese, and changes nothing.
    let confirm = page_with(&app, &manager.id, &cert("revoke"), "失効の理由").await;
    let r = post(&app, &manager.id, &cert("revoke"), &[("csrf", &csrf_of(&confirm)), ("reason", "caCompromise")]).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(app.ocsp_status(&two.id).await, "good");
    let reason = [("reason", "affiliationChanged")];
    let done = confirm_and_do(&app, &manager, &cert("revoke"), &[person, &device], "元に戻せません", &reason).await;
    assert!(done.contains("証明書を失効しました") && done.contains(&when), "{done}");
    assert_eq!(app.ocsp_status(&two.id).await, "revoked affiliationChanged");
    // Holding a revoked certificate is refused with a Japanese page.
    let confirm = page_with(&app, &manager.id, &cert("hold"), "一時停止").await;
    let r = post(&app, &manager.id, &cert("hold"), &[("csrf", &csrf_of(&confirm))]).await;
    assert!(r.status == 409 && r.text().contains("すでに失効しているため"), "{} {}", r.status, r.text());
    let actions = audit_actions(&app, one.user_id).await;
    for a in ["device.lost", "certificate.hold", "certificate.release", "certificate.revoke"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}
both_backends!(lost_hold_release_and_revoke_take_effect_at_once);

async fn retirement_on_a_date_is_shown_and_cancellable_until_it_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, devices) = facility_with_staff(&app).await;
    let d = &devices[0];
    let user = format!("/console/staff/{}", d.user_id);
    let retire = format!("{user}/retire");
    let confirm = page_with(&app, &manager.id, &retire, "すべての端末は直ちに電子@連絡帳に接続できなくなり").await;
    assert!(confirm.contains("chitose.hanako さん") && confirm.contains(&format!("端末 {}", d.device_id)), "{confirm}");
    let csrf = csrf_of(&confirm);
    // A past day, or one that is not a date, is named next to the field; nothing is scheduled.
    for (on, says) in [("2020-01-01", "今日以降の日付"), ("next week", "2026-04-01")] {
        let r = post(&app, &manager.id, &retire, &[("csrf", &csrf), ("on", on)]).await;
        let body = r.text();
        assert_eq!(r.status, 422, "{body}");
        assert!(body.contains("<p class=\"field-error\" id=\"on-error\">") && body.contains(says), "{body}");
        assert!(body.contains("aria-describedby=\"on-error\"") && body.contains(&format!("value=\"{on}\"")), "{body}");
    }
    assert_eq!(app.ocsp_status(&d.id).await, "good");

    // 退職日 is the last working day: use ends when it does, at 24:00 in Japan.
    let last = (app.clock.now() + Duration::days(10)).to_offset(time::macros::offset!(+9)).date();
    let day = last.next_day().expect("a day");
    let r = post(&app, &manager.id, &retire, &[("csrf", &csrf), ("on", &last.to_string())]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&format!("{day} 00:00 に退職")), "{}", r.text());
    assert_eq!(app.ocsp_status(&d.id).await, "good", "scheduled, not done");
    let page = page_with(&app, &manager.id, &user, "退職の予定を取り消す").await;
    assert!(page.contains(&format!("{day} 00:00 に退職")), "{page}");
    let list = page_with(&app, &manager.id, "/console/staff", "退職予定").await;
    assert!(list.contains(&format!("退職予定 {day} 00:00")), "{list}");

    let cancel = format!("{user}/retirement/cancel");
    let done = confirm_and_do(
        &app,
        &manager,
        &cancel,
        &["chitose.hanako さん", &format!("{day} 00:00")],
        "引き続き端末を使えます",
        &[],
    )
    .await;
    assert!(done.contains("退職の予定を取り消しました"), "{done}");
    assert!(!page_with(&app, &manager.id, &user, "利用中").await.contains("退職の予定を取り消す"));
    assert_eq!(app.state().store.retire_at(connect_pki_domain::UserId(d.user_id)).await.expect("read"), None);
    // Cancelling again: nothing scheduled, said in Japanese.
    let r = post(&app, &manager.id, &cancel, &[("csrf", &csrf)]).await;
    assert!(r.status == 409 && r.text().contains("予定された退職はありません"), "{}", r.text());
    // Past the day nothing happens: it was cancelled.
    app.clock.advance(Duration::days(11));
    connect_pki_ra::users::run_due_retirements(app.state()).await.expect("worker");
    assert_eq!(app.ocsp_status(&d.id).await, "good");
    assert!(audit_actions(&app, d.user_id).await.iter().any(|a| a == "user.retire_cancelled"));

    // Retire now, then delete the personal data.
    let effect = "すべての端末は直ちに電子@連絡帳に接続できなくなり";
    let done = confirm_and_do(&app, &manager, &retire, &["chitose.hanako さん"], effect, &[("on", "")]).await;
    assert!(done.contains("退職となり、すべての端末が直ちに使えなくなりました"), "{done}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked affiliationChanged");
    assert!(!app.handshake_ok(&devices[1].id).await);
    let delete = format!("{user}/delete");
    let done = confirm_and_do(&app, &manager, &delete, &["chitose.hanako さん"], "元に戻せません", &[]).await;
    assert!(done.contains("個人情報を削除しました"), "{done}");
    let list = page_with(&app, &manager.id, "/console/staff", "個人情報削除済み").await;
    assert!(!list.contains("chitose.hanako"), "{list}");
}
both_backends!(retirement_on_a_date_is_shown_and_cancellable_until_it_runs);

/// The JSON API: `DELETE /api/v1/users/{id}/retirement` cancels a scheduled
/// retirement; once the retirement has run it answers 409; and nothing is
/// cancelled for a manager of another facility.
async fn the_api_cancels_a_retirement_until_it_has_run(backend: Backend) {
    let app = spawn_app(backend).await;
    let (manager, devices) = facility_with_staff(&app).await;
    let other = app.facility(&app.admin, "別の施設", "betsu.kanri").await;
    let other = app.manager(&other, "betsu-pc").await;
    let d = &devices[0];
    let path = format!("/api/v1/users/{}/retirement", d.user_id);
    let (status, out) = app.api("DELETE", &path, Some(&manager.id), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("invalid_transition")), "nothing scheduled: {out}");

    // Stored to the second.
    let at = (app.clock.now() + Duration::hours(2)).replace_nanosecond(0).expect("whole second");
    let at_text = at.format(&time::format_description::well_known::Rfc3339).expect("format");
    let body = serde_json::json!({"at": at_text});
    let retire = format!("/api/v1/users/{}/retire", d.user_id);
    assert_eq!(app.api("POST", &retire, Some(&manager.id), Some(&body)).await.0, 200);
    let (status, out) = app.api("DELETE", &path, Some(&other.id), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("forbidden")), "{out}");
    let (status, out) = app.api("DELETE", &path, Some(&manager.id), None).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out, serde_json::json!({"user_id": d.user_id, "cancelled_retire_at": at_text}));

    // Scheduled again and run by the worker: too late to cancel.
    assert_eq!(app.api("POST", &retire, Some(&manager.id), Some(&body)).await.0, 200);
    app.clock.advance(Duration::hours(3));
    connect_pki_ra::users::run_due_retirements(app.state()).await.expect("worker");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked affiliationChanged");
    let (status, out) = app.api("DELETE", &path, Some(&manager.id), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("invalid_transition")), "{out}");
    let (_, doc) = app.api("GET", "/api/v1/openapi.json", Some(&manager.id), None).await;
    let op: &Value = &doc["paths"]["/api/v1/users/{id}/retirement"]["delete"];
    assert!(op["responses"]["409"].is_object(), "documented: {op}");
}
both_backends!(the_api_cancels_a_retirement_until_it_has_run);
