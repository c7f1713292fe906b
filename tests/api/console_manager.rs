//! The facility manager's pages (issue 11, item 1): every page renders for
//! the manager of the facility; a manager of another facility gets 403/404
//! and none of the facility's names or ids; forms without the CSRF token do
//! nothing; registration errors stand next to their field; the code slip
//! carries the code as text only and the enroll page's address as a QR code.

use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::client::{Identity, Reply, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};

use crate::world::{World, world};

pub async fn get(app: &TestApp, who: &Identity, path: &str) -> Reply {
    app.try_mtls(Some(who), Req::new("GET", path)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub async fn post(app: &TestApp, who: &Identity, path: &str, fields: &[(&str, &str)]) -> Reply {
    let req = Req::new("POST", path).form(fields);
    app.try_mtls(Some(who), req).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The page's CSRF token.
pub fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().expect("token").to_string()
}

/// A page that must render: 200, the console's CSP, and `needle` in it.
pub async fn page_with(app: &TestApp, who: &Identity, path: &str, needle: &str) -> String {
    let r = get(app, who, path).await;
    let body = r.text();
    assert_eq!(r.status, 200, "GET {path}: {body}");
    assert!(r.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{path}");
    assert!(body.contains(needle), "GET {path} lacks {needle:?}: {body}");
    body
}

/// The manager's pages about facility A's staff member `s`, each with a
/// sentence it must show.
fn pages_of(s: &Enrolled) -> Vec<(String, &'static str)> {
    let (u, d, c) = (s.user_id, s.device_id, &s.serial);
    vec![
        (format!("/console/staff/{u}"), "端末と証明書"),
        (format!("/console/devices/{d}/lost"), "この端末は直ちに電子@連絡帳に接続できなくなります"),
        (format!("/console/certificates/{c}/revoke"), "失効の理由"),
        (format!("/console/certificates/{c}/hold"), "解除するまでこの証明書では電子@連絡帳に接続できなくなります"),
        (format!("/console/certificates/{c}/release"), "一時停止を解除し"),
        (format!("/console/staff/{u}/retire"), "退職日"),
        (format!("/console/staff/{u}/retirement/cancel"), "予定していた退職を取り消します"),
        (format!("/console/staff/{u}/delete"), "元に戻せません"),
    ]
}

/// Whatever of facility A a page must not show to anyone outside it.
fn secrets_of(w: &World) -> Vec<String> {
    let s = &w.staff_a;
    vec![
        "デイケア南".into(),
        "minami.kanri".into(),
        "hanako".into(),
        s.serial.clone(),
        w.manager_a.serial.clone(),
        format!("/console/staff/{}\"", s.user_id),
        format!("/console/devices/{}/", s.device_id),
    ]
}

fn assert_shows_nothing_of(body: &str, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(!body.contains(s.as_str()), "{what} shows {s:?}: {body}");
    }
}

async fn every_page_renders_for_its_manager_and_for_no_one_else(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let (a, b) = (&w.manager_a.id, &w.manager_b.id);
    let staff = page_with(app, a, "/console/staff", "hanako").await;
    assert!(staff.contains(&w.staff_a.serial) && staff.contains("利用中"), "status, devices, certificates: {staff}");
    assert!(!staff.contains("施設の職員一覧"), "the staff table lives here, not on the escalation page");
    page_with(app, a, "/console/staff?q=HANA", "一致：1 人").await;
    page_with(app, a, "/console/staff?q=minami.kanri", "一致：1 人").await;
    page_with(app, a, "/console/staff?q=nobody", "該当する職員はいません").await;
    page_with(app, a, "/console/staff/new", "職員の登録").await;
    page_with(app, a, "/console/expiring", "期限の近い証明書").await;
    page_with(app, a, "/console/trail", "職員の登録").await;
    let queue = page_with(app, a, "/console/", "対応待ちの届出").await;
    assert!(!queue.contains("hanako"), "no staff table on the escalation page any more: {queue}");
    // The release confirmation renders for a valid certificate too: the service decides at the POST.
    for (path, needle) in pages_of(&w.staff_a) {
        let body = page_with(app, a, &path, needle).await;
        assert!(body.contains("hanako さん"), "{path} names the person: {body}");
    }

    // Another facility's manager: the facility-wide pages show B's own
    // facility only (checked first: B's refused attempts below go into B's
    // own trail), and every page about A's staff is refused, showing nothing.
    let secrets = secrets_of(&w);
    for path in ["/console/staff", "/console/expiring", "/console/trail", "/console/staff/new"] {
        let body = page_with(app, b, path, "").await;
        assert_shows_nothing_of(&body, &secrets, path);
    }
    // A search for A's staff finds no one (the box shows what B typed, nothing more).
    let found = page_with(app, b, "/console/staff?q=hanako", "一致：0 人").await;
    assert_shows_nothing_of(&found, &secrets[3..], "a search for another facility's staff");
    assert!(page_with(app, b, "/console/staff", "kita.kanri").await.contains("1 人"));
    for (path, _) in pages_of(&w.staff_a) {
        let r = get(app, b, &path).await;
        assert!(matches!(r.status, 403 | 404), "{path} answered {} to another facility's manager", r.status);
        assert_shows_nothing_of(&r.text(), &secrets, &path);
    }

    // Staff and 福祉課 have no staff pages.
    for who in [&w.staff_a.id, &w.welfare] {
        for path in ["/console/staff", "/console/expiring", "/console/trail", "/console/staff/new"] {
            assert_eq!(get(app, who, path).await.status, 403, "{path}");
        }
    }
    // A path that is not a number is a Japanese 404 page.
    let r = get(app, a, "/console/staff/abc").await;
    assert!(r.status == 404 && r.text().contains("見つかりませんでした"), "{}", r.text());

    // 340 days on, the certificates issued today run out within 30 days:
    // A's manager sees A's, B's manager B's own and nothing of A's.
    app.clock.advance(time::Duration::days(340));
    let soon = page_with(app, a, "/console/expiring", &w.staff_a.serial).await;
    assert!(soon.contains("hanako さん") && soon.contains(&w.manager_a.serial), "{soon}");
    assert!(soon.contains("24 日") || soon.contains("25 日"), "days left: {soon}");
    let theirs = page_with(app, b, "/console/expiring", &w.manager_b.serial).await;
    assert_shows_nothing_of(&theirs, &secrets, "B's expiring certificates");
}
both_backends!(every_page_renders_for_its_manager_and_for_no_one_else);

/// Every state-changing form: without the token (or with another
/// manager's, for another facility) nothing happens.
async fn forms_need_the_token_and_the_facility(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let s = &w.staff_a;
    let (u, d, c) = (s.user_id, s.device_id, s.serial.clone());
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/console/devices/{d}/lost"), vec![]),
        (format!("/console/certificates/{c}/revoke"), vec![("reason", "keyCompromise")]),
        (format!("/console/certificates/{c}/hold"), vec![]),
        (format!("/console/staff/{u}/retire"), vec![("on", "")]),
        (format!("/console/staff/{u}/retirement/cancel"), vec![]),
        (format!("/console/staff/{u}/delete"), vec![]),
        (format!("/console/staff/{u}/code"), vec![]),
        (
            "/console/staff/new".to_string(),
            vec![
                ("display_name", "侵入 太郎"),
                ("login_id", "intruder"),
                ("email", "i@example.test"),
                ("role", "staff"),
            ],
        ),
    ];
    let codes = |audit: &serde_json::Value| {
        audit.as_array().expect("audit").iter().filter(|r| r["action"] == "enrollment_code.create").count()
    };
    let (_, audit) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    let codes_before = codes(&audit);
    let csrf_b = csrf_of(&page_with(app, &w.manager_b.id, "/console/staff/new", "職員の登録").await);
    let secrets = secrets_of(&w);
    for (path, fields) in &posts {
        let r = post(app, &w.manager_a.id, path, fields).await;
        assert_eq!(r.status, 403, "{path} without a token: {}", r.text());
        assert!(r.text().contains("確認用トークン"), "{}", r.text());
        let mut with = fields.clone();
        with.push(("csrf", "00ff"));
        assert_eq!(post(app, &w.manager_a.id, path, &with).await.status, 403, "{path} with a wrong token");
        if !path.ends_with("/new") {
            let mut as_b = fields.clone();
            as_b.push(("csrf", &csrf_b));
            let r = post(app, &w.manager_b.id, path, &as_b).await;
            assert!(matches!(r.status, 403 | 404), "{path} by another facility's manager: {}", r.status);
            assert_shows_nothing_of(&r.text(), &secrets, path);
        }
    }
    // Nothing changed: the certificate works, the user is active, nothing was issued or registered.
    assert_eq!(app.ocsp_status(&s.id).await, "good");
    assert!(app.handshake_ok(&s.id).await);
    let (_, users) =
        app.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&w.app.admin), None).await;
    let users = users.as_array().expect("users");
    assert!(users.iter().all(|u| u["login_id"] != "intruder"), "{users:?}");
    assert!(users.iter().any(|x| x["id"] == u && x["status"] == "active"));
    let (_, audit) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    assert_eq!(codes(&audit), codes_before, "no code issued");
}
both_backends!(forms_need_the_token_and_the_facility);

