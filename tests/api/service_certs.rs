//! The service's own certificates renew while it runs (issue 12): no
//! restart, and at every moment what it presents is valid.
//!
//! The service's clock moves 400 days ahead; `openssl s_client -attime`
//! checks the handshake at that same moment, so the check fails on the
//! certificate `init` made and passes on its successor.

use std::io::Write;
use std::process::{Command, Stdio};

use connect_pki_ca::issue::to_pem;
use connect_pki_domain::AuditAction;
use connect_pki_domain::Clock;
use connect_pki_e2e::app::{AppOptions, spawn_app_with};
use connect_pki_e2e::{Backend, both_backends};
use connect_pki_server::app::renewal::{Renewed, renew_due};
use connect_pki_store::AuditFilter;

/// What `openssl s_client` says of the HTTPS listener at `at` (Unix
/// seconds): whether the chain verified, and the certificate presented.
fn s_client(addr: std::net::SocketAddr, root_pem: &str, at: i64) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root.pem");
    std::fs::write(&root, root_pem).expect("write");
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-verify_return_error", "-attime", &at.to_string()])
        .arg("-CAfile")
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    drop(child.stdin.take().map(|mut i| i.write_all(b"")));
    let out = child.wait_with_output().expect("openssl ends");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let leaf = said
        .split_once("-----BEGIN CERTIFICATE-----")
        .and_then(|(_, rest)| rest.split_once("-----END CERTIFICATE-----"))
        .map(|(body, _)| format!("-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----\n"))
        .unwrap_or_default();
    (said.contains("Verify return code: 0 (ok)"), leaf, said)
}

async fn the_running_service_renews_its_ocsp_signer_and_tls_certificate(backend: Backend) {
    let mut app = spawn_app_with(backend, AppOptions { own_data_dir: true, ..AppOptions::default() }).await;
    let root_pem = to_pem("CERTIFICATE", &app.ca.root_der);
    let (old_ocsp, old_tls) = (app.state().ocsp.signer_cert_der(1).expect("signer"), app.own().tls.leaf_der());
    assert_eq!(old_ocsp, app.ca.ocsp_der);
    let now = app.clock.now();
    let (ok, leaf, said) = s_client(app.api, &root_pem, now.unix_timestamp());
    assert!(ok && leaf == to_pem("CERTIFICATE", &old_tls), "{said}");
    assert!(renew_due(app.state(), app.own()).await.expect("renewal runs").is_empty(), "renewed a new certificate");

    // 400 days on: the certificates init made have expired.
    let later = now + time::Duration::days(400);
    app.clock.set(later);
    let (ok, _, said) = s_client(app.api, &root_pem, later.unix_timestamp());
    assert!(!ok && said.contains("certificate has expired"), "{said}");

    let renewed = renew_due(app.state(), app.own()).await.expect("renewal runs");
    assert_eq!(renewed, [Renewed::OcspSigner(1), Renewed::TlsServer]);
    let (new_ocsp, new_tls) = (app.state().ocsp.signer_cert_der(1).expect("signer"), app.own().tls.leaf_der());
    assert_ne!(new_ocsp, old_ocsp);
    assert_ne!(new_tls, old_tls);

    // The same running service now presents the new certificate, valid then.
    let (ok, leaf, said) = s_client(app.api, &root_pem, later.unix_timestamp());
    assert!(ok, "{said}");
    assert_eq!(leaf, to_pem("CERTIFICATE", &new_tls));
    // OCSP answers are signed by the new signer (and verify with its key).
    let request = connect_pki_e2e::ocsp::request(&app.ca.issuing_der, &app.admin.cert_der);
    let reply =
        app.public(connect_pki_e2e::client::Req::new("POST", "/ocsp").body("application/ocsp-request", request)).await;
    assert_eq!(connect_pki_e2e::ocsp::status(&reply.body, &new_ocsp), "good");
    // The new signer is a delegated OCSP signer of our issuing CA, with the
    // same names and profile as the one init made.
    let (_, cert) = x509_parser::parse_x509_certificate(&new_ocsp).expect("parses");
    assert!(cert.validity().is_valid_at(x509_parser::time::ASN1Time::from(later)));
    let eku = cert.extended_key_usage().expect("EKU").expect("EKU present");
    assert!(eku.value.ocsp_signing, "no id-kp-OCSPSigning");
    let (_, tls) = x509_parser::parse_x509_certificate(&new_tls).expect("parses");
    let (_, old) = x509_parser::parse_x509_certificate(&old_tls).expect("parses");
    assert_eq!(tls.subject_alternative_name().ok().flatten(), old.subject_alternative_name().ok().flatten());

    // Both renewals are in the audit log.
    let filter = AuditFilter { action: Some("ca".into()), limit: 100, ..AuditFilter::default() };
    let records = app.state().store.audit_page(&filter).await.expect("audit");
    for action in [AuditAction::CaOcspSignerRenew, AuditAction::CaTlsServerRenew] {
        assert!(records.iter().any(|r| r.entry.action == action && r.entry.actor == "system:renewal"), "no {action}");
    }

    // Written down: a restart serves the renewed pair and renews nothing.
    app.stop().await;
    app.start().await;
    assert_eq!(app.state().ocsp.signer_cert_der(1).expect("signer"), new_ocsp);
    assert_eq!(app.own().tls.leaf_der(), new_tls);
    assert!(renew_due(app.state(), app.own()).await.expect("renewal runs").is_empty());
}
both_backends!(the_running_service_renews_its_ocsp_signer_and_tls_certificate);

