//! Issuing CA rollover (issue 12): `connect-pki ca rollover` makes the next
//! generation under the same root. After a restart new devices get it; a
//! device of the old CA still gets in; each CA has its own CRL, OCSP signer
//! and caIssuers URL; the trust bundle carries both; and a device of either
//! can be revoked. Checked with openssl, curl and Python `cryptography`.

use std::path::{Path, PathBuf};

use connect_pki_e2e::fixtures::{Device, device};
use connect_pki_e2e::{Backend, Server, binary, both_backends, text};
use serde_json::Value;

use crate::revocation::{handshake_ok, revoke};

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn connect_pki(s: &Server, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--data-dir".into(), path(&s.data_dir)]);
    if s.db.backend() == Backend::Postgres {
        all.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    s.run(&path(binary()), &all)
}

/// The device's certificate alone, as a file of its own.
fn leaf(s: &Server, d: &Device, name: &str) -> PathBuf {
    let out = s.scratch(&format!("{name}-leaf.pem"));
    let o = s.run("openssl", &["x509", "-in", &path(&d.pem), "-out", &path(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

/// `openssl ocsp` about `d`, whose issuer is `issuing`, trusting only the
/// root (the responder certificate must chain through that issuer).
fn ocsp(s: &Server, d: &Device, issuing: &str) -> String {
    let url = format!("http://{}/ocsp", s.public);
    let (root, issuer) = (path(&s.data("ca/root.pem")), path(&s.data(&format!("ca/{issuing}.pem"))));
    let args =
        ["ocsp", "-issuer", &issuer, "-cert", &path(&d.pem), "-url", &url, "-CAfile", &root, "-verify_other", &issuer];
    let o = s.run("openssl", &args);
    let said = text(&o);
    assert!(o.status.success() && said.contains("Response verify OK"), "openssl ocsp ({issuing}): {said}");
    said
}

/// The CRL at `/crl/{ca}.crl`, checked with Python `cryptography` against its CA.
fn crl(s: &Server, ca: &str) -> Value {
    let file = s.scratch(&format!("{ca}.crl"));
    let (_, status, _) = s.curl_public(&format!("/crl/{ca}.crl"), &["-o", &path(&file)]);
    assert_eq!(status, 200, "/crl/{ca}.crl");
    let issuer = path(&s.data(&format!("ca/{ca}.pem")));
    let facts = s.python_json("ocsp_crl_facts.py", &["crl", &path(&file), &issuer]);
    assert_eq!(facts["signature_valid"], true, "{facts}");
    facts
}

/// `openssl verify -crl_check` of `d` with the bundle and its CA's CRL.
fn verify_with_crl(s: &Server, d: &Device, ca: &str) -> (bool, String) {
    let der = s.scratch(&format!("{ca}.crl"));
    let pem = s.scratch(&format!("{ca}.crl.pem"));
    let o = s.run("openssl", &["crl", "-inform", "DER", "-in", &path(&der), "-out", &path(&pem)]);
    assert!(o.status.success(), "{}", text(&o));
    let (root, bundle) = (path(&s.data("ca/root.pem")), path(&s.scratch("bundle.pem")));
    let args =
        ["verify", "-crl_check", "-CAfile", &root, "-untrusted", &bundle, "-CRLfile", &path(&pem), &path(&d.pem)];
    let o = s.run("openssl", &args);
    (o.status.success(), text(&o))
}

async fn a_rollover_keeps_the_old_ca_answering_for_its_devices(backend: Backend) {
    let mut s = Server::start(backend).await;
    let admin = s.admin_pem();
    let old = device(&s, &admin, "rollover-old");

    let o = connect_pki(&s, &["ca", "rollover"]);
    assert!(o.status.success() && text(&o).contains("generation 2 (issuing-2)"), "{}", text(&o));
    s.stop();
    s.spawn(&[]);
    let new = device(&s, &admin, "rollover-new");

    // The new device's certificate is the new CA's, and says where its CRL
    // and its CA certificate are; the old one's still names the old CA's.
    for (d, ca, cn) in [(&old, "issuing", "CONNECT Issuing CA 1"), (&new, "issuing-2", "CONNECT Issuing CA 2")] {
        let facts = s.python_json("x509_facts.py", &[&path(&leaf(&s, d, ca)), &path(&s.data(&format!("ca/{ca}.pem")))]);
        assert_eq!(facts["signature_verified_by_issuer"], true, "{facts}");
        assert_eq!(facts["cdp_uris"][0], format!("http://127.0.0.1:8080/crl/{ca}.crl"), "{facts}");
        assert_eq!(facts["ca_issuers_uris"][0], format!("http://127.0.0.1:8080/ca/{ca}.crt"), "{facts}");
        let o = s.run("openssl", &["x509", "-in", &path(&d.pem), "-noout", "-issuer"]);
        assert!(text(&o).contains(cn), "{}", text(&o));
        // The caIssuers URL serves that CA.
        let (_, status, _) = s.curl_public(&format!("/ca/{ca}.crt"), &["-o", &path(&s.scratch(&format!("{ca}.der")))]);
        assert_eq!(status, 200);
    }

    // The trust bundle carries both CAs and the root; openssl builds both
    // chains from it.
    let (_, status, bundle) = s.curl_public("/ca/chain.pem", &[]);
    assert_eq!(status, 200);
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 3, "{bundle}");
    std::fs::write(s.scratch("bundle.pem"), &bundle).expect("write");
    for d in [&old, &new] {
        let root = path(&s.data("ca/root.pem"));
        let o = s.run(
            "openssl",
            &["verify", "-CAfile", &root, "-untrusted", &path(&s.scratch("bundle.pem")), &path(&d.pem)],
        );
        assert!(o.status.success(), "{}", text(&o));
    }

    // Both get in, and each CA's OCSP signer answers for its own devices.
    assert!(handshake_ok(&s, &old.pem), "the old CA's device was refused");
    assert!(handshake_ok(&s, &new.pem), "the new CA's device was refused");
    assert!(ocsp(&s, &old, "issuing").contains(": good"));
    assert!(ocsp(&s, &new, "issuing-2").contains(": good"));
    // Asked with the wrong issuer, the responder does not vouch for it.
    let url = format!("http://{}/ocsp", s.public);
    let args = [
        "ocsp",
        "-issuer",
        &path(&s.data("ca/issuing-2.pem")),
        "-cert",
        &path(&old.pem),
        "-url",
        &url,
        "-VAfile",
        &path(&s.data("ca/ocsp-2.pem")),
    ];
    let said = text(&s.run("openssl", &args));
    assert!(!said.contains(": good"), "{said}");

    // Both can be revoked; each lands on its own CA's CRL only.
    let (before_old, before_new) = (crl(&s, "issuing"), crl(&s, "issuing-2"));
    for d in [&old, &new] {
        let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
        assert_eq!(status, 200, "{body}");
    }
    assert!(!handshake_ok(&s, &old.pem) && !handshake_ok(&s, &new.pem), "a revoked device got in");
    assert!(ocsp(&s, &old, "issuing").contains(": revoked"));
    assert!(ocsp(&s, &new, "issuing-2").contains(": revoked"));
    let (after_old, after_new) = (crl(&s, "issuing"), crl(&s, "issuing-2"));
    assert_eq!(after_old["revoked"][&old.serial], "key_compromise", "{after_old}");
    assert_eq!(after_new["revoked"][&new.serial], "key_compromise", "{after_new}");
    assert!(after_old["revoked"].get(&new.serial).is_none(), "the new CA's device on the old CA's CRL");
    assert!(after_new["revoked"].get(&old.serial).is_none(), "the old CA's device on the new CA's CRL");
    assert!(after_old["crl_number"].as_u64() > before_old["crl_number"].as_u64());
    assert!(after_new["crl_number"].as_u64() > before_new["crl_number"].as_u64());
    for (d, ca) in [(&old, "issuing"), (&new, "issuing-2")] {
        let (ok, said) = verify_with_crl(&s, d, ca);
        assert!(!ok && said.contains("certificate revoked"), "{ca}: {said}");
    }
    let (ok, said) = verify_with_crl(&s, &admin_device(&s), "issuing");
    assert!(ok, "the old CA's unrevoked admin: {said}");
}
both_backends!(a_rollover_keeps_the_old_ca_answering_for_its_devices);

fn admin_device(s: &Server) -> Device {
    Device { pem: s.admin_pem(), serial: String::new(), device_id: 1, user_id: 1 }
}

/// With the root kept offline: the root key is not in the data directory,
/// so the one-step rollover says what to do; `--csr-out` and `--import`
/// with openssl as the offline root do it in two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollover_with_an_offline_root() {
    let mut s = Server::start(Backend::Sqlite).await;
    let offline = s.scratch("root.key.pem");
    std::fs::rename(s.data("ca/root.key.pem"), &offline).expect("take the root key offline");

    let o = connect_pki(&s, &["ca", "rollover"]);
    assert!(!o.status.success() && text(&o).contains("--csr-out"), "{}", text(&o));
    let csr = s.scratch("issuing-2.csr");
    let o = connect_pki(&s, &["ca", "rollover", "--csr-out", &path(&csr)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = s.run("openssl", &["req", "-in", &path(&csr), "-noout", "-verify", "-subject"]);
    assert!(o.status.success() && text(&o).contains("CONNECT Issuing CA 2"), "{}", text(&o));

    // The root's operator signs it as a CA.
    std::fs::write(
        s.scratch("ca.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("write");
    let pass = format!("pass:{}", std::fs::read_to_string(s.data("passphrase")).expect("passphrase").trim());
    let signed = s.scratch("issuing-2.pem");
    let args = [
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &path(&s.data("ca/root.pem")),
        "-CAkey",
        &path(&offline),
        "-passin",
        &pass,
        "-days",
        "3650",
        "-extfile",
        &path(&s.scratch("ca.ext")),
        "-out",
        &path(&signed),
    ];
    let o = s.run("openssl", &args);
    assert!(o.status.success(), "{}", text(&o));
    // A certificate for another key is refused.
    let o = connect_pki(&s, &["ca", "rollover", "--import", &path(&s.data("ca/issuing.pem"))]);
    assert!(!o.status.success() && text(&o).contains("not for the pending key"), "{}", text(&o));
    let o = connect_pki(&s, &["ca", "rollover", "--import", &path(&signed)]);
    assert!(o.status.success() && text(&o).contains("issuing-2"), "{}", text(&o));

    s.stop();
    s.spawn(&[]);
    let admin = s.admin_pem();
    let new = device(&s, &admin, "offline-root");
    let o = s.run("openssl", &["x509", "-in", &path(&new.pem), "-noout", "-issuer"]);
    assert!(text(&o).contains("CONNECT Issuing CA 2"), "{}", text(&o));
    assert!(handshake_ok(&s, &new.pem) && handshake_ok(&s, &admin));
    assert!(ocsp(&s, &new, "issuing-2").contains(": good"));
}

/// Two hosts that each ran `ca rollover` on one shared database would each
/// have their own "issuing-2", and each would publish a CRL the other's
/// certificates are not on. The first to serve records its generation-2 CA
/// in the database; the other refuses to start, naming both fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_with_its_own_rollover_refuses_to_start() {
    let mut s = Server::start(Backend::Postgres).await;
    s.stop();
    let other = s.dir.path().join("other-host");
    let o = s.run("cp", &["-a", &path(&s.data_dir), &path(&other)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = connect_pki(&s, &["ca", "rollover"]);
    assert!(o.status.success(), "{}", text(&o));
    s.spawn(&[]);
    s.stop();

    let bin = path(binary());
    let other_dir = path(&other);
    let o = s.run(&bin, &["ca", "rollover", "--data-dir", &other_dir, "--database-url", &s.db.url]);
    assert!(o.status.success(), "{}", text(&o));
    // Bounded: a service that did start would otherwise run on.
    let serve = [
        "30",
        &bin,
        "serve",
        "--data-dir",
        &other_dir,
        "--database-url",
        &s.db.url,
        "--public-addr",
        "127.0.0.1:0",
        "--api-addr",
        "127.0.0.1:0",
    ];
    let o = s.run("timeout", &serve);
    let said = text(&o);
    assert!(!o.status.success(), "the second host's issuing-2 was served: {said}");
    assert!(said.contains("generation 2") && said.contains("another host made its own"), "{said}");
}

/// `ca rollover` on one of two PostgreSQL instances sharing a data directory
/// and a database: the one not restarted yet never answers `unauthorized` or
/// 404 for the new CA (OCSP `tryLater`, its CRL URL 503), refuses every
/// change with 503 rather than answering 200 to a revocation it cannot
/// publish, and says it is not ready; the restarted one revokes, and both
/// refuse the revoked device's handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_not_restarted_after_a_rollover_defers_and_changes_nothing() {
    let mut s = Server::start(Backend::Postgres).await;
    let peer = s.peer();
    let admin = s.admin_pem();
    let old = device(&s, &admin, "behind-old");
    let o = connect_pki(&s, &["ca", "rollover"]);
    assert!(o.status.success(), "{}", text(&o));
    s.stop();
    s.spawn(&[]);
    let new = device(&s, &admin, "behind-new");
    let behind = |s: &mut Server| s.through(&peer, |p| p.curl_public("/readyz", &[]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while behind(&mut s).1 != 503 {
        assert!(std::time::Instant::now() < deadline, "the second instance never noticed the rollover");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(behind(&mut s).2.contains("issuing-2"), "{}", behind(&mut s).2);
    // OCSP about the new CA's device: later, not "unauthorized".
    let url = format!("http://{}/ocsp", peer.public);
    let issuer = path(&s.data("ca/issuing-2.pem"));
    let said =
        text(&s.run("openssl", &["ocsp", "-issuer", &issuer, "-cert", &path(&new.pem), "-url", &url, "-noverify"]));
    assert!(said.contains("trylater") && !said.contains("unauthorized"), "{said}");
    // Its CRL: there, not here yet — 503 with a reason, not 404.
    let (_, status, body) = s.through(&peer, |p| p.curl_public("/crl/issuing-2.crl", &[]));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("behind_rollover"), "{body}");
    // No change through it, of either CA's certificates.
    for d in [&new, &old] {
        let (status, body) = s.through(&peer, |p| revoke(p, &admin, &d.serial, "keyCompromise"));
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "behind_rollover", "{body}");
    }
    let (_, cert) = s.api("GET", &format!("/api/v1/certificates/{}", new.serial), Some(&admin), None);
    assert_eq!(cert["status"], "valid", "a refused revocation changed something: {cert}");
    // Reading still works there; OCSP for the old CA's devices too.
    let (status, _) = s.through(&peer, |p| p.api("GET", "/api/v1/whoami", Some(&admin), None));
    assert_eq!(status, 200);
    let issuer = path(&s.data("ca/issuing.pem"));
    let said =
        text(&s.run("openssl", &["ocsp", "-issuer", &issuer, "-cert", &path(&old.pem), "-url", &url, "-noverify"]));
    assert!(said.contains(": good"), "{said}");
    // Through the restarted instance the revocation goes, and holds on both.
    assert_eq!(revoke(&s, &admin, &new.serial, "keyCompromise").0, 200);
    assert!(!handshake_ok(&s, &new.pem));
    assert!(!s.through(&peer, |p| handshake_ok(p, &new.pem)), "the second instance let the revoked device in");
}

/// Holds the CA lock of `s`'s data directory (as a renewing instance does,
/// with `flock`) until the returned release file is created.
fn hold_ca_lock(s: &Server) -> (std::process::Child, PathBuf) {
    let release = s.scratch("release-ca-lock");
    let _ = std::fs::remove_file(&release);
    let script = format!("while [ ! -e '{}' ]; do sleep 0.05; done", path(&release));
    let holder = std::process::Command::new("flock")
        .args([&path(&s.data("ca/.lock")), "-c", &script])
        .spawn()
        .expect("flock runs");
    // Held once flock has run its command.
    std::thread::sleep(std::time::Duration::from_millis(300));
    (holder, release)
}

/// A start and `ca rollover` both wait for the CA lock. A start that came
/// while another instance was renewing its TLS certificate (the new key
/// written, the certificate not yet) finishes that renewal once it is done
/// instead of throwing the new key away; a rollover that came meanwhile
/// makes its generation after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_and_a_rollover_wait_for_the_ca_lock() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    s.stop();
    let (tls, tls_key) = (s.data("ca/tls.pem"), s.data("ca/tls.key.pem"));
    let new = |p: &Path| PathBuf::from(format!("{}.new", p.display()));
    let (mut holder, release) = hold_ca_lock(&s);
    // The other instance's renewal, half-way: its key is written.
    std::fs::copy(&tls_key, new(&tls_key)).expect("copy");
    let watcher = {
        let (tls, tls_key, release) = (tls.clone(), tls_key.clone(), release.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let kept = new(&tls_key).exists();
            // The renewal ends: its certificate written, the lock released.
            std::fs::copy(&tls, new(&tls)).expect("copy");
            std::fs::write(&release, b"").expect("release");
            kept
        })
    };
    s.spawn(&[]);
    assert!(watcher.join().expect("watcher"), "the start threw away the new key of a renewal in progress");
    holder.wait().expect("flock ends");
    assert!(!new(&tls).exists() && !new(&tls_key).exists(), "the renewal was not finished at start");
    assert!(handshake_ok(&s, &admin), "{}", s.log());
    s.stop();

    let (mut holder, release) = hold_ca_lock(&s);
    let mut rollover = s
        .command(&path(binary()))
        .args(["ca", "rollover", "--data-dir", &path(&s.data_dir)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rollover runs");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(rollover.try_wait().expect("status").is_none(), "ca rollover did not wait for the CA lock");
    assert!(!s.data("ca/issuing-2.pem").exists(), "a generation was made under another holder's lock");
    std::fs::write(&release, b"").expect("release");
    holder.wait().expect("flock ends");
    let out = rollover.wait_with_output().expect("rollover ends");
    assert!(out.status.success(), "{}", text(&out));
    assert!(s.data("ca/issuing-2.pem").exists());
}
