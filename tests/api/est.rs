//! EST (RFC 7030, issue 26 item 1) keeps every refusal of the JSON API,
//! on both backends: a request that is not base64 or not PKCS#10, a CSR for
//! someone else, and a suspended facility leave the one-time code usable;
//! a held or retired device cannot re-enroll; the enrollment is audited like
//! any other; and two devices racing with one code get one certificate.

use connect_pki_e2e::builders::{b64, csr, est_certificate};
use connect_pki_e2e::client::{Identity, Reply, Req};
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::json;

/// `simpleenroll` with `code` as the HTTP Basic password and `body` as sent.
async fn enroll(app: &TestApp, code: &str, body: &str) -> Reply {
    let mut req = Req::new("POST", "/.well-known/est/simpleenroll").body("application/pkcs10", body);
    req.headers.push(("authorization".into(), format!("Basic {}", b64(format!("est-tablet:{code}").as_bytes()))));
    app.try_mtls(None, req).await.expect("EST enroll")
}

/// `simplereenroll` as `who` with a fresh key for `cn`: what the service
/// said (its answer, or the handshake's refusal) and the new identity when
/// one was issued.
async fn reenroll(app: &TestApp, who: &Identity, cn: &str) -> (String, Option<Identity>) {
    let (key_der, _, der) = csr(cn);
    let req = Req::new("POST", "/.well-known/est/simplereenroll").body("application/pkcs10", b64(&der));
    match app.try_mtls(Some(who), req).await {
        Ok(r) if r.status == 200 => (r.text(), Some(Identity { cert_der: est_certificate(&r.text()), key_der })),
        Ok(r) => (format!("{} {}", r.status, r.text()), None),
        Err(e) => (format!("refused in the handshake: {e}"), None),
    }
}

fn code_of(r: &Reply) -> String {
    r.json()["error"]["code"].as_str().unwrap_or_default().to_string()
}

async fn est_refuses_what_the_json_api_refuses(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register(&app.admin, 1, "est.taro", "staff").await;
    let code = app.code_for(&app.admin, user).await;
    let (key, _, der) = csr("est.taro");
    // Bad input, each refused with its reason; the code stays usable.
    let r = enroll(&app, &code, "not base64 at all!").await;
    assert_eq!((r.status, code_of(&r)), (400, "bad_request".into()), "{}", r.text());
    let r = enroll(&app, &code, &b64(b"not a request")).await;
    assert_eq!((r.status, code_of(&r)), (400, "bad_csr".into()), "{}", r.text());
    let (_, _, someone_else) = csr("admin");
    let r = enroll(&app, &code, &b64(&someone_else)).await;
    assert!(r.status >= 400 && r.status < 500, "{}", r.text());
    let r = enroll(&app, &code, &b64(&der)).await;
    assert_eq!(r.status, 200, "the code was spent by a refused request: {}", r.text());
    let me = app.whoami(&Identity { cert_der: est_certificate(&r.text()), key_der: key }).await;
    assert_eq!(me["login_id"], "est.taro", "{me}");

    // A suspended facility cannot enroll; resumed, the same code works.
    let f = app.facility(&app.admin, "EST 相談室", "est.kanri").await;
    let manager = app.manager(&f, "est-kanri-pc").await;
    let staff = app.register(&manager.id, f.id, "est.hanako", "staff").await;
    let staff_code = app.code_for(&manager.id, staff).await;
    let path = format!("/api/v1/facilities/{}/suspend", f.id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), Some(&json!({"reason": "確認中"}))).await.0, 200);
    let (_, _, hanako) = csr("est.hanako");
    let r = enroll(&app, &staff_code, &b64(&hanako)).await;
    assert_eq!((r.status, code_of(&r)), (403, "facility_not_active".into()), "{}", r.text());
    let path = format!("/api/v1/facilities/{}/resume", f.id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let r = enroll(&app, &staff_code, &b64(&hanako)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Audited like any enrollment.
    let (_, log) = app.api("GET", "/api/v1/audit?limit=100", Some(&app.admin), None).await;
    let redeemed = log.as_array().expect("audit").iter().filter(|e| e["action"] == "enrollment.redeem").count();
    assert!(redeemed >= 2, "{log}");

    // A held certificate cannot re-enroll; released, it can, and is superseded.
    let d = app.device("est.jiro").await;
    let path = format!("/api/v1/certificates/{}/hold", d.serial);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let (said, issued) = reenroll(&app, &d.id, "est.jiro").await;
    assert!(issued.is_none(), "a held certificate re-enrolled: {said}");
    let path = format!("/api/v1/certificates/{}/release", d.serial);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let (said, issued) = reenroll(&app, &d.id, "est.jiro").await;
    let new = issued.unwrap_or_else(|| panic!("re-enrollment refused: {said}"));
    assert_eq!(app.ocsp_status(&d.id).await, "revoked superseded");
    assert!(app.handshake_ok(&new).await);
    // Retired: nothing renews.
    let path = format!("/api/v1/users/{}/retire", d.user_id);
    assert_eq!(app.api("POST", &path, Some(&app.admin), None).await.0, 200);
    let (said, issued) = reenroll(&app, &new, "est.jiro").await;
    assert!(issued.is_none(), "a retired user re-enrolled: {said}");
}
both_backends!(est_refuses_what_the_json_api_refuses);

/// Two devices send the same one-time code at once, many times over: one
/// certificate each time, never two.
async fn one_code_enrolls_one_device_however_the_calls_race(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..12 {
        let login = format!("est.race{round}");
        let user = app.register(&app.admin, 1, &login, "staff").await;
        let code = app.code_for(&app.admin, user).await;
        let (a, b) = (b64(&csr(&login).2), b64(&csr(&login).2));
        let (ra, rb) = tokio::join!(enroll(&app, &code, &a), enroll(&app, &code, &b));
        let ok = [ra.status, rb.status].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "round {round}: {} {} / {} {}", ra.status, ra.text(), rb.status, rb.text());
    }
}
both_backends!(one_code_enrolls_one_device_however_the_calls_race);
