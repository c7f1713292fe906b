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
/// typed stays; the right one lists the person's devices by label, and the
/// one chosen is held, once per sign-in; another person's device cannot be
/// slipped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_page_works_in_japanese() {
    let app = spawn_app(Backend::Sqlite).await;
    let d = app.device("page.user").await;
    let other = app.device("someone.else").await;
    let page = get(&app, "/emergency").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("端末紛失の緊急届出"), "{}", page.text());
    let form = |pw| [("login_id", "page.user"), ("password", pw)];
    let (status, html) = post_form(&app, "/emergency", &form("wrong one!")).await;
    assert_eq!(status, 401, "{html}");
    assert!(html.contains("ログインIDまたはパスワードが正しくない") && html.contains("value=\"page.user\""), "{html}");

    let (status, html) = post_form(&app, "/emergency", &form(PASSWORD)).await;
    assert_eq!(status, 200, "{html}");
    // Chosen by label ("page.user-1" from the builder), not by a number.
    assert!(html.contains("page.user-1") && !html.contains("someone.else"), "{html}");
    let ticket = field_value(&html, "ticket");
    assert_eq!(app.ocsp_status(&d.id).await, "good", "signing in holds nothing");
    // Someone else's device with this person's ticket: refused, nothing held.
    let theirs = other.device_id.to_string();
    let (status, html) = post_form(&app, "/emergency/report", &[("ticket", &ticket), ("device_id", &theirs)]).await;
    assert_eq!(status, 403, "{html}");
    assert_eq!(app.ocsp_status(&other.id).await, "good");
    // The ticket was used up by that attempt: sign in again.
    let mine = d.device_id.to_string();
    let (status, html) = post_form(&app, "/emergency/report", &[("ticket", &ticket), ("device_id", &mine)]).await;
    assert_eq!(status, 401, "{html}");
    let (_, html) = post_form(&app, "/emergency", &form(PASSWORD)).await;
    let ticket = field_value(&html, "ticket");
    let (status, html) = post_form(&app, "/emergency/report", &[("ticket", &ticket), ("device_id", &mine)]).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("一時停止しました") && html.contains("却下された場合も"), "{html}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");
    // Expired tickets do not work either.
    let (_, html) = post_form(&app, "/emergency", &form(PASSWORD)).await;
    let ticket = field_value(&html, "ticket");
    app.clock.advance(time::Duration::minutes(11));
    let (status, _) = post_form(&app, "/emergency/report", &[("ticket", &ticket), ("device_id", &mine)]).await;
    assert_eq!(status, 401);
}

/// The value of the hidden field `name` in a page.
fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} field: {html}")) + marker.len();
    html[start..].split('"').next().expect("value").to_string()
}

/// A page that tells someone to call 行政管理課 gives the number and hours
/// configured (the emergency form, which also says which password it
/// wants, and a refused sign-in); without a number configured, the words
/// are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_says_to_call_gives_the_number() {
    let desk = connect_pki_ra::settings::CityDesk::new(Some("03-5555-0100".into()), Some("平日 8:30〜17:15".into()))
        .expect("a number");
    let call = "行政管理課（電話 03-5555-0100、平日 8:30〜17:15）へ電話";
    let app = connect_pki_e2e::spawn_app_with(
        Backend::Sqlite,
        connect_pki_e2e::AppOptions::with(move |c| c.ra.city_desk = desk.clone()),
    )
    .await;
    let form = get(&app, "/emergency").await.text();
    assert!(form.contains("電子@連絡帳（CONNECT）にログインするパスワードではありません"), "which password: {form}");
    let (status, refused) =
        post_form(&app, "/emergency", &[("login_id", "nobody"), ("password", "not the one 1")]).await;
    assert_eq!(status, 401, "{refused}");
    for (what, page) in [("the form", form), ("a refused sign-in", refused)] {
        assert!(page.contains(call), "{what} gives no number: {page}");
        assert!(
            !page.contains(connect_pki_ra::settings::CALL_THE_CITY),
            "{what} says to call without the number: {page}"
        );
    }
    let (_, unconfigured) =
        post_form(&spawn_app(Backend::Sqlite).await, "/emergency", &[("login_id", "n"), ("password", "p")]).await;
    assert!(unconfigured.contains("行政管理課へ電話") && !unconfigured.contains("（電話 "), "{unconfigured}");
}
