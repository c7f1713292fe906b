//! The terms of use (利用規約) as the city wrote them: read from the data
//! directory with their version, shown verbatim, required at application,
//! and accepted again by every facility manager when the version changes.

use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use serde_json::Value;

const NEW_TERMS: &str = "version = \"2027-04-01\"\ntext = '''\n電子@連絡帳 利用規約（改定）\n第1条 本規約は……\n'''\n";

async fn console(app: &TestApp, who: &Identity) -> String {
    console_at(app, who, "/console/").await
}

async fn console_at(app: &TestApp, who: &Identity, path: &str) -> String {
    let reply = app.try_mtls(Some(who), Req::new("GET", path)).await.expect("console");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().expect("token").to_string()
}

/// (status, body, where it redirects to).
async fn accept(app: &TestApp, who: &Identity, csrf: &str, version: &str) -> (u16, String, String) {
    let req = Req::new("POST", "/console/terms").form(&[("csrf", csrf), ("version", version)]);
    let reply = app.try_mtls(Some(who), req).await.expect("answer");
    (reply.status, reply.text(), reply.header("location").unwrap_or_default().to_string())
}

async fn acceptances(app: &TestApp) -> Vec<Value> {
    let (_, audit) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    audit.as_array().expect("audit").iter().filter(|r| r["action"] == "terms.accept").cloned().collect()
}

async fn changed_terms_are_accepted_once_by_each_manager(backend: Backend) {
    let mut app = spawn_app_with(backend, AppOptions { own_data_dir: true, ..AppOptions::default() }).await;
    // `init` wrote the city's text; it is what the application page shows.
    let (status, terms) = app.public_api("GET", "/api/v1/terms", None).await;
    assert_eq!((status, terms["version"].as_str()), (200, Some("2026-04-01")), "{terms}");
    let page = app.open(Req::new("GET", "/apply")).await.text();
    assert!(page.contains("利用規約（2026-04-01 版）"), "{page}");
    assert!(page.contains("電子連絡帳 CONNECT コネクト に係る運用ルールについて"), "the city's own text");

    let f = app.facility(&app.admin, "規約テスト施設", "kiyaku.kanri").await;
    let manager = app.manager(&f, "kiyaku-pc").await;
    assert!(console(&app, &manager.id).await.contains("対応待ちの届出"), "accepted at application: no gate");

    app.stop().await;
    std::fs::write(app.data_dir().join("terms.toml"), NEW_TERMS).expect("write terms");
    app.start().await;

    // Applications must now name the new version.
    let (status, out) = app.public_api("POST", "/api/v1/applications", Some(&application("旧規約", "old.terms"))).await;
    assert_eq!((status, out["error"]["code"].as_str()), (422, Some("invalid")), "{out}");
    let mut fresh = application("新規約", "new.terms");
    fresh["terms_version"] = "2027-04-01".into();
    assert_eq!(app.public_api("POST", "/api/v1/applications", Some(&fresh)).await.0, 201);

    // The manager meets the new terms before anything else, verbatim.
    let page = console(&app, &manager.id).await;
    assert!(page.contains("利用規約が改定されました（2027-04-01 版）") && page.contains("第1条 本規約は……"), "{page}");
    assert!(!page.contains("対応待ちの届出"), "the console waits for the acceptance");
    let csrf = csrf_of(&page);
    // Accepting an older version, or without the page's token, records nothing.
    let (_, refused, _) = accept(&app, &manager.id, &csrf, "2026-04-01").await;
    assert!(refused.contains("利用規約が更新されています"), "{refused}");
    assert_eq!(accept(&app, &manager.id, "", "2027-04-01").await.0, 403);
    assert!(acceptances(&app).await.is_empty());

    let (status, _, location) = accept(&app, &manager.id, &csrf, "2027-04-01").await;
    assert_eq!(status, 303);
    let page = console_at(&app, &manager.id, &location).await;
    assert!(
        page.contains("利用規約（2027-04-01 版）への同意を記録しました。") && page.contains("対応待ちの届出"),
        "{page}"
    );
    assert_eq!(accept(&app, &manager.id, &csrf, "2027-04-01").await.0, 303, "accepting twice is harmless");
    let records = acceptances(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["detail"]["version"], "2027-04-01");
    assert_eq!(records[0]["user_id"], manager.user_id);
    assert_eq!(records[0]["facility_id"], f.id);

    // The city's roles wrote the terms: never gated.
    assert!(console(&app, &app.admin).await.contains("対応待ちの届出"));
}
both_backends!(changed_terms_are_accepted_once_by_each_manager);
