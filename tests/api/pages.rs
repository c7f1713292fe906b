//! The Japanese pages on the public listener: errors said in Japanese with
//! what was typed kept, and the same flows as the JSON API behind them.

use connect_pki_e2e::TestApp;
use connect_pki_e2e::client::{Reply, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, spawn_app};

use crate::world::world;

async fn get(app: &TestApp, path: &str) -> Reply {
    app.open(Req::new("GET", path)).await
}

async fn post_form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let reply = app.open(Req::new("POST", path).form(fields)).await;
    (reply.status, reply.text())
}

/// The application form's fields, with `extra` replacing the defaults.
fn application_form<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [
        ("name", "こども食堂ひがし"),
        ("kind", "external"),
        ("address", "千歳市東町"),
        ("department", ""),
        ("manager_name", "東 花子"),
        ("manager_login_id", "higashi"),
        ("manager_email", "h@example.test"),
        ("manager_phone", "0123-11-2222"),
        ("purpose_attested", "true"),
        ("terms_version", "2026-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k, extra.iter().find(|(ek, _)| *ek == k).map_or(v, |(_, ev)| *ev)))
    .collect()
}

/// The Japanese pages: apply with an error shown in Japanese and the typed
/// values kept, then successfully; enroll a device from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_japanese_and_keep_what_was_typed() {
    let w = world(Backend::Sqlite).await;
    let app = &w.app;
    let page = get(app, "/apply").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("施設利用申請") && html.contains("lang=\"ja\""), "{html}");

    let (status, html) = post_form(app, "/apply", &application_form(&[])).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("担当課（庁外の施設は必須）を確認してください"), "{html}");
    assert!(html.contains("value=\"こども食堂ひがし\""), "typed value lost: {html}");
    let (status, html) = post_form(app, "/apply", &application_form(&[("department", "こども家庭課")])).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("申請を受け付けました"), "{html}");

    // Enroll from the page with a code issued by the manager.
    let user = app.register(&w.manager_a.id, w.facility_a, "saburo", "staff").await;
    let code = app.code_for(&w.manager_a.id, user).await;
    let (status, html) = post_form(app, "/enroll", &[("code", &code), ("password", "short")]).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("パスワード（10文字以上）を確認してください"), "{html}");
    let (status, html) = post_form(app, "/enroll", &[("code", &code), ("password", PASSWORD)]).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("証明書を発行しました") && html.contains("data:application/x-pkcs12;base64,"), "{html}");
    let (status, html) = post_form(app, "/enroll", &[("code", &code)]).await;
    assert_eq!(status, 409);
    assert!(html.contains("この登録コードは使用済みです"), "{html}");
}

/// The emergency page: a wrong password is said in Japanese and what was
/// typed stays; the right one holds the device and says who handles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_page_works_in_japanese() {
    let app = spawn_app(Backend::Sqlite).await;
    let d = app.device("page.user").await;
    let page = get(&app, "/emergency").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("端末紛失の緊急届出"), "{}", page.text());
    let device = d.device_id.to_string();
    let form = |pw| [("login_id", "page.user"), ("password", pw), ("device_id", device.as_str())];
    let (status, html) = post_form(&app, "/emergency", &form("wrong one!")).await;
    assert_eq!(status, 401, "{html}");
    assert!(html.contains("ログインIDまたはパスワードが正しくない") && html.contains("value=\"page.user\""), "{html}");
    let (status, html) = post_form(&app, "/emergency", &form(PASSWORD)).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("一時停止しました"), "{html}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");
}
