//! A device-management system as a client (issue 26, item 3), on both
//! backends: it gets one-time challenges for its own facility's people only
//! and acts on nothing else; a challenge is single use, bound to its person
//! and short-lived; a signed webhook retires, wipes or loses a device before
//! it answers, audited in the system's name, and a replayed, unsigned,
//! stale or forged one changes nothing — also when the same webhook races
//! itself.

use aws_lc_rs::hmac;
use connect_pki_e2e::builders::{b64, csr, est_certificate};
use connect_pki_e2e::client::{Identity, Reply, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

/// A device-management account of `facility`, enrolled: its identity, id
/// and webhook secret (as 行政管理課 reads it).
async fn mdm(app: &TestApp, facility: i64, login: &str) -> (Identity, i64, String) {
    let id = app.register(&app.admin, facility, login, "device_management").await;
    let code = app.code_for(&app.admin, id).await;
    let who = app.enroll_csr(&code, Some(PASSWORD), login, login).await;
    let (status, secret) = app.api("GET", &format!("/api/v1/users/{id}/webhook-secret"), Some(&app.admin), None).await;
    assert_eq!(status, 200, "{secret}");
    (who, id, secret["secret"].as_str().expect("secret").to_string())
}

async fn challenge(app: &TestApp, mdm: &Identity, user: i64) -> (u16, Value) {
    app.api("POST", "/api/v1/mdm/challenges", Some(mdm), Some(&json!({"user_id": user}))).await
}

/// EST `simpleenroll` with `code` for `login`: the new identity, or the refusal.
async fn est_enroll(app: &TestApp, code: &str, login: &str) -> Result<Identity, Reply> {
    let (key_der, _, der) = csr(login);
    let mut req = Req::new("POST", "/.well-known/est/simpleenroll").body("application/pkcs10", b64(&der));
    req.headers.push(("authorization".into(), format!("Basic {}", b64(format!("ipad:{code}").as_bytes()))));
    let r = app.try_mtls(None, req).await.expect("EST");
    if r.status != 200 {
        return Err(r);
    }
    Ok(Identity { cert_der: est_certificate(&r.text()), key_der })
}

/// A webhook request as the system `sender` signs it with `secret` at `at`.
fn webhook(sender: i64, secret: &str, at: i64, body: &Value) -> Req {
    let body = body.to_string();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hex::encode(hmac::sign(&key, format!("{at}.{body}").as_bytes()));
    let mut req = Req::new("POST", "/api/v1/mdm/events").body("application/json", body);
    req.headers.push(("x-connect-mdm".into(), sender.to_string()));
    req.headers.push(("x-connect-timestamp".into(), at.to_string()));
    req.headers.push(("x-connect-signature".into(), format!("sha256={signature}")));
    req
}

async fn send(app: &TestApp, req: Req) -> Reply {
    app.try_mtls(None, req).await.expect("webhook")
}

fn now(app: &TestApp) -> i64 {
    connect_pki_domain::Clock::now(&*app.clock).unix_timestamp()
}

async fn a_device_management_system_acts_for_its_facility_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.facility(&app.admin, "タブレットの施設", "tablet.kanri").await;
    let manager = app.manager(&a, "tablet-kanri-pc").await;
    let b = app.facility(&app.admin, "ほかの施設", "hoka.kanri").await;
    let other_manager = app.manager(&b, "hoka-kanri-pc").await;
    let (system, _, _) = mdm(&app, a.id, "jamf.tablet").await;
    // A manager may not make one.
    let body =
        json!({"display_name": "x", "login_id": "jamf.x", "email": "x@example.test", "role": "device_management"});
    let (status, out) =
        app.api("POST", &format!("/api/v1/facilities/{}/users", a.id), Some(&manager.id), Some(&body)).await;
    assert_eq!(status, 403, "{out}");

    let staff = app.register(&manager.id, a.id, "tablet.hanako", "staff").await;
    let elsewhere = app.register(&other_manager.id, b.id, "hoka.taro", "staff").await;
    let (status, out) = challenge(&app, &system, elsewhere).await;
    assert_eq!(status, 403, "another facility's person: {out}");
    let (status, out) = challenge(&app, &system, manager.user_id).await;
    assert_eq!(status, 201, "its facility's manager is one of its people: {out}");
    // Nothing else of anyone.
    for (method, path) in [
        ("GET", format!("/api/v1/facilities/{}/users", a.id)),
        ("POST", format!("/api/v1/users/{staff}/enrollment-codes")),
        ("POST", format!("/api/v1/certificates/{}/hold", manager.serial)),
        ("GET", "/api/v1/audit".to_string()),
    ] {
        let (status, out) = app.api(method, &path, Some(&system), None).await;
        assert_eq!(status, 403, "{method} {path}: {out}");
    }

    // A challenge: bound to its person, single use, short-lived.
    let (status, out) = challenge(&app, &system, staff).await;
    assert_eq!(status, 201, "{out}");
    let code = out["challenge"].as_str().expect("challenge").to_string();
    let refused = est_enroll(&app, &code, "tablet.kanri").await.expect_err("someone else's CSR");
    assert!(refused.status >= 400, "{}", refused.text());
    let device = est_enroll(&app, &code, "tablet.hanako").await.unwrap_or_else(|r| panic!("{}", r.text()));
    assert!(app.handshake_ok(&device).await);
    let again = est_enroll(&app, &code, "tablet.hanako").await.expect_err("a used challenge");
    assert_eq!(again.status, 409, "{}", again.text());
    let (_, out) = challenge(&app, &system, staff).await;
    let late = out["challenge"].as_str().expect("challenge").to_string();
    app.clock.advance(time::Duration::minutes(61));
    let expired = est_enroll(&app, &late, "tablet.hanako").await.expect_err("an expired challenge");
    assert_eq!(expired.json()["error"]["code"], "code_expired", "{}", expired.text());
}
both_backends!(a_device_management_system_acts_for_its_facility_only);

