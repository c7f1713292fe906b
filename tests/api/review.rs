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
