//! The night-time call (issue 25, item 5). On a Saturday night the number of
//! 行政管理課 is on the emergency page and on わたしの端末; 行政管理課 takes
//! a call on 電話での届出, finds the person across facilities, records who
//! called and the callback number, and revokes: `openssl ocsp` and our
//! handshake refuse the device at once. In business hours, a report the
//! manager has since handled (revoked from the staff page) is closed with
//! that outcome and no 【至急】 follows, while one left alone moves on.

use std::path::Path;
use std::time::{Duration, Instant};

use connect_pki_e2e::fixtures::{PASSWORD, next_business_morning, next_saturday_night};
use connect_pki_e2e::{Backend, FakeTime, Server, Sinks};
use serde_json::{Value, json};

use super::{facility, registered, says, walk};
use crate::revocation::{handshake_ok, ocsp_status};

const PHONE: &str = "0123-24-0000";

/// A member of staff of `facility`, enrolled: (user id, device id, PEM).
fn staff(s: &Server, manager: &Path, facility: i64, login: &str) -> (i64, i64, std::path::PathBuf) {
    let (id, code) = registered(s, manager, facility, login, "staff");
    let pem = s.enroll_generated(&code, Some(PASSWORD), login);
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&pem), None);
    (id, me["device_id"].as_i64().expect("device"), pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_time_call_stops_the_device_at_once() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (a, _, manager) = facility(&s, &admin, "よる相談支援センター", "yoru.kanri");
    let (_, device, pem) = staff(&s, &manager, a, "yoru.staff");
    s.stop();
    let desk = ["--city-phone", PHONE, "--city-phone-hours", "平日 8:30〜17:15（夜間・休日は当直）"];
    s.spawn_at(FakeTime::at(next_saturday_night()), &desk);

    let out = walk(&s, None, "emergency_page", json!({}));
    says(&out, "page", PHONE);
    let out = walk(&s, Some(&pem), "my_page", json!({"shot": "night-me"}));
    says(&out, "emergency", PHONE);
    assert_eq!(ocsp_status(&s, &pem), "good");

    let call =
        json!({"find": "yoru.staff", "device": device, "caller": "夜間 太郎（本人）", "callback": "090-1234-5678"});
    let out = walk(&s, Some(&admin), "phone_call", call);
    says(&out, "form", "電話");
    says(&out, "found", "よる相談支援センター");
    says(&out, "result", "失効");
    // At once, to any relying party and to us.
    assert!(ocsp_status(&s, &pem).starts_with("revoked"), "{}", ocsp_status(&s, &pem));
    assert!(!handshake_ok(&s, &pem), "the device still gets in after the call");
    // Audited with who called and where to call back.
    let (_, log) = s.api("GET", "/api/v1/audit?limit=50", Some(&admin), None);
    let entry = log.as_array().expect("audit").iter().find(|e| e.to_string().contains("090-1234-5678")).cloned();
    let entry = entry.unwrap_or_else(|| panic!("no audit record with the callback number: {log}"));
    assert!(entry.to_string().contains("夜間 太郎"), "{entry}");
}

/// The escalation of `device`, as 行政管理課 lists them.
fn escalation_of(s: &Server, admin: &Path, device: i64) -> Value {
    let (_, list) = s.api("GET", "/api/v1/escalations?status=all", Some(admin), None);
    list.as_array().expect("list").iter().find(|e| e["device_id"] == device).cloned().expect("its escalation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_manager_handled_is_closed_and_never_urgent() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (a, _, manager) = facility(&s, &admin, "ひる相談支援センター", "hiru.kanri");
    let (handled_id, handled, handled_pem) = staff(&s, &manager, a, "hiru.staff");
    let (_, alone, _) = staff(&s, &manager, a, "sonomama.staff");
    let sinks = Sinks::start(&s, "hook secret");
    sinks.configure(&s);
    s.stop();
    let env = [("CONNECT_PKI_WEBHOOK_SECRET", "hook secret")];
    s.spawn_at_env(FakeTime::at(next_business_morning()), &["--escalation-sla-minutes", "1"], &env);

    let out = walk(&s, None, "report_lost", json!({"login": "hiru.staff", "password": PASSWORD}));
    says(&out, "reported", "一時停止しました");
    let body = json!({"login_id": "sonomama.staff", "password": PASSWORD, "device_id": alone});
    let (status, left) = s.public_api("POST", "/api/v1/emergency", Some(&body));
    assert_eq!((status, left["queue"].as_str()), (201, Some("manager")), "{left}");
    assert_eq!(escalation_of(&s, &admin, handled)["queue"], "manager");

    let out = walk(&s, Some(&manager), "manager_revokes", json!({"staff": handled_id}));
    says(&out, "result", "失効しました");
    assert!(ocsp_status(&s, &handled_pem).starts_with("revoked"));
    let e = escalation_of(&s, &admin, handled);
    assert_eq!((e["status"].as_str(), e["outcome"].as_str()), (Some("resolved"), Some("revoked")), "{e}");

    // The SLA (a minute here) passes: the report left alone moves to
    // 行政管理課 with 【至急】; the handled one never does.
    let urgent = |id: &Value| {
        let needle = format!("受付 {id}");
        sinks.entries().iter().any(|x| {
            x["kind"] == "email" && x["subject"].as_str().is_some_and(|t| t.contains("【至急】") && t.contains(&needle))
        })
    };
    let left_id = left["escalation_id"].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !urgent(&left_id) {
        assert!(Instant::now() < deadline, "the report left alone never reached 行政管理課: {:?}", sinks.entries());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(!urgent(&e["id"]), "【至急】 for a report the manager handled: {:?}", sinks.entries());
    let out = walk(&s, Some(&admin), "queue", json!({}));
    // Open: only the report left alone; the handled one among the closed,
    // with its outcome.
    let queue = out["queue"].as_str().unwrap_or_default();
    let (open, closed) = queue.split_once("対応済み").unwrap_or((queue, ""));
    assert!(open.contains("sonomama.staff") && !open.contains("hiru.staff"), "{queue}");
    assert!(closed.contains("hiru.staff") && closed.contains("失効"), "{queue}");
}
