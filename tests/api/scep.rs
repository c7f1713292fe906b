//! SCEP (RFC 8894, issue 26 item 2) in-process, on both backends, with the
//! requests made by `ca::scep::client` (the end-to-end tests use the real
//! clients): a wrong code is a FAILURE whose reason is in
//! `X-Connect-Refusal`, the right one issues a certificate that opens only
//! with the requester's key and signs in; GET with the message in the query
//! (its `+` not percent-encoded, as some clients send it) works like POST;
//! the code is spent; and two requests racing with one code get one
//! certificate, round after round; over the limit, an HTTP 429, not a
//! FAILURE.

use connect_pki_ca::scep::client::Requester;
use connect_pki_ca::{KeyKind, PrivateKey};
use connect_pki_e2e::builders::b64;
use connect_pki_e2e::client::{Identity, Reply, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};

/// A requester with an RSA key, and that key (PKCS#8) for signing in.
fn requester() -> (Requester, Vec<u8>) {
    let key = PrivateKey::generate(KeyKind::Rsa2048).expect("RSA key");
    let der = key.pkcs8_der().to_vec();
    (Requester::new(key).expect("requester"), der)
}

/// The RA certificate, from GetCACert: the one that is neither CA.
async fn ra_certificate(app: &TestApp) -> Vec<u8> {
    let r = app.try_mtls(None, Req::new("GET", "/scep?operation=GetCACert")).await.expect("GetCACert");
    assert_eq!(r.header("content-type"), Some("application/x-x509-ca-ra-cert"));
    let certs = connect_pki_ca::est::certificates_of(&r.body).expect("certs-only");
    assert_eq!(certs.len(), 3);
    certs.into_iter().find(|c| *c != app.ca.issuing_der && *c != app.ca.root_der).expect("the RA")
}

async fn post(app: &TestApp, message: Vec<u8>) -> Reply {
    let req = Req::new("POST", "/scep?operation=PKIOperation").body("application/x-pki-message", message);
    app.try_mtls(None, req).await.expect("PKIOperation")
}

async fn scep_enrolls_and_refuses_with_a_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let ra = ra_certificate(&app).await;
    let user = app.register(&app.admin, 1, "scep.taro", "staff").await;
    let code = app.code_for(&app.admin, user).await;
    let (me, key_der) = requester();

    let wrong = me.pkcs_req(&ra, Some("scep.taro"), "ABCD-EFGH-JKMN-PQRS", "t-1").expect("PKCSReq");
    let r = post(&app, wrong).await;
    assert_eq!((r.status, r.header("x-connect-refusal")), (200, Some("invalid_code")), "{}", r.text());
    assert_eq!(me.certificate_of(&r.body).expect("a CertRep"), None);

    // By GET, the base64 with its `+` as it is.
    let message = me.pkcs_req(&ra, Some("scep.taro"), &code, "t-2").expect("PKCSReq");
    let r = app
        .try_mtls(None, Req::new("GET", &format!("/scep?operation=PKIOperation&message={}", b64(&message))))
        .await
        .expect("GET");
    assert_eq!((r.status, r.header("x-connect-refusal")), (200, None), "{}", r.text());
    let cert_der = me.certificate_of(&r.body).expect("opens with the key").expect("a certificate");
    let whoami = app.whoami(&Identity { cert_der, key_der }).await;
    assert_eq!(whoami["login_id"], "scep.taro", "{whoami}");

    let again = me.pkcs_req(&ra, Some("scep.taro"), &code, "t-3").expect("PKCSReq");
    let r = post(&app, again).await;
    assert_eq!(r.header("x-connect-refusal"), Some("code_used"), "{}", r.text());
    // A CSR naming someone else is refused too.
    let other = app.code_for(&app.admin, user).await;
    let r = post(&app, me.pkcs_req(&ra, Some("admin"), &other, "t-4").expect("PKCSReq")).await;
    assert!(r.header("x-connect-refusal").is_some_and(|c| c.starts_with("csr")), "{:?}", r.headers);
}
both_backends!(scep_enrolls_and_refuses_with_a_reason);

async fn one_challenge_raced_by_two_scep_requests_issues_one_certificate(backend: Backend) {
    let app = spawn_app(backend).await;
    let ra = ra_certificate(&app).await;
    let (me, _) = requester();
    for round in 0..10 {
        let login = format!("scep.race{round}");
        let user = app.register(&app.admin, 1, &login, "staff").await;
        let code = app.code_for(&app.admin, user).await;
        let a = me.pkcs_req(&ra, Some(&login), &code, &format!("r{round}a")).expect("PKCSReq");
        let b = me.pkcs_req(&ra, Some(&login), &code, &format!("r{round}b")).expect("PKCSReq");
        let (ra_, rb) = tokio::join!(post(&app, a), post(&app, b));
        let issued: Vec<_> = [&ra_, &rb].iter().filter_map(|r| me.certificate_of(&r.body).expect("CertRep")).collect();
        assert_eq!(issued.len(), 1, "round {round}: {:?} / {:?}", ra_.headers, rb.headers);
    }
}
both_backends!(one_challenge_raced_by_two_scep_requests_issues_one_certificate);

/// Over the enrollment limit, a SCEP request gets an HTTP 429 the client
/// retries, not a FAILURE it would take as final; refusals before it are
/// CertReps.
async fn over_the_limit_scep_answers_429_not_a_failure(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions::with(|c| c.rate_limit_per_minute = 2)).await;
    let ra = ra_certificate(&app).await;
    let (me, _) = requester();
    for i in 0..3 {
        let message = me.pkcs_req(&ra, None, "ABCD-EFGH-JKMN-PQRS", &format!("l{i}")).expect("PKCSReq");
        let r = post(&app, message).await;
        if i < 2 {
            assert_eq!((r.status, r.header("x-connect-refusal")), (200, Some("invalid_code")), "#{i}");
        } else {
            assert_eq!((r.status, r.json()["error"]["code"].as_str()), (429, Some("rate_limited")), "{}", r.text());
        }
    }
}
both_backends!(over_the_limit_scep_answers_429_not_a_failure);
