//! Departures as the rules say (issue 25, item 4): 退職日 is the last
//! working day, so use ends when that day does in Japan; アカウント削除
//! goes with it when asked and frees the login ID for the facility the
//! person moves to; a facility always keeps an active manager (only
//! 行政管理課 takes the last one away, and two managers retiring each other
//! at once cannot both go); names, e-mail and role change; 異動 moves a
//! person, their certificates revoked before the answer.

use connect_pki_domain::Clock;
use connect_pki_e2e::client::Req;
use connect_pki_e2e::{Backend, both_backends};
use serde_json::json;
use time::OffsetDateTime;

use crate::console_manager::{csrf_of, page_with, post};
use crate::world::world;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("time")
}

/// Waits for the worker to carry out what fell due.
async fn until(mut done: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// 年度末: the manager retires a member of staff on their last working day
/// with the account's deletion. They work until midnight in Japan; then the
/// certificate is refused, the account deleted, and the login ID registers
/// again at another facility.
async fn a_departure_on_the_last_day_ends_at_midnight_and_frees_the_login_id(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let s = app.staff(&w.manager_a.id, w.facility_a, "nendomatsu").await;
    // 10:00 in Japan on some day; the last day is that day.
    let morning = (app.clock.now() + time::Duration::days(3))
        .to_offset(time::macros::offset!(+9))
        .replace_time(time::macros::time!(10:00));
    app.clock.set(morning);
    let retire = format!("/console/staff/{}/retire", s.user_id);
    let csrf = csrf_of(&page_with(app, &w.manager_a.id, &retire, "アカウント削除").await);
    let day = morning.date().to_string();
    let r = post(app, &w.manager_a.id, &retire, &[("csrf", &csrf), ("on", &day), ("delete", "yes")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("同時にアカウントも削除します"), "{}", r.text());
    app.clock.set(morning.replace_time(time::macros::time!(23:59)));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(app.handshake_ok(&s.id).await, "cut off before the end of the last day");
    app.clock.set(morning.replace_time(time::macros::time!(23:59)) + time::Duration::minutes(2));
    until(async || !app.handshake_ok(&s.id).await, "still working after the last day").await;
    assert_eq!(app.ocsp_status(&s.id).await, "revoked affiliationChanged");
    let (_, user) =
        app.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.manager_a.id), None).await;
    let gone = user.as_array().expect("users").iter().find(|u| u["id"] == s.user_id).expect("the row stays").clone();
    assert_eq!((gone["status"].as_str(), gone["login_id"].as_str()), (Some("deleted"), None), "{gone}");
    // The same login ID at the facility the person moved to.
    let body = json!({"display_name": "年度 末子", "login_id": "nendomatsu", "email": "n@example.test"});
    let path = format!("/api/v1/facilities/{}/users", w.facility_b);
    let (status, out) = app.api("POST", &path, Some(&w.manager_b.id), Some(&body)).await;
    assert_eq!(status, 201, "the login ID is still taken: {out}");
}
both_backends!(a_departure_on_the_last_day_ends_at_midnight_and_frees_the_login_id);

/// The last active manager stays: retiring themselves, being made staff or
/// moved away is refused (409, in Japanese on the page), until another
/// manager is active; 行政管理課 may go ahead.
async fn a_facility_always_keeps_an_active_manager(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let m = &w.manager_a;
    let (status, out) = app.api("POST", &format!("/api/v1/users/{}/retire", m.user_id), Some(&m.id), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("last_manager")), "{out}");
    let edit = json!({"role": "staff"});
    let (status, out) = app.api("PATCH", &format!("/api/v1/users/{}", m.user_id), Some(&m.id), Some(&edit)).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("last_manager")), "{out}");
    let retire = format!("/console/staff/{}/retire", m.user_id);
    let csrf = csrf_of(&page_with(app, &m.id, &retire, "退職日").await);
    let r = post(app, &m.id, &retire, &[("csrf", &csrf)]).await;
    assert!(r.status == 409 && r.text().contains("ただ一人の施設管理者"), "{}", r.text());
    assert!(app.handshake_ok(&m.id).await, "refused, yet retired");
    // A scheduled retirement is checked when it is made.
    let at = json!({"at": rfc3339(app.clock.now() + time::Duration::days(2))});
    let (status, _) = app.api("POST", &format!("/api/v1/users/{}/retire", m.user_id), Some(&m.id), Some(&at)).await;
    assert_eq!(status, 409);
    // A second manager, enrolled (active): now the first may go.
    let second = app.register(&m.id, w.facility_a, "jiki.kanri", "facility_manager").await;
    let code = app.code_for(&m.id, second).await;
    let second = app.enroll_csr(&code, Some(connect_pki_e2e::fixtures::PASSWORD), "jiki", "jiki.kanri").await;
    let (status, out) = app.api("POST", &format!("/api/v1/users/{}/retire", m.user_id), Some(&second), None).await;
    assert_eq!(status, 200, "{out}");
    // The second is now the last: only 行政管理課 retires them.
    let me = app.whoami(&second).await;
    let path = format!("/api/v1/users/{}/retire", me["user_id"]);
    assert_eq!(app.api("POST", &path, Some(&second), None).await.0, 409);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
}
both_backends!(a_facility_always_keeps_an_active_manager);

