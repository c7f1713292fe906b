//! The mTLS listener speaks TLS 1.3 only unless told otherwise: TLS 1.2
//! sends the client certificate — who is calling — in clear. Checked with
//! `openssl s_client`.

use std::path::Path;

use connect_pki_e2e::{Backend, Server, text};

/// Whether a handshake at `version` (`-tls1_2`, `-tls1_3`) with the admin's
/// certificate completes, and what openssl said.
fn handshake(s: &Server, version: &str, pem: &Path) -> (bool, String) {
    let root = s.data("ca/root.pem").display().to_string();
    let pem = pem.display().to_string();
    let args =
        ["s_client", "-connect", &s.api, version, "-CAfile", &root, "-cert", &pem, "-verify_return_error", "-brief"];
    let out = s.run("openssl", &args);
    let said = text(&out);
    (out.status.success() && said.contains("CONNECTION ESTABLISHED"), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_is_refused_unless_allowed() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (ok, said) = handshake(&s, "-tls1_3", &admin);
    assert!(ok, "TLS 1.3 refused: {said}");
    let (ok, said) = handshake(&s, "-tls1_2", &admin);
    assert!(!ok, "TLS 1.2 accepted by default: {said}");
    s.stop();
    s.spawn(&[("CONNECT_PKI_ALLOW_TLS12", "true")]);
    let (ok, said) = handshake(&s, "-tls1_2", &admin);
    assert!(ok, "TLS 1.2 refused although allowed: {said}");
}
