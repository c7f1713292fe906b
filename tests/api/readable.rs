//! Records people can read (issue 25, item 6): every console page a city
//! clerk, a facility manager or a member of staff can reach — found by
//! following the links from each one's start page, not listed here — shows
//! no identifier of the code: no action name (`certificate.revoke`), no
//! actor or target key (`user:5`, `public:203.0.113.9`), no role, status or
//! field name in snake_case (`admin_division`, `on_hold`), no raw JSON. The
//! audit log's CSV opens in Excel on Japanese Windows: UTF-8 with a BOM,
//! Japanese headers, Japan time.

use std::collections::{BTreeSet, VecDeque};

use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::words::code_words;
use connect_pki_e2e::{Backend, TestApp, both_backends};
use regex::Regex;
use serde_json::json;

use crate::world::{World, world};

/// The text a person reads: tags, styles and scripts removed.
fn visible(html: &str) -> String {
    let html = Regex::new(r"(?s)<(style|script)\b.*?</(style|script)>").expect("regex").replace_all(html, " ");
    let text = Regex::new(r"<[^>]*>").expect("regex").replace_all(&html, " ");
    text.replace("&quot;", "\"").replace("&#34;", "\"").replace("&amp;", "&").replace("&#39;", "'")
}

/// Every console page `who` reaches from `/console/` by its links (GET only;
/// downloads and the JSON record excluded, the CSV checked on its own).
async fn walk(app: &TestApp, who: &Identity) -> Vec<(String, String)> {
    let link = Regex::new(r##"href="(/console[^"#]*)""##).expect("regex");
    let mut seen = BTreeSet::from(["/console/".to_string()]);
    let mut queue = VecDeque::from(["/console/".to_string()]);
    let mut pages = Vec::new();
    while let Some(path) = queue.pop_front() {
        let r = app.try_mtls(Some(who), Req::new("GET", &path)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(r.status < 500, "GET {path}: {}", r.status);
        let body = r.text();
        let moved = r.header("location").filter(|l| l.starts_with("/console")).map(|l| format!("href=\"{l}\""));
        for c in link.captures_iter(&format!("{body}{}", moved.unwrap_or_default())) {
            let next = c[1].replace("&amp;", "&");
            let file = [".csv", ".json", ".css", ".js"].iter().any(|x| next.ends_with(x)) || next.contains(".csv?");
            if file {
                continue;
            }
            if seen.len() < 400 && seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
        pages.push((path, visible(&body)));
    }
    pages
}

/// A year's worth of ordinary events in a few calls: a code guessed wrong,
/// a report from the emergency page worked by 行政管理課, a revoke, a hold
/// and its release, a loss, a retirement and a deletion, a refused call.
async fn a_busy_facility(w: &World) {
    let app = &w.app;
    let (status, out) = app
        .public_api("POST", "/api/v1/enroll", Some(&json!({"code": "ABCD-EFGH-JKMN-PQRS", "generate_key": true})))
        .await;
    assert_eq!(status, 401, "{out}");
    let other = app.staff(&w.manager_a.id, w.facility_a, "jiro").await;
    let lost = app.staff(&w.manager_a.id, w.facility_a, "saburo").await;
    let body = json!({"login_id": "hanako", "password": PASSWORD, "device_id": w.staff_a.device_id});
    let (status, out) = app.public_api("POST", "/api/v1/emergency", Some(&body)).await;
    assert_eq!(status, 201, "{out}");
    let (_, list) = app.api("GET", "/api/v1/escalations", Some(&app.admin), None).await;
    let id = list[0]["id"].as_i64().unwrap_or_else(|| panic!("the report in {list}"));
    let (status, out) =
        app.api("POST", &format!("/api/v1/escalations/{id}/claim"), Some(&app.admin), Some(&json!({}))).await;
    assert_eq!(status, 200, "{out}");
    let body = json!({"outcome": "released", "note": "本人の机の中から見つかった"});
    let (status, out) =
        app.api("POST", &format!("/api/v1/escalations/{id}/resolve"), Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 200, "{out}");
    let revoke = json!({"reason": "affiliationChanged"});
    let path = format!("/api/v1/certificates/{}/hold", other.serial);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), None).await.0, 200);
    let path = format!("/api/v1/certificates/{}/release", other.serial);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), None).await.0, 200);
    let path = format!("/api/v1/certificates/{}/revoke", other.serial);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), Some(&revoke)).await.0, 200);
    let path = format!("/api/v1/devices/{}/lost", lost.device_id);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), None).await.0, 200);
    let path = format!("/api/v1/users/{}/retire", lost.user_id);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), None).await.0, 200);
    let path = format!("/api/v1/users/{}", lost.user_id);
    assert_eq!(app.api("DELETE", &path, Some(&w.manager_a.id), None).await.0, 200);
    assert_eq!(app.api("GET", "/api/v1/audit", Some(&w.staff_a.id), None).await.0, 403);
    connect_pki_ra::audit::flush_refusals(app.state()).await.expect("refusals written");
}

