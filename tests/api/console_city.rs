//! The city's console pages (issue 11, items 2 and 3): facility
//! applications, facilities and their suspension, the audit log and
//! everyone's own devices, driven as a browser does — GET the page, read its
//! CSRF token, POST the form — as each role, checking who may see what,
//! that the steps change the state and leave audit records, and that
//! refusals show nothing of another facility. (A manager's own trail is
//! on the manager's pages.)

use connect_pki_e2e::client::{Identity, Reply, Req};
use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, TestApp, both_backends};
use serde_json::Value;

use crate::world::{World, world};

async fn get(app: &TestApp, who: &Identity, path: &str) -> Reply {
    app.try_mtls(Some(who), Req::new("GET", path)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The page at `path`, which must answer 200.
async fn page(app: &TestApp, who: &Identity, path: &str) -> String {
    let reply = get(app, who, path).await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
    assert!(reply.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));
    reply.text()
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().expect("token").to_string()
}

async fn post(app: &TestApp, who: &Identity, path: &str, fields: &[(&str, &str)]) -> Reply {
    let req = Req::new("POST", path).form(fields);
    app.try_mtls(Some(who), req).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The confirmation page at `path`, then its form posted with its token.
async fn confirm_and_post(app: &TestApp, who: &Identity, path: &str, extra: &[(&str, &str)]) -> Reply {
    let confirm = page(app, who, path).await;
    let csrf = csrf_of(&confirm);
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(extra);
    post(app, who, path, &fields).await
}

async fn audit_actions(app: &TestApp, target: &str) -> Vec<String> {
    let (status, audit) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{audit}");
    let rows = audit.as_array().expect("audit rows").iter();
    rows.filter(|r| r["target"] == target).map(|r| r["action"].as_str().unwrap_or_default().to_string()).collect()
}

async fn application_status(app: &TestApp, id: i64) -> Value {
    let (status, list) = app.api("GET", "/api/v1/applications", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("list").iter().find(|a| a["id"] == id).cloned().expect("the application is listed")
}

async fn facility_status(app: &TestApp, id: i64) -> String {
    let (status, f) = app.api("GET", &format!("/api/v1/facilities/{id}"), Some(&app.admin), None).await;
    assert_eq!(status, 200, "{f}");
    f["status"].as_str().expect("status").to_string()
}

const FACILITY_B: &str = "地域包括支援センター北";

/// Each page for the roles it serves; 403 for the others, showing nothing
/// of another facility.
async fn each_page_answers_its_roles_and_refuses_the_others(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let (admin, welfare, manager, staff) = (&app.admin, &w.welfare, &w.manager_a.id, &w.staff_a.id);
    let b = w.facility_b;

    for who in [admin, welfare] {
        assert!(page(app, who, "/console/applications").await.contains("施設の申請"));
        let list = page(app, who, "/console/facilities").await;
        assert!(list.contains(FACILITY_B) && list.contains("デイケア南"), "{list}");
    }
    let list = page(app, admin, "/console/facilities").await;
    assert!(list.contains(&format!("href=\"/console/facilities/{b}/suspend\"")), "行政管理課 is offered the step");
    let list = page(app, welfare, "/console/facilities").await;
    assert!(!list.contains("/suspend\""), "福祉課 reads the list only");
    assert_eq!(get(app, welfare, &format!("/console/facilities/{b}/suspend")).await.status, 403);
    assert!(page(app, admin, "/console/audit").await.contains("監査ログ"));
    let lifetimes = page(app, admin, "/console/certificates/expiring").await;
    assert!(lifetimes.contains("証明書の有効期限（全施設）") && lifetimes.contains("ルートCA"), "{lifetimes}");
    // The expiry list across facilities is 行政管理課's alone.
    assert_eq!(get(app, welfare, "/console/certificates/expiring").await.status, 403);
    // 福祉課 reads the whole log too (it decides applications city-wide).
    assert!(page(app, welfare, "/console/audit").await.contains("監査ログ"));

    // A manager: no city pages, and nothing of facility B anywhere.
    let a_app =
        app.public_api("POST", "/api/v1/applications", Some(&application("申請中の施設", "shinsei.kanri"))).await.1;
    let refused = [
        "/console/applications".to_string(),
        format!("/console/applications/{}/approve", a_app["id"]),
        format!("/console/applications/{}/reject", a_app["id"]),
        "/console/facilities".to_string(),
        format!("/console/facilities/{b}/suspend"),
        "/console/audit".to_string(),
        format!("/console/audit?facility={b}"),
        "/console/audit.csv".to_string(),
        "/console/certificates/expiring".to_string(),
    ];
    for path in &refused {
        for who in [manager, staff] {
            let reply = get(app, who, path).await;
            assert_eq!(reply.status, 403, "{path}: {}", reply.text());
            let text = reply.text();
            assert!(
                !text.contains(FACILITY_B) && !text.contains("kita.kanri") && !text.contains("申請中の施設"),
                "{text}"
            );
        }
    }

    // Everyone has their own page; staff start there.
    for who in [admin, welfare, manager, staff] {
        assert!(page(app, who, "/console/me").await.contains("わたしの端末と証明書"));
    }
    let start = get(app, staff, "/console/").await;
    assert_eq!((start.status, start.header("location")), (303, Some("/console/me")), "{}", start.text());
    // Without a certificate: the Japanese refusal, not the page.
    let anonymous = app.open(Req::new("GET", "/console/facilities")).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.text().contains("登録済みの端末の証明書"));
}
both_backends!(each_page_answers_its_roles_and_refuses_the_others);

/// 福祉課 approves one application and rejects another through the pages:
/// confirmation naming the facility and manager, the code shown once and
/// usable, the reason required and shown next to its field.
async fn applications_are_decided_through_the_pages(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let welfare = &w.welfare;
    let (_, one) =
        app.public_api("POST", "/api/v1/applications", Some(&application("ひまわり相談室", "himawari"))).await;
    let (_, two) = app.public_api("POST", "/api/v1/applications", Some(&application("あおぞら教室", "aozora"))).await;
    let (one, two) = (one["id"].as_i64().expect("id"), two["id"].as_i64().expect("id"));

    let list = page(app, welfare, "/console/applications").await;
    for detail in ["ひまわり相談室", "あおぞら教室", "himawari@example.test", "0123-24-3131", "2026-04-01 版", "福祉課"]
    {
        assert!(list.contains(detail), "{detail} missing: {list}");
    }

    let approve = format!("/console/applications/{one}/approve");
    let confirm = page(app, welfare, &approve).await;
    assert!(confirm.contains("ひまわり相談室") && confirm.contains("himawari") && confirm.contains("一度だけ"));
    // Without the token nothing happens.
    let forged = post(app, welfare, &approve, &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(application_status(app, one).await["status"], "pending");

    let slip = confirm_and_post(app, welfare, &approve, &[]).await;
    assert_eq!(slip.status, 200, "{}", slip.text());
    let slip = slip.text();
    assert!(slip.contains("端末登録票") && slip.contains("/enroll") && slip.contains("himawari"), "{slip}");
    let code = slip.split("id=\"code\">").nth(1).and_then(|s| s.split('<').next()).expect("the code on the slip");
    assert_eq!(application_status(app, one).await["status"], "approved");
    assert_eq!(
        audit_actions(app, &format!("application:{one}")).await.last().map(String::as_str),
        Some("application.approve")
    );
    // The code on the slip enrolls the manager.
    let manager = app.enroll_generated(code, Some(PASSWORD), "himawari-pc").await;
    assert_eq!(app.whoami(&manager).await["role"], "facility_manager");
    // Approving again: already decided, said so, nothing new.
    assert_eq!(get(app, welfare, &approve).await.status, 409);

    let reject = format!("/console/applications/{two}/reject");
    let empty = confirm_and_post(app, welfare, &reject, &[("reason", "  ")]).await;
    assert_eq!(empty.status, 422);
    let empty = empty.text();
    assert!(empty.contains("class=\"field-error\" id=\"reason-error\">却下の理由を入力してください"), "{empty}");
    assert!(empty.contains("aria-describedby=\"reason-error\""), "{empty}");
    assert_eq!(application_status(app, two).await["status"], "pending");

    let done = confirm_and_post(app, welfare, &reject, &[("reason", "所在地が市外のため")]).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("却下しました") && done.text().contains("所在地が市外のため"));
    let decided = application_status(app, two).await;
    assert_eq!(
        (decided["status"].as_str(), decided["decision_reason"].as_str()),
        (Some("rejected"), Some("所在地が市外のため"))
    );
    assert_eq!(
        audit_actions(app, &format!("application:{two}")).await.last().map(String::as_str),
        Some("application.reject")
    );
}
both_backends!(applications_are_decided_through_the_pages);

/// 行政管理課 suspends, resumes and closes facility B through the pages; the
/// confirmation says what happens to its devices; 福祉課 cannot.
async fn facilities_are_suspended_resumed_and_closed_through_the_pages(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let b = w.facility_b;
    let suspend = format!("/console/facilities/{b}/suspend");

    let confirm = page(app, &app.admin, &suspend).await;
    assert!(confirm.contains("この施設のすべての端末が、再開するまで直ちに使えなくなります"), "{confirm}");
    assert!(confirm.contains(FACILITY_B));
    assert_eq!(post(app, &app.admin, &suspend, &[]).await.status, 403, "no token, no change");
    // 福祉課's own valid token, from a form it may open.
    let (_, pending) = app.public_api("POST", "/api/v1/applications", Some(&application("待機中", "taiki"))).await;
    let welfare_csrf =
        csrf_of(&page(app, &w.welfare, &format!("/console/applications/{}/reject", pending["id"])).await);
    let refused = post(app, &w.welfare, &suspend, &[("csrf", &welfare_csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    // A valid token sent from another site's page: refused too.
    let admin_csrf = csrf_of(&confirm);
    let mut cross = Req::new("POST", &suspend).form(&[("csrf", &admin_csrf)]);
    cross.headers.push(("origin".into(), "https://evil.example".into()));
    let cross = app.try_mtls(Some(&app.admin), cross).await.expect("answer");
    assert_eq!(cross.status, 403, "{}", cross.text());
    assert_eq!(facility_status(app, b).await, "approved");

    let done = confirm_and_post(app, &app.admin, &suspend, &[]).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("一時停止しました"));
    assert_eq!(facility_status(app, b).await, "suspended");
    assert!(!app.handshake_ok(&w.manager_b.id).await, "the suspended facility's manager is refused");
    assert_eq!(app.ocsp_status(&w.manager_b.id).await, "revoked certificateHold", "relying parties see it too");
    assert!(done.text().contains("一時停止にした証明書</dt><dd>1 件"), "{}", done.text());
    let list = page(app, &app.admin, "/console/facilities").await;
    assert!(list.contains(&format!("href=\"/console/facilities/{b}/resume\"")), "{list}");

    let done = confirm_and_post(app, &app.admin, &format!("/console/facilities/{b}/resume"), &[]).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(facility_status(app, b).await, "approved");
    assert!(app.handshake_ok(&w.manager_b.id).await, "resumed: accepted again");
    assert_eq!(app.ocsp_status(&w.manager_b.id).await, "good");

    let close = format!("/console/facilities/{b}/close");
    assert!(page(app, &app.admin, &close).await.contains("失効と廃止は取り消せません"));
    let done = confirm_and_post(app, &app.admin, &close, &[]).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(facility_status(app, b).await, "closed");
    assert!(app.ocsp_status(&w.manager_b.id).await.starts_with("revoked"));
    let target = format!("facility:{b}");
    let actions = audit_actions(app, &target).await;
    assert_eq!(&actions[actions.len() - 3..], ["facility.suspend", "facility.resume", "facility.close"]);
    // Closed is final: no step is offered, and one forced is refused in Japanese.
    let again = confirm_and_post(app, &app.admin, &format!("/console/facilities/{b}/resume"), &[]).await;
    assert_eq!(again.status, 409);
    assert!(again.text().contains("現在の状態では、この操作はできません"));
}
both_backends!(facilities_are_suspended_resumed_and_closed_through_the_pages);

/// Filters narrow the log, a wrong one is named next to its field, and the
/// CSV holds the same records as the API's, in the page's words.
async fn the_audit_log_filters_and_downloads_csv(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let a = w.facility_a;
    let narrowed = page(app, &app.admin, &format!("/console/audit?facility={a}&action=user")).await;
    assert!(narrowed.contains("職員の登録") && !narrowed.contains("証明書の発行"), "{narrowed}");

    let wrong = get(app, &app.admin, "/console/audit?since=4月1日").await;
    assert_eq!(wrong.status, 422);
    let wrong = wrong.text();
    assert!(wrong.contains("id=\"since-error\">日付は 2026-04-01 の形で入力してください。"), "{wrong}");
    assert!(wrong.contains("aria-describedby=\"since-error\""));

    let csv = get(app, &app.admin, &format!("/console/audit.csv?facility={a}")).await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let api = app
        .try_mtls(Some(&app.admin), Req::new("GET", &format!("/api/v1/audit?format=csv&facility_id={a}")))
        .await
        .expect("API CSV");
    let text = csv.text();
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    let ids = |t: &str| t.lines().skip(1).filter_map(|l| l.split(',').next().map(str::to_string)).collect::<Vec<_>>();
    assert_eq!(ids(text), ids(&api.text()), "the page's CSV holds the API's records");
    assert!(text.starts_with("番号,日時（日本時間）,操作した人,操作,対象,結果,施設,職員,詳細"), "{text}");
    assert!(ids(text).len() > 3);
}
both_backends!(the_audit_log_filters_and_downloads_csv);

/// A member of staff sees their own devices and certificates with the
/// renewal status and the emergency page's address, and no one else's.
async fn staff_see_their_own_devices(backend: Backend) {
    let w: World = world(backend).await;
    let app = &w.app;
    let me = page(app, &w.staff_a.id, "/console/me").await;
    assert!(me.contains(&w.staff_a.serial) && me.contains("いま使っている証明書"), "{me}");
    // A fresh certificate: the days it has left, and the day 証明書の更新 opens.
    assert!(me.contains("残り ") && me.contains("id=\"renew-from\"") && !me.contains("/api/v1/"), "{me}");
    assert!(me.contains(&format!("https://{}/emergency", app.api)), "{me}");
    assert!(!me.contains(&w.manager_a.serial), "only the caller's own devices");
}
both_backends!(staff_see_their_own_devices);
