//! After-hours emergencies (issue 5) where outside programs are needed: the
//! console in Chromium, notifications to a webhook and a mail sink while the
//! binary runs at chosen times under libfaketime, and the calendar command.
//! The API side of emergencies is in the `api` suite.

use connect_pki_e2e::fixtures::{PASSWORD, device};
use connect_pki_e2e::{Backend, FakeTime, Server, Sinks};
use serde_json::{Value, json};

use crate::revocation::{handshake_ok, ocsp_status};

/// The next Saturday, 22:00 in Asia/Tokyo.
fn saturday_night() -> FakeTime {
    FakeTime::at(connect_pki_e2e::fixtures::next_saturday_night())
}

/// 10:00 in Asia/Tokyo on the next business day, at 60 times the speed.
fn business_morning_fast() -> FakeTime {
    FakeTime::at(connect_pki_e2e::fixtures::next_business_morning()).fast(60)
}

fn report(s: &Server, login: &str, password: &str, device: i64) -> (u16, Value) {
    s.public_api(
        "POST",
        "/api/v1/emergency",
        Some(&json!({"login_id": login, "password": password, "device_id": device})),
    )
}

/// `connect-pki calendar YEAR` prints holidays, 年末年始 and configured closures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_command_lists_every_closed_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.toml"), "[calendar]\nclosures = { \"2027-06-14\" = \"システム保守日\" }\n")
        .expect("config");
    let bin = connect_pki_e2e::binary().display().to_string();
    let o =
        connect_pki_e2e::run(&bin, &["calendar", "2027", "--data-dir", &dir.path().display().to_string()], dir.path());
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", connect_pki_e2e::text(&o));
    for line in ["2027-03-22 春分の日 振替休日", "2027-06-14 システム保守日", "2027-12-29 年末年始", "2027-01-01 元日"]
    {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    let bad = connect_pki_e2e::run(&bin, &["calendar", "20x7"], dir.path());
    assert!(!bad.status.success());
}

/// An operator of 行政管理課 in a real headless Chromium, signed in with the
/// bootstrap PKCS#12 as client certificate, claims a Saturday-night report
/// with the keyboard and revokes it; OCSP then says keyCompromise. The
/// screenshots are kept in tests/artifacts/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_works_the_console_in_chromium() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "chromium.user");
    let sinks = Sinks::start(&s, "hook secret");
    sinks.configure(&s);
    s.stop();
    s.spawn_at_env(saturday_night(), &[], &[("CONNECT_PKI_WEBHOOK_SECRET", "hook secret")]);
    let (status, out) = report(&s, "chromium.user", PASSWORD, d.device_id);
    assert_eq!((status, out["queue"].as_str()), (201, Some("admin_division")), "{out}");
    let id = out["escalation_id"].as_i64().expect("id");
    // On hold at once, in OCSP and at our handshake.
    assert_eq!(ocsp_status(&s, &d.pem), "revoked certificateHold");
    assert!(!handshake_ok(&s, &d.pem));
    // The webhook (after its first, failed, call) and the on-call mailbox hear of it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let e = sinks.entries();
        let hook = e.iter().any(|x| {
            x["kind"] == "webhook"
                && x["answered"] == 200
                && x["body"]["escalation_id"] == id
                && x["body"]["queue"] == "admin_division"
                && x["signature_valid"] == true
        });
        let mail = e.iter().any(|x| x["kind"] == "email" && x["to"][0] == "it-oncall@city.example");
        if hook && mail {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "notifications not received: {e:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Without the CSRF token, the console refuses the action.
    let (_, status, html) = s.curl_api(
        &format!("/console/escalations/{id}/claim"),
        &["--cert", &admin.display().to_string(), "--data-urlencode", "note=x"],
    );
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("不正なリクエストです"), "{html}");

    let artifacts = connect_pki_e2e::workspace().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shots = artifacts.join("console").display().to_string();
    let p12 = s.init["bootstrap"]["pkcs12_path"].as_str().expect("p12").to_string();
    let script = connect_pki_e2e::workspace().join("tests/py/console.py").display().to_string();
    let base = format!("https://{}", s.api);
    let o = s.run("python3", &[&script, &base, &p12, s.p12_password(), &id.to_string(), &shots]);
    assert!(o.status.success(), "Chromium run failed: {}", connect_pki_e2e::text(&o));
    let page: Value = serde_json::from_slice(&o.stdout).expect("JSON from console.py");
    assert!(page["title"].as_str().is_some_and(|t| t.contains("緊急届出コンソール")), "{page}");
    assert_eq!(page["queue_has_escalation"], true, "{page}");
    assert!(page["after_claim"].as_str().is_some_and(|t| t.contains("担当しました")), "{page}");
    assert!(page["after_revoke"].as_str().is_some_and(|t| t.contains("失効しました")), "{page}");
    assert!(page["history"].as_str().is_some_and(|t| t.contains("失効")), "{page}");
    assert_eq!(ocsp_status(&s, &d.pem), "revoked keyCompromise");
    assert!(artifacts.join("console-resolved.png").exists());
    // Reporting a device that is already revoked is refused, and says so.
    let (status, out) = report(&s, "chromium.user", PASSWORD, d.device_id);
    assert_eq!(status, 409, "{out}");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("revoked")), "{out}");
}

