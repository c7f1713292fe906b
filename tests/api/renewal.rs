//! What renewal leaves behind: revoking the superseded certificate does not
//! pass for cutting the device off, and a device renews at most a limited
//! number of times an hour.

use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use serde_json::{Value, json};

/// Renews `who`'s certificate over mTLS: the status, the body and the new identity.
async fn renew(app: &TestApp, who: &Identity, cn: &str) -> (u16, Value, Option<Identity>) {
    let (key_der, csr, _) = connect_pki_e2e::builders::csr(cn);
    let (status, out) = app.api("POST", "/api/v1/certificates/renew", Some(who), Some(&json!({"csr": csr}))).await;
    let renewed =
        out["certificate"].as_str().map(|pem| Identity { cert_der: connect_pki_e2e::builders::pem_der(pem), key_der });
    (status, out, renewed)
}

async fn revoke(app: &TestApp, serial: &str) -> (u16, Value) {
    let path = format!("/api/v1/certificates/{serial}/revoke");
    app.api("POST", &path, Some(&app.admin), Some(&json!({"reason": "keyCompromise"}))).await
}

/// Revoking a superseded certificate while its device has a newer one in
/// force is refused with 409 naming the newer one, which keeps working;
/// once that one is revoked, revoking the old one again reports it as done.
async fn revoking_a_superseded_certificate_names_the_current_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("koushin").await;
    let (status, out, renewed) = renew(&app, &d.id, "koushin").await;
    assert_eq!(status, 201, "{out}");
    let renewed = renewed.expect("a certificate");
    let new_serial = renewed.serial();

    let (status, out) = revoke(&app, &d.serial).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("conflict")), "{out}");
    let message = out["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&new_serial), "the refusal does not name {new_serial}: {out}");
    // Nothing changed: the new certificate works, the old one stays superseded.
    assert!(app.handshake_ok(&renewed).await);
    assert_eq!(app.ocsp_status(&renewed).await, "good");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked superseded");

    let (status, out) = revoke(&app, &new_serial).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("revoked")), "{out}");
    assert!(!app.handshake_ok(&renewed).await);
    assert_eq!(app.ocsp_status(&renewed).await, "revoked keyCompromise");
    // Nothing of the device works any more: the old serial reports its state.
    let (status, out) = revoke(&app, &d.serial).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("superseded")), "{out}");
}
both_backends!(revoking_a_superseded_certificate_names_the_current_one);

/// A device renews at most `renewals_per_hour` times within an hour; the next
/// gets 429 `rate_limited` with Retry-After, and renews again once the oldest
/// renewal is an hour old.
async fn renewal_is_rate_limited_per_device(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions::with(|c| c.ra.renewals_per_hour = 2)).await;
    let d = app.device("hindo").await;
    let other = app.device("hoka").await;
    let mut current = d.id.clone();
    for _ in 0..2 {
        let (status, out, renewed) = renew(&app, &current, "hindo").await;
        assert_eq!(status, 201, "{out}");
        current = renewed.expect("a certificate");
    }
    let (_, csr, _) = connect_pki_e2e::builders::csr("hindo");
    let req = Req::new("POST", "/api/v1/certificates/renew").json(&json!({"csr": csr}));
    let reply = app.try_mtls(Some(&current), req).await.expect("a reply");
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (429, Some("rate_limited")), "{}", reply.text());
    // The clock stood still: the first renewal leaves the window in an hour.
    assert_eq!(reply.header("retry-after"), Some("3600"), "{:?}", reply.headers);
    assert!(app.handshake_ok(&current).await, "a refused renewal must leave the certificate working");
    // The limit is the device's, not everyone's.
    assert_eq!(renew(&app, &other.id, "hoka").await.0, 201);

    app.clock.advance(time::Duration::minutes(59));
    let (status, out, _) = renew(&app, &current, "hindo").await;
    assert_eq!(status, 429, "{out}");
    app.clock.advance(time::Duration::minutes(1));
    let (status, out, _) = renew(&app, &current, "hindo").await;
    assert_eq!(status, 201, "{out}");
}
both_backends!(renewal_is_rate_limited_per_device);

/// A certificate that has run out no longer works on a connection opened
/// while it was valid, and cannot renew itself (issue 24): the request is
/// refused when the service's clock is past its notAfter, whatever the
/// handshake saw.
async fn an_expired_certificate_neither_works_nor_renews(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("runs.out").await;
    let whoami = app.whoami(&d.id).await;
    let end = time::OffsetDateTime::parse(
        whoami["not_after"].as_str().expect("not_after"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("a time");
    app.clock.set(end + time::Duration::seconds(1));
    let (status, out) = app.api("GET", "/api/v1/whoami", Some(&d.id), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (401, Some("certificate_not_usable")), "{out}");
    let (status, out, renewed) = renew(&app, &d.id, "runs.out").await;
    assert_eq!((status, out["error"]["code"].as_str()), (401, Some("certificate_not_usable")), "{out}");
    assert!(renewed.is_none());
    app.clock.set(end - time::Duration::seconds(60));
    assert_eq!(app.api("GET", "/api/v1/whoami", Some(&d.id), None).await.0, 200, "valid a minute before its end");
}
both_backends!(an_expired_certificate_neither_works_nor_renews);