async fn no_page_shows_the_codes_own_words(backend: Backend) {
    let w = world(backend).await;
    a_busy_facility(&w).await;
    let app = &w.app;
    let mut found = Vec::new();
    let callers =
        [("行政管理課", &app.admin), ("福祉課", &w.welfare), ("施設管理者", &w.manager_a.id), ("職員", &w.staff_a.id)];
    for (who, id) in callers {
        let pages = walk(app, id).await;
        assert!(
            pages.len() > 1 || who == "職員",
            "{who} reached only {:?}",
            pages.iter().map(|p| &p.0).collect::<Vec<_>>()
        );
        for (path, text) in pages {
            found.extend(code_words(&format!("{who} {path}"), &text));
        }
    }
    assert!(found.is_empty(), "{} identifiers on pages:\n{}", found.len(), found.join("\n"));
    // 所属 as the rules say it: 福祉課 is not 行政管理課, whose record holds the city's staff.
    let me = app.try_mtls(Some(&w.welfare), Req::new("GET", "/console/me")).await.expect("GET /console/me").text();
    let affiliation = Regex::new(r#"id="affiliation">([^<]*)<"#).expect("regex");
    let said = affiliation.captures(&me).map(|c| c[1].to_string()).unwrap_or_default();
    assert!(said.contains("福祉課") && !said.contains("行政管理課"), "{said}");
}
both_backends!(no_page_shows_the_codes_own_words);

/// The audit log as CSV opens in Excel on Japanese Windows.
async fn the_audit_csv_opens_in_excel_on_japanese_windows(backend: Backend) {
    let w = world(backend).await;
    a_busy_facility(&w).await;
    let r = w.app.try_mtls(Some(&w.app.admin), Req::new("GET", "/console/audit.csv")).await.expect("GET the CSV");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.contains("text/csv") && c.contains("utf-8")), "{:?}", r.headers);
    assert!(r.body.starts_with(b"\xEF\xBB\xBF"), "no byte-order mark");
    let text = String::from_utf8(r.body[3..].to_vec()).expect("UTF-8");
    let header = text.lines().next().expect("a header");
    assert!(header.starts_with("番号,日時"), "{header}");
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.is_empty() || Regex::new(r"^\d+,\d{4}-\d{2}-\d{2} \d{2}:\d{2}").expect("regex").is_match(l))
            || text.contains('"'),
        "Japan times: {text}"
    );
    let found = code_words("CSV", &text);
    assert!(found.is_empty(), "identifiers in the CSV: {found:?}\n{text}");
}
both_backends!(the_audit_csv_opens_in_excel_on_japanese_windows);

/// The signed incident record, checked on 記録の検証 by uploading the file:
/// the record as handed out is verified; one changed word is not.
async fn an_incident_record_is_verified_without_a_command_line(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let path = format!("/api/v1/devices/{}/lost", w.staff_a.device_id);
    assert_eq!(app.api("POST", &path, Some(&w.manager_a.id), None).await.0, 200);
    let page = app
        .try_mtls(
            Some(&w.manager_a.id),
            Req::new("GET", &format!("/console/certificates/{}/incident", w.staff_a.serial)),
        )
        .await
        .expect("the incident page");
    assert!(
        page.text().contains("id=\"verify-link\"") && !page.text().contains("connect-pki receipt"),
        "{}",
        page.text()
    );
    let file = app
        .try_mtls(
            Some(&w.manager_a.id),
            Req::new("GET", &format!("/console/certificates/{}/incident.json", w.staff_a.serial)),
        )
        .await
        .expect("the signed file");
    assert_eq!(file.status, 200);
    let upload = |body: &[u8]| {
        let boundary = "----connect-pki-test";
        let mut b = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"incident.json\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .into_bytes();
        b.extend_from_slice(body);
        b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Req::new("POST", "/console/verify").body(&format!("multipart/form-data; boundary={boundary}"), b)
    };
    let ok = app.try_mtls(Some(&w.manager_a.id), upload(&file.body)).await.expect("verify");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("id=\"verified\"") && ok.text().contains(&w.staff_a.serial), "{}", ok.text());
    assert!(ok.text().contains("失効"), "{}", ok.text());
    let tampered = String::from_utf8(file.body.clone()).expect("JSON").replacen("keyCompromise", "unspecified", 1);
    let bad = app.try_mtls(Some(&w.manager_a.id), upload(tampered.as_bytes())).await.expect("verify");
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert!(
        bad.text().contains("id=\"not-verified\"") && bad.text().contains("検証できませんでした"),
        "{}",
        bad.text()
    );
}
both_backends!(an_incident_record_is_verified_without_a_command_line);
