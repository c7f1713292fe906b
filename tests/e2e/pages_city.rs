//! The city's console pages in Debian's Chromium (issue 11, items 2 and 3),
//! each person signed in with their own client certificate: 福祉課 approves
//! an application (the slip's code enrolls the manager) and rejects one;
//! 行政管理課 suspends a facility — its manager is then refused by `openssl
//! ocsp` and by nginx — and resumes it — accepted again —, and reads the
//! audit log and its CSV; staff read their own page, and a manager is shown
//! none of the city's pages; then the public pages without a certificate
//! (applying, the status page, the emergency report's two steps), the
//! escalation queue it reaches, and the terms page. axe-core
//! finds no serious or critical violation on any page; screenshots go to
//! tests/artifacts/city-*.png.

use std::path::Path;

use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, Server, workspace};
use serde_json::{Value, json};

use crate::scenarios::{person, says};

use crate::nginx::{free_port, start_nginx, through_nginx};
use crate::revocation::ocsp_status;

/// One phase of tests/py/city_pages.py as the holder of `pem`.
fn chromium(s: &Server, pem: &Path, phase: &str, extra: Value) -> Value {
    chromium_as(s, Some(pem), phase, extra)
}

/// [`chromium`], also without a certificate (`None`: the public pages).
fn chromium_as(s: &Server, pem: Option<&Path>, phase: &str, extra: Value) -> Value {
    crate::scenarios::chromium(s, "city_pages.py", "city", pem, phase, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_and_staff_work_their_pages_in_chromium() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let welfare = person(&s, &admin, 1, "fukushi.tanto", "welfare_division");

    // A facility in use, to suspend: its manager and a member of staff.
    let (_, made) =
        s.public_api("POST", "/api/v1/applications", Some(&application("みどり相談支援センター", "midori.kanri")));
    let (status, approval) = s.api("POST", &format!("/api/v1/applications/{}/approve", made["id"]), Some(&admin), None);
    assert_eq!(status, 200, "{approval}");
    let facility = approval["facility_id"].as_i64().expect("facility");
    let manager =
        s.enroll_generated(approval["enrollment_code"]["code"].as_str().expect("code"), Some(PASSWORD), "midori-pc");
    let staff = person(&s, &manager, facility, "midori.staff", "staff");

    // Two applications for 福祉課.
    let (_, one) = s.public_api("POST", "/api/v1/applications", Some(&application("ひまわり相談室", "himawari.kanri")));
    let (_, two) = s.public_api("POST", "/api/v1/applications", Some(&application("市外の事業所", "shigai.kanri")));

    let out = chromium(&s, &welfare, "welfare", json!({"application": one["id"], "reject": two["id"]}));
    says(&out, "applications", "himawari.kanri@example.test");
    says(&out, "approve_effect", "ひまわり相談室");
    says(&out, "approved", "承認しました");
    says(&out, "enroll_url", "/enroll");
    says(&out, "reject_error", "却下の理由を入力してください");
    assert_eq!(out["reason_described_by"], "reason-error");
    says(&out, "rejected", "却下しました");
    says(&out, "facility_page", "施設管理者");
    assert_eq!(out["slip_only_when_printed"], true, "{out}");
    assert_eq!((out["welfare_offered_steps"].as_i64(), out["welfare_audit_status"].as_i64()), (Some(0), Some(200)));
    // The code on the slip enrolls the new facility's manager.
    let code = out["code"].as_str().expect("the code on the slip");
    let himawari = s.enroll_generated(code, Some(PASSWORD), "himawari-pc");
    assert_eq!(s.api("GET", "/api/v1/whoami", Some(&himawari), None).1["role"], "facility_manager");
    let (_, apps) = s.api("GET", "/api/v1/applications?status=rejected", Some(&admin), None);
    assert!(apps.as_array().is_some_and(|a| a.iter().any(|x| x["id"] == two["id"])), "{apps}");

    // Before: the manager is good in OCSP and let through by nginx.
    let port = free_port();
    let _nginx = start_nginx(&s, port);
    assert_eq!(ocsp_status(&s, &manager), "good");
    assert_eq!(through_nginx(&s, port, &manager).0, 200);

    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&manager), None);
    let facility_ids = json!({"facility": facility, "serial": me["serial"], "find": "midori"});
    let out = chromium(&s, &admin, "suspend", facility_ids.clone());
    says(&out, "effect", "この施設のすべての端末が、再開するまで直ちに使えなくなります");
    says(&out, "result", "一時停止しました");
    says(&out, "state", "利用停止中");
    says(&out, "audit_rows", "施設の利用停止");
    // Read back as Excel would: the byte-order mark, then Japanese headers.
    let csv = out["csv"].as_str().expect("CSV");
    assert!(csv.starts_with("\u{feff}番号,日時（日本時間）,操作した人"), "{csv}");
    assert!(csv.contains("施設の利用停止") && !csv.contains("facility.suspend"), "{csv}");
    says(&out, "lifetimes", "ルートCA");
    says(&out, "relying_parties", "127.0.0.0/24");
    // The page was read right after the suspension, before nginx asked again.
    says(&out, "incident", "証明書を一時停止");
    says(&out, "incident", "OCSP で「有効」と回答（最後）");
    // Issue 25's pages as 行政管理課 reads them in Chromium (axe above).
    says(&out, "facility", "みどり相談支援センター");
    says(&out, "facility", "担当課");
    says(&out, "phone", "midori.staff");
    says(&out, "review", "アカウントの棚卸し");
    assert_eq!(ocsp_status(&s, &manager), "revoked certificateHold");
    let (status, body) = through_nginx(&s, port, &manager);
    assert_eq!(status, 400, "nginx let the suspended facility's manager through: {body}");

    let out = chromium(&s, &admin, "resume", facility_ids);
    says(&out, "result", "再開しました");
    says(&out, "state", "利用中");
    assert_eq!(ocsp_status(&s, &manager), "good");
    assert_eq!(through_nginx(&s, port, &manager).0, 200, "resumed: accepted again");

    let out = chromium(&s, &staff, "staff", json!({}));
    assert!(out["start"].as_str().is_some_and(|u| u.ends_with("/console/me")), "{out}");
    says(&out, "emergency_url", &format!("https://{}/emergency", s.api));
    says(&out, "devices", "残り");
    assert_eq!(out["applications_status"], 403);
    says(&out, "refusal", "権限がありません");

    let out = chromium(&s, &manager, "manager", json!({}));
    for path in ["/console/facilities", "/console/applications", "/console/audit", "/console/certificates/expiring"] {
        assert_eq!(out[path]["status"], 403, "{out}");
        let text = out[path]["text"].as_str().unwrap_or_default();
        assert!(text.contains("権限がありません") && !text.contains("ひまわり相談室"), "{path}: {text}");
    }
    // The pages without a certificate, the report's two steps, the queue it
    // lands in, and the terms a manager registered by the city meets first.
    let out = chromium_as(&s, None, "public", json!({"login": "midori.staff", "password": PASSWORD}));
    says(&out, "applied", "受け付けました");
    says(&out, "status", "あおぞら相談室");
    says(&out, "choose", "midori.staff");
    says(&out, "reported", "一時停止しました");
    says(&out, "install", "Android");
    assert_eq!(ocsp_status(&s, &staff), "revoked certificateHold");
    let out = chromium(&s, &admin, "queue", json!({}));
    says(&out, "queue", "みどり相談支援センター");
    let second = person(&s, &admin, facility, "midori.kanri2", "facility_manager");
    let out = chromium(&s, &second, "terms", json!({}));
    says(&out, "terms", "利用規約");
    for shot in [
        "applications",
        "approved",
        "slip-print",
        "facilities",
        "suspend-confirm",
        "audit",
        "lifetimes",
        "relying-parties",
        "incident",
        "me",
        "public-apply",
        "public-install-iphone",
        "facility",
        "phone",
        "review",
        "public-emergency-choose",
        "public-emergency-done",
        "queue",
        "terms",
    ] {
        assert!(workspace().join(format!("tests/artifacts/city-{shot}.png")).exists(), "no screenshot {shot}");
    }
}
