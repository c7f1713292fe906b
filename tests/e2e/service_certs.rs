//! Years of operation (issue 12): the service renews its own OCSP signer and
//! TLS server certificate. The binary runs under libfaketime 400 days after
//! `init` — past the 397 days those certificates were issued for — and
//! `openssl ocsp` and `curl`, also running 400 days ahead, must accept what
//! it serves.

use std::path::Path;

use connect_pki_e2e::{Backend, FakeTime, Server, both_backends, run, text};

/// Past the 397 days the service's own certificates are issued for.
fn ahead() -> FakeTime {
    FakeTime::ahead(time::Duration::days(400))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn serial_of(pem_file: &Path) -> String {
    let o = run("openssl", &["x509", "-in", &path(pem_file), "-noout", "-serial"], Path::new("."));
    assert!(o.status.success(), "{}", text(&o));
    text(&o).trim().to_lowercase()
}

async fn the_service_renews_its_own_certificates_before_they_run_out(backend: Backend) {
    let mut s = Server::start(backend).await;
    let (ocsp_before, tls_before) = (serial_of(&s.data("ca/ocsp.pem")), serial_of(&s.data("ca/tls.pem")));
    let admin = s.admin_pem();
    let (root, issuing) = (path(&s.data("ca/root.pem")), path(&s.data("ca/issuing.pem")));
    s.stop();

    // The certificates init made are 400 days old for everyone now: the
    // check below fails the way the issue describes unless they were renewed.
    s.spawn_at(ahead(), &[]);
    assert!(s.log_contains("service certificate renewed"), "{}", s.log());
    let (ocsp_after, tls_after) = (serial_of(&s.data("ca/ocsp.pem")), serial_of(&s.data("ca/tls.pem")));
    assert_ne!(ocsp_after, ocsp_before, "the OCSP signer was not renewed");
    assert_ne!(tls_after, tls_before, "the TLS certificate was not renewed");

    // OCSP: the responder's certificate chains to the root (no -VAfile
    // shortcut) and is valid 400 days on.
    let url = format!("http://{}/ocsp", s.public);
    // openssl runs on the server's clock, 400 days ahead as well.
    let out = s.run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            &issuing,
            "-cert",
            &path(&admin),
            "-url",
            &url,
            "-CAfile",
            &root,
            "-verify_other",
            &issuing,
            "-resp_text",
        ],
    );
    let said = text(&out);
    assert!(out.status.success() && said.contains("Response verify OK"), "openssl ocsp: {said}");
    assert!(said.contains(": good"), "{said}");
    let responder_serial = ocsp_after.trim_start_matches("serial=");
    assert!(said.to_lowercase().replace(':', "").contains(responder_serial), "answered by another signer: {said}");

    // HTTPS: curl trusts our root only and checks the server certificate at
    // its own (shifted) time.
    let https = format!("https://{}/api/v1/terms", s.api);
    let out =
        s.run("curl", &["-sS", "--max-time", "20", "--cacert", &root, "-o", "/dev/null", "-w", "%{http_code}", &https]);
    assert!(out.status.success(), "curl: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    // Started again, the service serves what it wrote and does not renew twice.
    s.stop();
    s.spawn_at(ahead(), &[]);
    let out = s.run("openssl", &["s_client", "-connect", &s.api, "-CAfile", &root, "-verify_return_error", "-brief"]);
    let said = text(&out);
    assert!(said.contains("Verification: OK"), "openssl s_client: {said}");
    assert_eq!(serial_of(&s.data("ca/tls.pem")), tls_after, "renewed again at the second start");
    assert_eq!(serial_of(&s.data("ca/ocsp.pem")), ocsp_after, "renewed again at the second start");
    assert_eq!(s.log().matches("service certificate renewed").count(), 2, "{}", s.log());
    assert!(!s.data("ca/ocsp.pem.new").exists() && !s.data("ca/tls.key.pem.new").exists());
}
both_backends!(the_service_renews_its_own_certificates_before_they_run_out);
