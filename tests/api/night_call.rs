//! The night-time call (issue 25, item 5): 行政管理課 finds the person in
//! any facility on 電話での届出, records who called and a number to call
//! back, and holds or revokes the device on their behalf — refused by the
//! handshake and OCSP before the page answers, audited with the caller. A
//! manager resets a member of staff's emergency password; the old one stops.

use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, both_backends};
use serde_json::json;

use crate::console_manager::{csrf_of, page_with, post};
use crate::world::world;

/// What plain `openssl ocsp` hears from the responder about `cert_der`,
/// checking the answer's signature up to the root.
async fn openssl_ocsp(app: &connect_pki_e2e::TestApp, cert_der: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = |der: &[u8]| connect_pki_ca::issue::to_pem("CERTIFICATE", der);
    let (cert, issuing, chain) =
        (dir.path().join("cert.pem"), dir.path().join("issuing.pem"), dir.path().join("chain.pem"));
    std::fs::write(&cert, pem(cert_der)).expect("write");
    std::fs::write(&issuing, pem(&app.ca.issuing_der)).expect("write");
    std::fs::write(&chain, format!("{}{}", pem(&app.ca.issuing_der), pem(&app.ca.root_der))).expect("write");
    let url = format!("http://{}/ocsp", app.public);
    let args: Vec<String> = [
        "ocsp",
        "-issuer",
        &issuing.display().to_string(),
        "-cert",
        &cert.display().to_string(),
        "-url",
        &url,
        "-CAfile",
        &chain.display().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("openssl").args(&args).output())
        .await
        .expect("task")
        .expect("openssl runs");
    assert!(out.status.success(), "openssl ocsp: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn the_city_takes_a_call_for_a_device_in_any_facility(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let other = app.staff(&w.manager_b.id, w.facility_b, "yakan.staff").await;
    let page = page_with(app, &app.admin, "/console/phone?q=YAKAN", "地域包括支援センター北").await;
    assert!(page.contains(&format!("id=\"revoke-{}\"", other.device_id)), "{page}");
    let (status, found) = app.api("GET", "/api/v1/people?q=yakan", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.as_array().is_some_and(|p| p
            .iter()
            .any(|u| u["user"]["login_id"] == "yakan.staff" || u["login_id"] == "yakan.staff")),
        "{found}"
    );
    let csrf = csrf_of(&page);
    let path = format!("/console/phone/devices/{}", other.device_id);
    // Who called is required.
    let r = post(
        app,
        &app.admin,
        &path,
        &[("csrf", &csrf), ("caller", ""), ("callback", "090-0000-0000"), ("action", "revoke")],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(app.handshake_ok(&other.id).await, "refused, yet stopped");
    let fields =
        [("csrf", csrf.as_str()), ("caller", "夜間 太郎（本人）"), ("callback", "090-1234-5678"), ("action", "revoke")];
    let r = post(app, &app.admin, &path, &fields).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("失効しました") && r.text().contains("090-1234-5678"), "{}", r.text());
    assert!(!app.handshake_ok(&other.id).await, "the device still gets in");
    assert_eq!(app.ocsp_status(&other.id).await, "revoked keyCompromise");
    let said = openssl_ocsp(app, &other.id.cert_der).await;
    assert!(
        said.contains(": revoked") && said.contains("Reason: keyCompromise") && said.contains("Response verify OK"),
        "openssl ocsp: {said}"
    );
    let (_, log) = app.api("GET", "/api/v1/audit?action=escalation.open", Some(&app.admin), None).await;
    let row = log.as_array().expect("log").iter().find(|r| r["detail"]["device_id"] == other.device_id).cloned();
    let row = row.expect("the report's audit row");
    assert_eq!(
        (row["detail"]["caller"].as_str(), row["detail"]["callback"].as_str()),
        (Some("夜間 太郎（本人）"), Some("090-1234-5678"))
    );
    assert_eq!(row["detail"]["channel"], "phone");
    let audit = page_with(app, &app.admin, "/console/audit", "届出者（電話）：夜間 太郎（本人）").await;
    assert!(audit.contains("折り返しの電話番号：090-1234-5678"), "{audit}");

    // Holding instead: a report in the queue, the device on hold.
    let held = app.staff(&w.manager_b.id, w.facility_b, "yakan.hold").await;
    let fields = [("csrf", csrf.as_str()), ("caller", "施設の同僚"), ("callback", "0123-00-0000"), ("action", "hold")];
    let r = post(app, &app.admin, &format!("/console/phone/devices/{}", held.device_id), &fields).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.ocsp_status(&held.id).await, "revoked certificateHold");
    let (_, list) = app.api("GET", "/api/v1/escalations", Some(&app.admin), None).await;
    let e =
        list.as_array().expect("list").iter().find(|e| e["device_id"] == held.device_id).cloned().expect("the report");
    assert!(e["note"].as_str().is_some_and(|n| n.contains("施設の同僚") && n.contains("0123-00-0000")), "{e}");
    // A manager is not offered the page, nor may search everyone.
    let r = app
        .try_mtls(Some(&w.manager_a.id), connect_pki_e2e::client::Req::new("GET", "/console/phone?q=yakan"))
        .await
        .expect("GET");
    assert_eq!(r.status, 403, "{}", r.text());
}
both_backends!(the_city_takes_a_call_for_a_device_in_any_facility);

async fn a_manager_resets_an_emergency_password(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let s = app.staff(&w.manager_a.id, w.facility_a, "wasureta").await;
    let path = format!("/console/staff/{}/password", s.user_id);
    let confirm = page_with(app, &w.manager_a.id, &path, "電子@連絡帳のパスワードではありません").await;
    let r = post(app, &w.manager_a.id, &path, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let at = text.find("新しいパスワード</dt><dd>").expect("the password shown") + "新しいパスワード</dt><dd>".len();
    let password = text[at..].split('<').next().expect("password").to_string();
    assert!(password.len() >= 10, "{password}");
    let report = |pw: &str| json!({"login_id": "wasureta", "password": pw, "device_id": s.device_id});
    let (status, _) = app.public_api("POST", "/api/v1/emergency", Some(&report(PASSWORD))).await;
    assert_eq!(status, 401, "the old password still works");
    let (status, out) = app.public_api("POST", "/api/v1/emergency", Some(&report(&password))).await;
    assert_eq!(status, 201, "{out}");
    // Another facility's manager cannot.
    let (status, _) =
        app.api("POST", &format!("/api/v1/users/{}/emergency-password", s.user_id), Some(&w.manager_b.id), None).await;
    assert_eq!(status, 403);
}
both_backends!(a_manager_resets_an_emergency_password);