/// A facility with a manager who has an e-mail address, and a staff member
/// of it with one device; returns the device's id.
fn staff_with_a_manager_to_mail(s: &Server, admin: &std::path::Path) -> i64 {
    let (_, created) = s.public_api("POST", "/api/v1/applications", Some(&json!({
        "name": "通知テスト施設", "kind": "internal", "address": "千歳市", "department": null,
        "manager": {"name": "通知 管理者", "login_id": "notify.mgr", "email": "manager@facility.example", "phone": "0123-00-0000"},
        "purpose_attested": true, "terms_version": "2026-04-01"})));
    let (_, approval) = s.api("POST", &format!("/api/v1/applications/{}/approve", created["id"]), Some(admin), None);
    let manager =
        s.enroll_generated(approval["enrollment_code"]["code"].as_str().expect("code"), Some(PASSWORD), "notify-mgr");
    let facility = approval["facility_id"].as_i64().expect("facility");
    let body = json!({"display_name": "通知 職員", "login_id": "notify.staff", "email": "staff@facility.example"});
    let (_, staff) = s.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(&manager), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", staff["id"]), Some(&manager), None);
    let staff_pem =
        s.enroll_csr(code["code"].as_str().expect("code"), Some(PASSWORD), "notify-staff", "/CN=notify.staff");
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&staff_pem), None);
    me["device_id"].as_i64().expect("device")
}

/// A report notifies the webhook (HMAC-signed, retried after a failure) and
/// e-mails the on-call address and the facility's manager; the SLA move to
/// 行政管理課 notifies again. Delivery problems never delay the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_notified_by_webhook_and_email_with_retries() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let sinks = Sinks::start(&s, "hook secret");

    let device_id = staff_with_a_manager_to_mail(&s, &admin);
    sinks.configure(&s);
    s.stop();
    // A business morning in Tokyo, 60 times as fast, SLA 1 minute: the report
    // goes to the manager, then to 行政管理課 (30 s here are half an hour
    // there, well within business hours).
    s.spawn_at_env(
        business_morning_fast(),
        &[],
        &[("CONNECT_PKI_WEBHOOK_SECRET", "hook secret"), ("CONNECT_PKI_ESCALATION_SLA_MINUTES", "1")],
    );
    let (status, out) = report(&s, "notify.staff", PASSWORD, device_id);
    assert_eq!((status, out["queue"].as_str()), (201, Some("manager")), "{out}");
    let id = out["escalation_id"].as_i64().expect("id");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let entries = loop {
        let entries = sinks.entries();
        let hooks_ok = entries.iter().filter(|e| e["kind"] == "webhook" && e["answered"] == 200).count();
        let escalated_mail = entries.iter().any(|e| {
            e["kind"] == "email" && e["subject"].as_str().is_some_and(|s| s.contains("行政管理課に回されました"))
        });
        if hooks_ok >= 2 && escalated_mail {
            break entries;
        }
        assert!(std::time::Instant::now() < deadline, "notifications incomplete: {entries:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let hooks: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "webhook").collect();
    assert!(hooks.iter().all(|h| h["signature_valid"] == true), "{hooks:?}");
    assert_eq!(hooks[0]["answered"], 500, "the first call failed on purpose");
    assert!(
        hooks.iter().any(|h| h["event"] == "opened" && h["answered"] == 200 && h["body"]["escalation_id"] == id),
        "retried: {hooks:?}"
    );
    assert!(hooks.iter().any(|h| h["event"] == "escalated"), "{hooks:?}");
    let mails: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "email").collect();
    for to in ["it-oncall@city.example", "manager@facility.example"] {
        assert!(
            mails.iter().any(|m| m["to"][0] == to && m["subject"].as_str().is_some_and(|s| s.contains("端末紛失"))),
            "no mail to {to}: {mails:?}"
        );
    }
    assert!(
        mails.iter().any(|m| m["body"]
            .as_str()
            .is_some_and(|b| b.contains("通知テスト施設") && b.contains("https://pki.city.example:8443/console/"))),
        "{mails:?}"
    );

    let (status, delivery) = s.api("GET", &format!("/api/v1/escalations/{id}/notifications"), Some(&admin), None);
    assert_eq!(status, 200, "{delivery}");
    let webhook_opened = delivery
        .as_array()
        .expect("log")
        .iter()
        .find(|n| n["channel"] == "webhook" && n["event"] == "opened")
        .expect("webhook entry")
        .clone();
    assert_eq!(
        (webhook_opened["status"].as_str(), webhook_opened["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{delivery}"
    );
    assert_eq!(webhook_opened["last_error"], "HTTP 500 Internal Server Error");
}