/// Two managers of a facility retire each other at the same moment, twenty
/// times: exactly one goes each time, and the facility keeps a manager.
async fn two_managers_retiring_each_other_leave_one(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    for round in 0..20 {
        let f = app.facility(&app.admin, &format!("相互退職 {round}"), &format!("sogo{round}.a")).await;
        let a = app.manager(&f, &format!("sogo{round}-a")).await;
        let b_id = app.register(&a.id, f.id, &format!("sogo{round}.b"), "facility_manager").await;
        let code = app.code_for(&a.id, b_id).await;
        let b = app.enroll_csr(&code, Some(connect_pki_e2e::fixtures::PASSWORD), "b", &format!("sogo{round}.b")).await;
        let (pa, pb) = (format!("/api/v1/users/{b_id}/retire"), format!("/api/v1/users/{}/retire", a.user_id));
        let call = |path: String, id| async move {
            // A refused handshake: already retired when the call came in.
            app.try_mtls(Some(id), Req::new("POST", &path).json(&json!({}))).await.map_or(401, |r| r.status)
        };
        let (ra, rb) = tokio::join!(call(pa, &a.id), call(pb, &b));
        // The one who lost was refused by the rule (409), or was already
        // retired when their own call came in (401, or a refused handshake).
        let mut codes = [ra, rb];
        codes.sort_unstable();
        assert!(codes == [200, 409] || codes == [200, 401], "round {round}: {ra} {rb}");
        let (_, users) = app.api("GET", &format!("/api/v1/facilities/{}/users", f.id), Some(&app.admin), None).await;
        let active = users.as_array().expect("users").iter().filter(|u| u["status"] == "active").count();
        assert_eq!(active, 1, "round {round}: {users}");
    }
}
both_backends!(two_managers_retiring_each_other_leave_one);

/// A name, e-mail address and role change by whoever may register the
/// person, recorded without the values; 異動 by 行政管理課 revokes the
/// certificates before it answers and keeps the account for the new
/// facility's manager, who issues the next code.
async fn names_roles_and_transfers_change_as_the_rules_say(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let s = &w.staff_a;
    let edit = json!({"display_name": "千歳 花子（旧姓 山田）", "email": "hanako.new@example.test", "role": "facility_manager"});
    let path = format!("/api/v1/users/{}", s.user_id);
    let (status, out) = app.api("PATCH", &path, Some(&w.manager_b.id), Some(&edit)).await;
    assert_eq!(status, 403, "another facility's manager: {out}");
    let (status, out) = app.api("PATCH", &path, Some(&w.manager_a.id), Some(&edit)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["display_name"].as_str(), out["role"].as_str()),
        (Some("千歳 花子（旧姓 山田）"), Some("facility_manager"))
    );
    let (status, _) = app.api("PATCH", &path, Some(&w.manager_a.id), Some(&json!({"role": "admin_division"}))).await;
    assert_eq!(status, 422, "a city role is not given here");
    let (_, log) = app.api("GET", "/api/v1/audit?action=user.update", Some(&app.admin), None).await;
    let row = log.as_array().expect("log").iter().find(|r| r["target"] == format!("user:{}", s.user_id)).cloned();
    let row = row.expect("an audit row");
    assert!(!row.to_string().contains("山田") && !row.to_string().contains("hanako.new"), "values in the chain: {row}");
    assert_eq!(row["detail"]["to"], "facility_manager", "{row}");

    let transfer = json!({"facility_id": w.facility_b});
    let path = format!("/api/v1/users/{}/transfer", s.user_id);
    let (status, _) = app.api("POST", &path, Some(&w.manager_a.id), Some(&transfer)).await;
    assert_eq!(status, 403, "a manager does not move people between facilities");
    let (status, out) = app.api("POST", &path, Some(&app.admin), Some(&transfer)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["revoked_serials"], json!([s.serial]));
    assert!(!app.handshake_ok(&s.id).await);
    assert_eq!(app.ocsp_status(&s.id).await, "revoked affiliationChanged");
    let (status, out) =
        app.api("POST", &format!("/api/v1/users/{}/enrollment-codes", s.user_id), Some(&w.manager_b.id), None).await;
    assert_eq!(status, 201, "the new facility's manager issues the next code: {out}");
    let (status, _) =
        app.api("POST", &format!("/api/v1/users/{}/enrollment-codes", s.user_id), Some(&w.manager_a.id), None).await;
    assert_eq!(status, 403, "the old facility's manager no longer acts on them");
}
both_backends!(names_roles_and_transfers_change_as_the_rules_say);
