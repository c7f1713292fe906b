//! The facility manager's pages in Debian's Chromium (issue 11, item 1),
//! signed in with the manager's client certificate: register a member of
//! staff, issue a code and print the slip (its QR code read back from the
//! printed page), enroll a device on the enroll page with that code, report
//! the device lost through the confirmation page — then a second connection
//! with the device's certificate is refused and `openssl ocsp` says revoked.
//! axe-core finds no serious or critical violation on any page; the
//! screenshots are kept in tests/artifacts/.

use std::path::{Path, PathBuf};

use base64::Engine;
use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, Server, both_backends, text};
use serde_json::Value;

use crate::revocation::{handshake_ok, ocsp_status};

/// Redeems `code` for a server-generated key: the PKCS#12 file, its
/// password, and a PEM of certificate and key for curl and openssl.
fn enroll_p12(s: &Server, code: &str, name: &str) -> (PathBuf, String, PathBuf) {
    let body = serde_json::json!({"code": code, "generate_key": true, "device_label": name, "password": PASSWORD});
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&body));
    assert_eq!(status, 201, "enroll {name}: {out}");
    let p12 = s.scratch(&format!("{name}.p12"));
    let der = base64::engine::general_purpose::STANDARD.decode(out["pkcs12"].as_str().expect("pkcs12")).expect("b64");
    std::fs::write(&p12, der).expect("write p12");
    let password = out["pkcs12_password"].as_str().expect("password").to_string();
    let pem = p12_to_pem(s, &p12, &password);
    (p12, password, pem)
}

/// Opens a PKCS#12 with plain `openssl pkcs12` (no `-legacy`).
fn p12_to_pem(s: &Server, p12: &Path, password: &str) -> PathBuf {
    let pem = p12.with_extension("pem");
    let (p12_s, pem_s, pass) = (p12.display().to_string(), pem.display().to_string(), format!("pass:{password}"));
    let o = s.run("openssl", &["pkcs12", "-in", &p12_s, "-passin", &pass, "-nodes", "-out", &pem_s]);
    assert!(o.status.success(), "openssl pkcs12: {}", text(&o));
    pem
}

async fn manager_works_the_pages_in_chromium(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let (_, created) =
        s.public_api("POST", "/api/v1/applications", Some(&application("ひまわり相談室", "himawari.kanri")));
    let path = format!("/api/v1/applications/{}/approve", created["id"]);
    let (status, approval) = s.api("POST", &path, Some(&admin), None);
    assert_eq!(status, 200, "{approval}");
    let code = approval["enrollment_code"]["code"].as_str().expect("code");
    let (p12, password, manager_pem) = enroll_p12(&s, code, "himawari-pc");
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&manager_pem), None);
    let serial = me["serial"].as_str().expect("serial").to_string();

    let artifacts = connect_pki_e2e::workspace().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let device_p12 = s.scratch("tablet.p12");
    let script = connect_pki_e2e::workspace().join("tests/py/manager_pages.py").display().to_string();
    let base = format!("https://{}", s.api);
    let args = [
        script.as_str(),
        &base,
        &p12.display().to_string(),
        &password,
        &artifacts.display().to_string(),
        "himawari.kanri",
        "chitose.hanako",
        &serial,
        &device_p12.display().to_string(),
    ];
    let o = s.run("python3", &args);
    assert!(o.status.success(), "Chromium run failed: {}", text(&o));
    let page: Value = serde_json::from_slice(&o.stdout).expect("JSON from manager_pages.py");

    let violations = page["axe_violations"].as_array().expect("violations");
    assert!(
        violations.is_empty(),
        "axe-core: serious or critical violations:\n{}",
        serde_json::to_string_pretty(violations).unwrap_or_default()
    );
    assert!(page["pages_checked"].as_array().is_some_and(|p| p.len() >= 14), "{page}");
    assert_eq!(page["first_focus"], "本文へ移動", "{page}");
    assert_ne!(page["focus_outline"], "none", "focus is visible: {page}");

    // Registration: the taken login ID is named next to its field; then it works.
    assert!(page["register_error"].as_str().is_some_and(|e| e.contains("すでに使われています")), "{page}");
    assert_eq!(page["register_error_described"], "login_id-error");
    assert_eq!(page["register_kept_name"], "千歳 花子");
    assert!(page["registered"].as_str().is_some_and(|t| t.contains("職員を登録しました")), "{page}");

    // The printed slip: the slip alone, its QR code the enroll page's address and nothing else.
    let enroll_url = format!("https://{}/enroll", s.api);
    assert_eq!(page["enroll_url"], enroll_url.as_str());
    assert_eq!(page["qr"], serde_json::json!([enroll_url]), "the QR code read back from the printed page");
    assert_eq!(
        (page["printed_shows_menu"].as_bool(), page["printed_shows_buttons"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(page["printed_shows_slip"], true);
    let slip = page["slip_text"].as_str().expect("slip");
    let code = page["code"].as_str().expect("code");
    assert!(slip.contains(code) && slip.contains("有効期限") && slip.contains("千歳 花子"), "{slip}");
    assert!(artifacts.join("manager-slip-print.png").exists());

    // Lost, through the confirmation page naming the person, the device and the effect.
    assert_eq!(page["lost_links"], 1, "{page}");
    let facts = page["confirm_facts"].as_str().expect("facts");
    assert!(facts.contains("千歳 花子（chitose.hanako）") && facts.contains("相談室タブレット"), "{facts}");
    assert!(
        page["confirm_effect"]
            .as_str()
            .is_some_and(|e| e.contains("この端末は直ちに電子@連絡帳に接続できなくなります"))
    );
    assert!(page["result"].as_str().is_some_and(|r| r.contains("紛失として停止しました")), "{page}");
    assert!(page["result_facts"].as_str().is_some_and(|r| r.contains("日時")), "{page}");

    // A second connection with the device's certificate is refused; OCSP says revoked.
    let device_pem = p12_to_pem(&s, &device_p12, page["device_p12_password"].as_str().expect("password"));
    assert!(!handshake_ok(&s, &device_pem), "the lost device still gets in");
    assert_eq!(ocsp_status(&s, &device_pem), "revoked keyCompromise");
    // The manager's own certificate still works, and the trail shows what was done.
    assert!(handshake_ok(&s, &manager_pem));
    let trail = page["trail"].as_str().expect("trail");
    for done in ["職員の登録", "登録コードの発行", "端末の紛失"] {
        assert!(trail.contains(done), "{done} in the trail: {trail}");
    }
}
both_backends!(manager_works_the_pages_in_chromium);
