//! A log review (issue 25, item 6), after a year's worth of ordinary events:
//! Chromium follows every link from the start page of 行政管理課, 福祉課, a
//! facility manager and a member of staff, and of the public pages — every
//! page, not a sample — runs axe-core on each, and no page shows an
//! identifier of the code (`certificate.revoke`, `admin_division`,
//! `user:5`, raw JSON); the audit log's CSV, downloaded as a browser does,
//! opens in Excel on Japanese Windows (byte-order mark, Japanese headers).

use std::path::Path;

use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::words::code_words;
use connect_pki_e2e::{Backend, Server};
use serde_json::{Value, json};

use super::{facility, person, registered, walk};

/// A code guessed wrong, a report from the emergency page worked by
/// 行政管理課, a hold and its release, a revoke, a loss, a retirement and a
/// deletion, an emergency password reset, a refused call.
fn a_busy_year(s: &Server, admin: &Path, manager: &Path, a: i64) -> (std::path::PathBuf, String) {
    let ok = |(status, out): (u16, Value), want: u16| assert_eq!(status, want, "{out}");
    let body = json!({"code": "ABCD-EFGH-JKMN-PQRS", "generate_key": true});
    ok(s.public_api("POST", "/api/v1/enroll", Some(&body)), 401);
    let staff = person(s, manager, a, "nichijo.staff", "staff");
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&staff), None);
    let body = json!({"login_id": "nichijo.staff", "password": PASSWORD, "device_id": me["device_id"]});
    ok(s.public_api("POST", "/api/v1/emergency", Some(&body)), 201);
    let (_, list) = s.api("GET", "/api/v1/escalations", Some(admin), None);
    let id = list[0]["id"].as_i64().unwrap_or_else(|| panic!("the report in {list}"));
    ok(s.api("POST", &format!("/api/v1/escalations/{id}/claim"), Some(admin), Some(&json!({}))), 200);
    let body = json!({"outcome": "released", "note": "本人の机の中から見つかった"});
    ok(s.api("POST", &format!("/api/v1/escalations/{id}/resolve"), Some(admin), Some(&body)), 200);
    let other = person(s, manager, a, "hoka.staff", "staff");
    let (_, o) = s.api("GET", "/api/v1/whoami", Some(&other), None);
    let serial = o["serial"].as_str().expect("serial");
    ok(s.api("POST", &format!("/api/v1/certificates/{serial}/hold"), Some(manager), None), 200);
    ok(s.api("POST", &format!("/api/v1/certificates/{serial}/release"), Some(manager), None), 200);
    let revoke = json!({"reason": "affiliationChanged"});
    ok(s.api("POST", &format!("/api/v1/certificates/{serial}/revoke"), Some(manager), Some(&revoke)), 200);
    let (lost_user, code) = registered(s, manager, a, "nakushita.staff", "staff");
    let lost = s.enroll_generated(&code, Some(PASSWORD), "nakushita");
    let (_, l) = s.api("GET", "/api/v1/whoami", Some(&lost), None);
    ok(s.api("POST", &format!("/api/v1/devices/{}/lost", l["device_id"]), Some(manager), None), 200);
    ok(s.api("POST", &format!("/api/v1/users/{lost_user}/retire"), Some(manager), None), 200);
    ok(s.api("DELETE", &format!("/api/v1/users/{lost_user}"), Some(manager), None), 200);
    ok(s.api("POST", &format!("/api/v1/users/{}/emergency-password", me["user_id"]), Some(manager), None), 201);
    ok(s.api("GET", "/api/v1/audit", Some(&staff), None), 403);
    (staff, serial.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_review_reads_in_japanese_on_every_page() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let welfare = person(&s, &admin, 1, "fukushi.kansa", "welfare_division");
    let (a, _, manager) = facility(&s, &admin, "ことぶき地域包括支援センター", "kotobuki.kanri");
    let (staff, revoked) = a_busy_year(&s, &admin, &manager, a);

    let mut found = Vec::new();
    let console = json!(["/console/"]);
    // The record of a revoked certificate and its check, which 行政管理課
    // opens from an incident report rather than from a menu.
    let city = json!(["/console/", format!("/console/certificates/{revoked}/incident"), "/console/verify"]);
    let public = json!([
        "/emergency",
        "/apply",
        "/enroll",
        "/install",
        "/install/windows",
        "/install/iphone",
        "/install/mac",
        "/install/android"
    ]);
    let walks: [(&str, Option<&Path>, &Value, usize); 5] = [
        ("行政管理課", Some(&admin), &city, 15),
        ("福祉課", Some(&welfare), &console, 5),
        ("施設管理者", Some(&manager), &console, 10),
        ("職員", Some(&staff), &console, 1),
        ("申請者", None, &public, 8),
    ];
    let mut csv = String::new();
    for (i, (who, pem, start, at_least)) in walks.into_iter().enumerate() {
        let crawl = json!({"who": format!("{i}"), "start": start, "csv": i == 0});
        let out = walk(&s, pem, "crawl", crawl);
        let pages = out["pages"].as_object().expect("pages");
        assert!(pages.len() >= at_least, "{who} reached only {:?}", pages.keys().collect::<Vec<_>>());
        for (path, text) in pages {
            found.extend(code_words(&format!("{who} {path}"), text.as_str().unwrap_or_default()));
        }
        if let Some(c) = out["csv"].as_str() {
            csv = c.to_string();
        }
    }
    assert!(found.is_empty(), "{} identifiers on pages:\n{}", found.len(), found.join("\n"));
    // The CSV as Excel reads it: the byte-order mark, then Japanese headers.
    assert!(csv.starts_with("\u{feff}番号,日時（日本時間）,操作した人"), "{csv}");
    assert!(csv.contains("証明書の失効") || csv.contains("失効"), "{csv}");
    let codes = code_words("CSV", &csv);
    assert!(codes.is_empty(), "{}", codes.join("\n"));
}
