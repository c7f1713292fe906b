//! Renewal from the browser (issue 25, item 1): signed in with the
//! certificate it replaces, a person renews on わたしの端末 inside the
//! renewal window and gets a PKCS#12 (and an Apple profile) with a password
//! shown once. The replaced certificate works until the new one is first
//! used, or until the grace period ends; then it is refused everywhere. The
//! files are read by tools no one here wrote: `openssl pkcs12` and Python's
//! `plistlib`.

use std::process::Command;

use base64::Engine;
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use time::OffsetDateTime;

use crate::console_manager::{csrf_of, get, page_with, post};

const DAY: time::Duration = time::Duration::days(1);
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

async fn not_after(app: &TestApp, who: &Identity) -> OffsetDateTime {
    let v = app.whoami(who).await;
    OffsetDateTime::parse(v["not_after"].as_str().expect("not_after"), &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// What a renewal page handed over.
struct Handed {
    status: u16,
    page: String,
    pkcs12: Vec<u8>,
    profile: Vec<u8>,
    password: String,
}

fn between<'a>(page: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = page.find(start)? + start.len();
    page[from..].split(end).next()
}

fn data_url(page: &str, id: &str) -> Vec<u8> {
    let anchor = between(page, &format!("id=\"{id}\""), ">").unwrap_or_else(|| panic!("no {id} in {page}"));
    let b64 = between(anchor, ";base64,", "\"").expect("a data URL");
    base64::engine::general_purpose::STANDARD.decode(b64).expect("base64")
}

/// Presses 証明書を更新する on わたしの端末 as `who`, from an iPhone.
async fn renew(app: &TestApp, who: &Identity) -> Handed {
    let csrf = csrf_of(&page_with(app, who, "/console/me", "証明書の更新").await);
    let mut req = Req::new("POST", "/console/me/renew").form(&[("csrf", &csrf)]);
    req.headers.push(("user-agent".into(), IPHONE.into()));
    let r = app.try_mtls(Some(who), req).await.expect("POST /console/me/renew");
    let page = r.text();
    if r.status != 201 {
        return Handed { status: r.status, page, pkcs12: Vec::new(), profile: Vec::new(), password: String::new() };
    }
    let password = between(&page, "id=\"p12-password\">", "<").expect("the password").to_string();
    Handed {
        status: r.status,
        pkcs12: data_url(&page, "download"),
        profile: data_url(&page, "download-profile"),
        password,
        page,
    }
}

/// The key and certificate inside `pkcs12`, as `openssl pkcs12` reads them.
fn identity_from(pkcs12: &[u8], password: &str) -> Identity {
    let dir = tempfile::tempdir().expect("tempdir");
    let p12 = dir.path().join("renewed.p12");
    std::fs::write(&p12, pkcs12).expect("write");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let pass = format!("pass:{password}");
    let p12 = p12.to_str().expect("path");
    let cert = openssl(&["pkcs12", "-in", p12, "-passin", &pass, "-clcerts", "-nokeys"]);
    let key = openssl(&["pkcs12", "-in", p12, "-passin", &pass, "-nocerts", "-nodes"]);
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, key).expect("write");
    let key_der = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", key_path.to_str().expect("path"), "-outform", "DER"]);
    Identity { cert_der: connect_pki_e2e::builders::pem_der(&String::from_utf8_lossy(&cert)), key_der }
}

/// The payload types of a `.mobileconfig`, as Python's plistlib reads it,
/// and whether its PKCS#12 payload is byte for byte the file handed over.
fn profile_payloads(profile: &[u8], pkcs12: &[u8]) -> (Vec<String>, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, p12) = (dir.path().join("device.mobileconfig"), dir.path().join("device.p12"));
    std::fs::write(&path, profile).expect("write");
    std::fs::write(&p12, pkcs12).expect("write");
    let script = "import plistlib,sys\n\
        p=plistlib.load(open(sys.argv[1],'rb'))\n\
        assert p['PayloadType']=='Configuration', p['PayloadType']\n\
        print(' '.join(x['PayloadType'] for x in p['PayloadContent']))\n\
        print(any(x['PayloadContent']==open(sys.argv[2],'rb').read() for x in p['PayloadContent']))";
    let out = Command::new("python3").args(["-c", script]).arg(&path).arg(&p12).output().expect("python3 runs");
    assert!(out.status.success(), "plistlib: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let kinds = lines.next().unwrap_or_default().split(' ').map(str::to_string).collect();
    (kinds, lines.next() == Some("True"))
}

