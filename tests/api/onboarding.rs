//! Onboarding that survives the post (issue 25, item 3): a manager's code
//! from the approval lasts as long as a mailed slip needs (14 days by
//! default) while a code handed over in person keeps its 72 hours; the
//! city's facility page, linked from 施設一覧, shows the facility with its
//! 担当課 and managers, and 福祉課 issues a manager a new code there when the
//! slip expired in the post; 行政管理課 also sees the people and moves them
//! (異動).

use connect_pki_domain::Clock;
use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, both_backends, spawn_app};
use serde_json::json;

use crate::console_manager::{csrf_of, get, page_with, post};

const DAY: time::Duration = time::Duration::days(1);

/// The code on a page (the slip's `id="code"`).
fn code_on(page: &str) -> String {
    let start = page.find("id=\"code\">").expect("a code") + "id=\"code\">".len();
    page[start..].split('<').next().expect("code").to_string()
}

async fn a_mailed_code_outlives_72_hours_and_the_city_reissues_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let welfare_id = app.register(&app.admin, 1, "fukushi2", "welfare_division").await;
    let code = app.code_for(&app.admin, welfare_id).await;
    let welfare = app.enroll_generated(&code, Some(PASSWORD), "welfare").await;
    // Two facilities: one whose slip arrives in five days, one whose slip is lost.
    let mut body = application("郵送の施設", "yuso.kanri");
    body["department"] = json!("高齢者支援課");
    let late = app.approve(&welfare, &body).await;
    let lost = app.facility(&welfare, "紛失の施設", "funshitsu.kanri").await;
    let staff_code_from = app.clock.now();

    // The TLS stack checks certificates against the real clock, so the
    // certificates issued at the stepped clock are not used for calls here:
    // enrollment is a public call, and 行政管理課 acts for the facility.
    let enroll = |code: &str, label: &str| json!({"code": code, "generate_key": true, "password": PASSWORD, "device_label": label});
    app.clock.advance(5 * DAY);
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&enroll(&late.manager_code, "yuso"))).await;
    assert_eq!(status, 201, "a mailed code outlives 72 hours: {out}");
    // A code handed over in person still lasts 72 hours.
    let staff = app.register(&app.admin, late.id, "tewatashi", "staff").await;
    let staff_code = app.code_for(&app.admin, staff).await;
    app.clock.advance(73 * time::Duration::HOUR);
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&enroll(&staff_code, "tewatashi"))).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("code_expired")), "{out}");
    assert!(app.clock.now() - staff_code_from > 8 * DAY);

    // 施設一覧 links to the facility page; 福祉課 sees the managers (not the staff).
    let list = page_with(&app, &welfare, "/console/facilities", "施設一覧").await;
    assert!(list.contains(&format!("href=\"/console/facilities/{}\"", late.id)), "{list}");
    let page = page_with(&app, &welfare, &format!("/console/facilities/{}", late.id), "高齢者支援課").await;
    assert!(page.contains("yuso.kanri") && !page.contains("tewatashi") && !page.contains("id=\"people\""), "{page}");

    // The lost slip's 14 days run out.
    app.clock.advance(7 * DAY);
    let (status, _) = app.public_api("POST", "/api/v1/enroll", Some(&enroll(&lost.manager_code, "x"))).await;
    assert_eq!(status, 409, "the first slip expired");
    let page = page_with(&app, &welfare, &format!("/console/facilities/{}", lost.id), "登録コードを発行する").await;
    let action = page
        .split("action=\"")
        .find(|s| s.contains("/code\""))
        .expect("the reissue form")
        .split('"')
        .next()
        .expect("action")
        .to_string();
    let slip = post(&app, &welfare, &action, &[("csrf", &csrf_of(&page))]).await;
    assert_eq!(slip.status, 200, "{}", slip.text());
    assert!(
        slip.text().contains("福祉課または行政管理課に再発行を依頼") && slip.text().contains("郵送"),
        "{}",
        slip.text()
    );
    let new_code = code_on(&slip.text());
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&enroll(&new_code, "funshitsu"))).await;
    assert_eq!(status, 201, "the reissued code: {out}");
    // A staff member's code is not the city's to issue here.
    let other = get(&app, &welfare, &format!("/console/facilities/{}/managers/{staff}/code", late.id)).await;
    assert_ne!(other.status, 200);
}
both_backends!(a_mailed_code_outlives_72_hours_and_the_city_reissues_it);

/// 行政管理課 sees everyone on the facility page and moves a person; the
/// certificates stop before the result page, the new facility lists them.
async fn the_city_moves_a_person_from_the_facility_page(backend: Backend) {
    let w = crate::world::world(backend).await;
    let app = &w.app;
    let page = page_with(app, &app.admin, &format!("/console/facilities/{}", w.facility_a), "異動する").await;
    assert!(page.contains("hanako"), "{page}");
    let r = post(
        app,
        &app.admin,
        &format!("/console/people/{}/transfer", w.staff_a.user_id),
        &[("csrf", &csrf_of(&page)), ("to", &w.facility_b.to_string())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("異動しました") && r.text().contains("地域包括支援センター北"), "{}", r.text());
    assert_eq!(app.ocsp_status(&w.staff_a.id).await, "revoked affiliationChanged");
    let b = page_with(app, &w.manager_b.id, "/console/staff", "hanako").await;
    assert!(b.contains("hanako"), "{b}");
    // A successor appointed from the facility page: once enrolled, the
    // manager they succeed may retire.
    let fields = [
        ("csrf", csrf_of(&page)),
        ("display_name", "後任 次郎".into()),
        ("login_id", "kounin.kanri".into()),
        ("email", "kounin@example.test".into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let slip = post(app, &app.admin, &format!("/console/facilities/{}/managers", w.facility_a), &fields).await;
    assert_eq!(slip.status, 201, "{}", slip.text());
    let retire = format!("/api/v1/users/{}/retire", w.manager_a.user_id);
    assert_eq!(
        app.api("POST", &retire, Some(&w.manager_a.id), None).await.0,
        409,
        "the successor has not enrolled yet"
    );
    let successor = app.enroll_generated(&code_on(&slip.text()), Some(PASSWORD), "kounin").await;
    assert_eq!(app.whoami(&successor).await["role"], "facility_manager");
    assert_eq!(app.api("POST", &retire, Some(&w.manager_a.id), None).await.0, 200);
    // 福祉課 cannot move people.
    let csrf =
        csrf_of(&page_with(app, &w.welfare, &format!("/console/facilities/{}", w.facility_b), "施設管理者").await);
    let r = post(
        app,
        &w.welfare,
        &format!("/console/people/{}/transfer", w.staff_a.user_id),
        &[("csrf", &csrf), ("to", &w.facility_a.to_string())],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
}
both_backends!(the_city_moves_a_person_from_the_facility_page);