/// A renewal interrupted after its key was written but before its
/// certificate was: the next start keeps the old pair, which still matches.
/// Interrupted after both `.new` files were written: it finishes the swap.
#[tokio::test]
async fn an_interrupted_renewal_leaves_a_matching_pair() {
    let app = spawn_app_with(Backend::Sqlite, AppOptions { own_data_dir: true, ..AppOptions::default() }).await;
    let dir = connect_pki_server::datadir::DataDir::new(app.data_dir());
    let before = dir.load("http://127.0.0.1:8080").expect("loads");
    let key = connect_pki_ca::PrivateKey::generate(connect_pki_ca::KeyKind::P256).expect("key");
    let pass = dir.passphrase().expect("passphrase");
    std::fs::write(dir.ca("ocsp.key.pem.new"), key.to_encrypted_pem(&pass).expect("pem")).expect("write");
    let loaded = dir.load("http://127.0.0.1:8080").expect("the old pair loads");
    assert_eq!(loaded.ocsp_der, before.ocsp_der);
    assert_eq!(loaded.ocsp_key.public_key_der(), before.ocsp_key.public_key_der());
    assert!(!dir.ca("ocsp.key.pem.new").exists(), "a half-written renewal was left behind");

    let (der, new_key) = connect_pki_ca::hierarchy::ocsp_signer(
        &loaded.issuing,
        &connect_pki_ca::InMemory,
        time::OffsetDateTime::now_utc(),
        time::Duration::days(397),
    )
    .expect("signer");
    let new_pem = loaded.keys.key_file(&new_key).expect("pem").expect("keys in files");
    std::fs::write(dir.ca("ocsp.key.pem.new"), new_pem).expect("write");
    std::fs::write(dir.ca("ocsp.pem.new"), to_pem("CERTIFICATE", &der)).expect("write");
    let loaded = dir.load("http://127.0.0.1:8080").expect("the new pair loads");
    assert_eq!(loaded.ocsp_der, der);
    assert_eq!(loaded.ocsp_key.public_key_der(), new_key.public_key_der());
    connect_pki_ca::ocsp::OcspSigner::new(&loaded.ocsp_der, loaded.ocsp_key, &loaded.issuing_der)
        .expect("key and certificate match");
}

/// Two instances sharing one data directory renew at the same moment: one
/// issues, the other takes over what it wrote, so both serve the signer and
/// certificate on disk and the files always hold a matching pair.
async fn instances_sharing_a_data_directory_renew_once(backend: Backend) {
    let a = spawn_app_with(backend, AppOptions { own_data_dir: true, ..AppOptions::default() }).await;
    let dir = a.data_dir().to_path_buf();
    let b = spawn_app_with(backend, AppOptions { data_dir_of: Some(dir.clone()), ..AppOptions::default() }).await;
    let data = connect_pki_server::datadir::DataDir::new(&dir);
    let mut at = a.clock.now();
    for round in 0..5 {
        at += time::Duration::days(400);
        a.clock.set(at);
        b.clock.set(at);
        let (ra, rb) = tokio::join!(renew_due(a.state(), a.own()), renew_due(b.state(), b.own()));
        let (ra, rb) = (ra.expect("renewal runs"), rb.expect("renewal runs"));
        let issued = |r: &[Renewed], which: Renewed| r.iter().filter(|w| **w == which).count();
        for which in [Renewed::OcspSigner(1), Renewed::TlsServer] {
            assert_eq!(
                issued(&ra, which) + issued(&rb, which),
                1,
                "round {round}: {which:?} issued by {ra:?} and {rb:?}"
            );
        }
        let loaded = data.load("http://127.0.0.1:8080").expect("the files load");
        connect_pki_ca::ocsp::OcspSigner::new(&loaded.ocsp_der, loaded.ocsp_key, &loaded.issuing_der)
            .expect("the signer's key and certificate match");
        for app in [&a, &b] {
            assert_eq!(app.state().ocsp.signer_cert_der(1).expect("signer"), loaded.ocsp_der, "round {round}");
            assert_eq!(app.own().tls.leaf_der(), loaded.tls_der, "round {round}");
        }
    }
}
both_backends!(instances_sharing_a_data_directory_renew_once);