async fn a_signed_webhook_revokes_before_it_answers_and_only_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.facility(&app.admin, "端末管理の施設", "mdm.kanri").await;
    let manager = app.manager(&a, "mdm-kanri-pc").await;
    let (system, sender, secret) = mdm(&app, a.id, "intune.a").await;
    let enroll = async |login: &str| {
        let user = app.register(&manager.id, a.id, login, "staff").await;
        let (_, out) = challenge(&app, &system, user).await;
        est_enroll(&app, out["challenge"].as_str().expect("challenge"), login).await.expect("enrolled")
    };
    let wiped = enroll("wipe.me").await;

    // Refused, changing nothing: unsigned, forged, stale, another's secret.
    let body = json!({"event": "wiped", "serial": wiped.serial()});
    let mut unsigned = Req::new("POST", "/api/v1/mdm/events").body("application/json", body.to_string());
    unsigned.headers.push(("x-connect-mdm".into(), sender.to_string()));
    let forged = webhook(sender, "not the secret", now(&app), &body);
    let stale = webhook(sender, &secret, now(&app) - 600, &body);
    let wrong_sender = webhook(manager.user_id, &secret, now(&app), &body);
    for (what, req) in [("unsigned", unsigned), ("forged", forged), ("stale", stale), ("not a system", wrong_sender)] {
        let r = send(&app, req).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (401, Some("bad_signature")),
            "{what}: {}",
            r.text()
        );
    }
    assert_eq!(app.ocsp_status(&wiped).await, "good");

    let req = webhook(sender, &secret, now(&app), &body);
    let replay = Req { headers: req.headers.clone(), body: req.body.clone(), ..Req::new("POST", "/api/v1/mdm/events") };
    let r = send(&app, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Before the answer: revoked for OCSP and at our handshake.
    assert_eq!(app.ocsp_status(&wiped).await, "revoked cessationOfOperation");
    assert!(!app.handshake_ok(&wiped).await);
    let r = send(&app, replay).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("replayed")), "{}", r.text());
    let (_, log) = app.api("GET", "/api/v1/audit?limit=50", Some(&app.admin), None).await;
    let entry = log.as_array().expect("audit").iter().find(|e| e["action"] == "device.retire").cloned();
    assert_eq!(entry.expect("audited")["actor"], format!("user:{sender}"));

    // Lost: keyCompromise. The same webhook racing itself is carried out once.
    for round in 0..8 {
        let lost = enroll(&format!("lost.{round}")).await;
        let body = json!({"event": "lost", "serial": lost.serial()});
        let req = webhook(sender, &secret, now(&app), &body);
        let copy =
            Req { headers: req.headers.clone(), body: req.body.clone(), ..Req::new("POST", "/api/v1/mdm/events") };
        let (one, two) = tokio::join!(send(&app, req), send(&app, copy));
        let mut statuses = [one.status, two.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {} / {}", one.text(), two.text());
        assert_eq!(app.ocsp_status(&lost).await, "revoked keyCompromise");
    }
    // Another facility's device is not this system's.
    let b = app.facility(&app.admin, "別の施設", "betsu.kanri").await;
    let b_manager = app.manager(&b, "betsu-kanri-pc").await;
    let body = json!({"event": "wiped", "serial": b_manager.serial});
    let r = send(&app, webhook(sender, &secret, now(&app), &body)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(app.ocsp_status(&b_manager.id).await, "good");
}
both_backends!(a_signed_webhook_revokes_before_it_answers_and_only_once);