/// Waits until the handshake of `who` is refused (the handover worker runs
/// every second), flushing what the listener counted first.
async fn refused_soon(app: &TestApp, who: &Identity) -> bool {
    for _ in 0..50 {
        connect_pki_ra::sightings::flush(app.state()).await.expect("sightings written");
        if !app.handshake_ok(who).await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// An app whose renewal window covers a certificate issued now: the TLS
/// stack checks validity against the real clock, so the new certificate
/// must be valid now, not in a stepped future.
async fn wide_window(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::with(|c| c.ra.expiry_notice_days = 400)).await
}

/// Before the window (30 days by default) the page says from when, and a
/// hand-made POST is refused, with nothing issued.
async fn before_the_window_the_page_says_from_when(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("koushin.mada").await;
    let end = not_after(&app, &d.id).await;
    let early = get(&app, &d.id, "/console/me").await.text();
    assert!(early.contains("id=\"renew-from\"") && !early.contains("id=\"renew\""), "{early}");
    // The token of this caller, as the page in the window carries it.
    app.clock.set(end - 20 * DAY);
    let csrf = csrf_of(&page_with(&app, &d.id, "/console/me", "id=\"renew\"").await);
    app.clock.set(end - 40 * DAY);
    let refused = post(&app, &d.id, "/console/me/renew", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(refused.text().contains("まだ更新できません"), "{}", refused.text());
    let (_, device) = app.api("GET", &format!("/api/v1/devices/{}", d.device_id), Some(&app.admin), None).await;
    assert_eq!(device["certificates"].as_array().map(Vec::len), Some(1), "{device}");
}
both_backends!(before_the_window_the_page_says_from_when);

/// Month 11: inside the window the renewal hands over a PKCS#12 and an Apple profile that real tools read;
/// the old certificate keeps working until the new one is used, and then is
/// refused by the handshake and reported superseded by OCSP.
async fn a_device_renews_from_its_browser_and_the_old_certificate_goes_once_the_new_one_is_used(backend: Backend) {
    let app = wide_window(backend).await;
    let d = app.device("koushin.browser").await;
    let end = not_after(&app, &d.id).await;
    let handed = renew(&app, &d.id).await;
    assert_eq!(handed.status, 201, "{}", handed.page);
    assert!(handed.page.contains("iPhone・iPad") && handed.page.contains("証明書信頼設定"), "iPhone steps shown first");
    let (kinds, same) = profile_payloads(&handed.profile, &handed.pkcs12);
    assert_eq!(kinds, ["com.apple.security.pkcs12", "com.apple.security.root"]);
    assert!(same, "the profile carries the PKCS#12 handed over");
    let renewed = identity_from(&handed.pkcs12, &handed.password);
    assert_ne!(renewed.serial(), d.serial);

    // Not installed yet: the old certificate still works.
    connect_pki_ra::sightings::flush(app.state()).await.expect("sightings written");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(app.handshake_ok(&d.id).await, "refused before the new certificate was used");
    assert!(page_with(&app, &d.id, "/console/me", "id=\"renew-waiting\"").await.contains("もう一度更新する"));

    // First use of the new one: the old one is superseded.
    assert!(not_after(&app, &renewed).await >= end, "the new certificate ends no earlier");
    assert!(refused_soon(&app, &d.id).await, "the old certificate still works after the new one was used");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked superseded");
    assert_eq!(app.ocsp_status(&renewed).await, "good");
    let (status, log) = app.api("GET", "/api/v1/audit?action=certificate&limit=100", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{log}");
    let handover = log
        .as_array()
        .expect("log")
        .iter()
        .find(|r| r["target"] == format!("certificate:{}", d.serial) && r["actor"] == "system:handover");
    assert!(handover.is_some_and(|r| r["detail"]["because"] == "the new certificate was used"), "{log}");
}
both_backends!(a_device_renews_from_its_browser_and_the_old_certificate_goes_once_the_new_one_is_used);

/// A new certificate never used: renewing again replaces it (the file was
/// lost), and once the grace period ends the old certificate goes anyway.
async fn an_unused_renewal_ends_the_old_certificate_after_the_grace_period(backend: Backend) {
    let app = wide_window(backend).await;
    let d = app.device("koushin.grace").await;
    let first = renew(&app, &d.id).await;
    assert_eq!(first.status, 201, "{}", first.page);
    let first = identity_from(&first.pkcs12, &first.password);
    let second = renew(&app, &d.id).await;
    assert_eq!(second.status, 201, "{}", second.page);
    let second = identity_from(&second.pkcs12, &second.password);
    assert!(!app.handshake_ok(&first).await, "the file renewed over still works");
    assert_eq!(app.ocsp_status(&first).await, "revoked superseded");
    assert!(app.handshake_ok(&d.id).await, "the old certificate went before the grace ended");

    app.clock.advance(7 * DAY - time::Duration::seconds(5));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(app.handshake_ok(&d.id).await, "the old certificate went before the grace ended");
    app.clock.advance(time::Duration::seconds(10));
    assert!(refused_soon(&app, &d.id).await, "the old certificate outlived the grace period");
    assert_eq!(app.ocsp_status(&second).await, "good");
    assert!(app.handshake_ok(&second).await);
}
both_backends!(an_unused_renewal_ends_the_old_certificate_after_the_grace_period);

/// An expired certificate (the TLS clock still lets it in here) is not
/// renewed: the service refuses it before any page, says a new code is
/// needed, and issues nothing.
async fn an_expired_certificate_is_not_renewed(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("koushin.kigire").await;
    let end = not_after(&app, &d.id).await;
    app.clock.set(end - 20 * DAY);
    let csrf = csrf_of(&page_with(&app, &d.id, "/console/me", "id=\"renew\"").await);
    app.clock.set(end + DAY);
    let page = get(&app, &d.id, "/console/me").await;
    assert_eq!(page.status, 401, "{}", page.text());
    assert!(page.text().contains("有効期限が切れています"), "{}", page.text());
    let refused = post(&app, &d.id, "/console/me/renew", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.text().contains("新しい登録コード"), "{}", refused.text());
    app.clock.set(end - 20 * DAY);
    let (_, device) = app.api("GET", &format!("/api/v1/devices/{}", d.device_id), Some(&app.admin), None).await;
    assert_eq!(device["certificates"].as_array().map(Vec::len), Some(1), "{device}");
}
both_backends!(an_expired_certificate_is_not_renewed);

/// The API's side of the same action (`POST /api/v1/certificates/renew-pkcs12`):
/// a PKCS#12 openssl opens with the password given once, the presented
/// certificate kept until the new one is used, and its deadline the grace
/// period from now.
async fn the_api_renews_with_a_new_key_as_the_page_does(backend: Backend) {
    let app = wide_window(backend).await;
    let d = app.device("koushin.api").await;
    let (status, out) = app.api("POST", "/api/v1/certificates/renew-pkcs12", Some(&d.id), None).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["replaces_serial"].as_str(), Some(d.serial.as_str()), "{out}");
    let by = OffsetDateTime::parse(
        out["replaced_by"].as_str().expect("replaced_by"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let grace = by - connect_pki_domain::Clock::now(app.clock.as_ref());
    assert!(grace > 7 * DAY - time::Duration::minutes(1) && grace <= 7 * DAY, "{grace}");
    let p12 =
        base64::engine::general_purpose::STANDARD.decode(out["pkcs12"].as_str().expect("pkcs12")).expect("base64");
    let renewed = identity_from(&p12, out["password"].as_str().expect("password"));
    assert_eq!(renewed.serial(), out["serial"].as_str().expect("serial"));
    assert!(app.handshake_ok(&d.id).await, "the presented certificate went before the new one was used");
    assert!(app.handshake_ok(&renewed).await);
    assert!(refused_soon(&app, &d.id).await, "the presented certificate outlived the new one's first use");
}
both_backends!(the_api_renews_with_a_new_key_as_the_page_does);
