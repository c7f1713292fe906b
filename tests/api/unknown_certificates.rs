//! Fail closed on what the database does not know: a certificate our CA
//! signed whose row is gone (a database restored from before it was issued,
//! a replica that missed it) may have been revoked since — nobody can say —
//! so the listener refuses it and OCSP answers `unknown`, while a certificate
//! the database knows works as before.

use connect_pki_ca::KeyKind;
use connect_pki_ca::issue::DeviceSubject;
use connect_pki_domain::{Clock, DeviceId, FacilityId, UserId};
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::{Backend, both_backends, spawn_app};

async fn a_certificate_of_our_ca_the_database_does_not_know_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let known = app.device("known.device").await;
    let subject = DeviceSubject {
        facility: FacilityId(1),
        user: UserId(9_999),
        device: DeviceId(9_999),
        login_id: "ghost".into(),
    };
    let (cert, key) = app
        .ca
        .issuing
        .issue_device_with_new_key(KeyKind::P256, &subject, app.clock.now())
        .expect("our CA signs it, outside the database");
    let ghost = Identity { cert_der: cert.der, key_der: key.pkcs8_der().to_vec() };
    assert!(app.handshake_ok(&known.id).await, "a known certificate is accepted");
    assert!(!app.handshake_ok(&ghost).await, "a certificate the database does not know was accepted");
    assert_eq!(app.ocsp_status(&ghost).await, "unknown");
    let refused = app.try_mtls(Some(&ghost), Req::new("GET", "/api/v1/me")).await;
    assert!(refused.is_err() || refused.is_ok_and(|r| r.status == 401), "the API answered an unknown certificate");
}
both_backends!(a_certificate_of_our_ca_the_database_does_not_know_is_refused);