/// A form that is not a form: a body of another type, one past the size
/// limit, or a path whose number is not one gets the Japanese page saying
/// so (never a plain-text rejection), with the valid token — and nothing
/// changes.
async fn what_is_not_a_form_is_refused_in_japanese(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let s = &w.staff_a;
    let (u, d) = (s.user_id, s.device_id);
    let csrf = csrf_of(&page_with(app, &w.manager_a.id, "/console/staff/new", "職員の登録").await);
    let paths = [
        format!("/console/devices/{d}/lost"),
        format!("/console/certificates/{}/hold", s.serial),
        format!("/console/staff/{u}/retire"),
        format!("/console/staff/{u}/code"),
        "/console/staff/new".to_string(),
    ];
    let big = "x".repeat(70 * 1024);
    for path in &paths {
        let form = format!("csrf={csrf}&reason=keyCompromise");
        let cases = [
            (
                "JSON",
                Req::new("POST", path).body("application/json", format!(r#"{{"csrf":"{csrf}"}}"#)),
                400,
                "入力内容",
            ),
            ("text", Req::new("POST", path).body("text/plain", form.clone()), 400, "入力内容"),
            ("oversize", Req::new("POST", path).form(&[("csrf", &csrf), ("note", &big)]), 413, "大きすぎ"),
        ];
        for (what, req, status, words) in cases {
            let r = app.try_mtls(Some(&w.manager_a.id), req).await.unwrap_or_else(|e| panic!("{path} {what}: {e}"));
            let body = r.text();
            assert_eq!(r.status, status, "{path} as {what}: {body}");
            assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{path} as {what}");
            assert!(body.contains(words), "{path} as {what}: {body}");
        }
    }
    for path in ["/console/staff/abc/retire", "/console/devices/0/lost", "/console/staff/-1/code"] {
        let r = post(app, &w.manager_a.id, path, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.text().contains("見つかりません"), "{path}: {}", r.text());
    }
    assert_eq!(app.ocsp_status(&s.id).await, "good");
    assert!(app.handshake_ok(&s.id).await);
    let (_, users) =
        app.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(&app.admin), None).await;
    let users = users.as_array().expect("users");
    assert!(users.iter().any(|x| x["id"] == u && x["status"] == "active"), "{users:?}");
    assert!(users.iter().all(|x| x["display_name"] != "侵入 太郎"), "{users:?}");
}
both_backends!(what_is_not_a_form_is_refused_in_japanese);

/// Registration: a taken login ID and a bad e-mail address are named next
/// to their field in Japanese, with what was typed kept; then it works.
async fn registration_errors_stand_next_to_their_field(backend: Backend) {
    let w = world(backend).await;
    let (app, a) = (&w.app, &w.manager_a.id);
    let csrf = csrf_of(&page_with(app, a, "/console/staff/new", "職員の登録").await);
    let form = |name, login, email| {
        vec![
            ("csrf", csrf.clone()),
            ("display_name", name),
            ("login_id", login),
            ("email", email),
            ("role", "staff".into()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>| async move {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(app, a, "/console/staff/new", &f).await
    };
    // "hanako" is taken (in facility A); so is "kita.kanri", in facility B.
    for taken in ["hanako", "kita.kanri"] {
        let r = send(form("千歳 次郎".into(), taken.into(), "jiro@example.test".into())).await;
        let body = r.text();
        assert_eq!(r.status, 409, "{body}");
        assert!(body.contains("aria-describedby=\"login_id-error\""), "{body}");
        assert!(
            body.contains("<p class=\"field-error\" id=\"login_id-error\">そのログインIDはすでに使われています。"),
            "{body}"
        );
        assert!(body.contains("value=\"千歳 次郎\"") && body.contains("value=\"jiro@example.test\""), "kept: {body}");
        assert!(!body.contains("地域包括支援センター北"), "nothing of the facility that has it");
    }
    let r = send(form("千歳 次郎".into(), "jiro".into(), "not-an-address".into())).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("<p class=\"field-error\" id=\"email-error\">メールアドレスを確認してください。"),
        "{}",
        r.text()
    );
    let r = send(form("".into(), "jiro".into(), "jiro@example.test".into())).await;
    assert!(r.text().contains("id=\"display_name-error\""), "{}", r.text());

    let r = send(form("千歳 次郎".into(), "jiro".into(), "jiro@example.test".into())).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").expect("where to").to_string();
    let page = page_with(app, a, &location, "職員を登録しました").await;
    assert!(page.contains("千歳 次郎（jiro）") && page.contains("端末未登録"), "{page}");
    let (_, me) = app.api("GET", &format!("/api/v1/facilities/{}/users", w.facility_a), Some(a), None).await;
    assert!(me.as_array().expect("users").iter().any(|u| u["login_id"] == "jiro" && u["role"] == "staff"));
}
both_backends!(registration_errors_stand_next_to_their_field);

/// The slip: the code as text (once), its expiry, the enroll address as
/// text and as a QR code of exactly that address; the code works.
async fn code_slip_prints_the_address_and_the_code_only_as_text(backend: Backend) {
    let https = connect_pki_server::config::HttpsSettings {
        url: Some("https://connect.city.example/".parse().expect("a URL")),
        ..Default::default()
    };
    for configured in [false, true] {
        let desk =
            connect_pki_ra::settings::CityDesk::new(Some("03-5555-0100".into()), Some("平日 8:30〜17:15".into()))
                .expect("a number");
        let opts = if configured {
            AppOptions::with(|c| {
                c.https = https.clone();
                c.ra.city_desk = desk.clone();
            })
        } else {
            AppOptions::default()
        };
        let app = spawn_app_with(backend, opts).await;
        let f = app.facility(&app.admin, "伝票テスト施設", "slip.kanri").await;
        let manager = app.manager(&f, "slip-pc").await;
        let user = app.register(&manager.id, f.id, "slip.staff", "staff").await;
        let csrf =
            csrf_of(&page_with(&app, &manager.id, &format!("/console/staff/{user}"), "登録コードを発行する").await);
        let r = post(&app, &manager.id, &format!("/console/staff/{user}/code"), &[("csrf", &csrf)]).await;
        let body = r.text();
        assert_eq!(r.status, 200, "{body}");
        let code =
            body.split("<code class=\"code\" id=\"code\">").nth(1).and_then(|s| s.split('<').next()).expect("code");
        assert_eq!(body.matches(code).count(), 1, "the code once, as text: {body}");
        let url = if configured {
            "https://connect.city.example/enroll".to_string()
        } else {
            format!("https://{}/enroll", app.api)
        };
        assert!(body.contains(&format!("<code id=\"enroll-url\">{url}</code>")), "{body}");
        let qr = connect_pki_server::http::console::manager::qr_data_uri(&url).expect("QR");
        assert!(body.contains(&format!("src=\"{qr}\"")), "the QR code is the address, nothing else: {body}");
        assert!(body.contains("有効期限") && body.contains("data-print") && body.contains("class=\"slip\""), "{body}");
        // What to do when the device is lost, with the number to call when
        // 行政管理課's is configured.
        let call = if configured {
            "行政管理課（電話 03-5555-0100、平日 8:30〜17:15）へ電話"
        } else {
            "行政管理課へ電話"
        };
        assert!(body.contains("id=\"if-lost\"") && body.contains(call), "{body}");
        // The code is in no address the page links to or loads.
        assert!(!body.contains(&format!("={code}")) && !body.contains(&format!("/{code}")), "{body}");
        let id = app.enroll_generated(code, Some("slip password 1"), "slip-device").await;
        assert_eq!(app.whoami(&id).await["user_id"], user);
    }
}
both_backends!(code_slip_prints_the_address_and_the_code_only_as_text);
