//! CA keys in a PKCS#11 token (issue 13): `init --pkcs11-module` makes the
//! issuing CA, OCSP signer and TLS keys inside a SoftHSM2 token, and the
//! root key in a second token under its own PIN that `serve` never opens
//! (issue 24)
//! (Debian's `softhsm2`); the service issues, signs CRLs and OCSP answers
//! and shakes hands with them there; a rollover and the renewal 400 days on
//! put their new keys there too; and the data directory never holds a
//! private key file. OpenSC's `pkcs11-tool` — a PKCS#11 client no one here
//! wrote — shows the keys in the token, non-extractable, and that they are
//! the keys of the certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, FakeTime, Server, binary, both_backends, run, text};

use crate::revocation::{handshake_ok, revoke};

const PIN: &str = "1234";
const LABEL: &str = "connect-pki-test";
/// The token of the root key alone, under a PIN of its own.
const ROOT: (&str, &str) = ("connect-pki-root", "98765");
const SERVING: (&str, &str) = (LABEL, PIN);

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Debian's SoftHSM2 module.
fn module() -> PathBuf {
    ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is needed for this test (apt-get install softhsm2; the README's test command does)")
}

/// A SoftHSM2 token of the test's own (its objects under `dir`), labelled
/// [`LABEL`] with the user PIN [`PIN`]; returns the SOFTHSM2_CONF file.
fn new_token(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\n", tokens.display()))
        .expect("write");
    add_token(&conf, SERVING);
    conf
}

/// One more token (label, user PIN) beside the others of `conf`.
fn add_token(conf: &Path, (label, pin): (&str, &str)) {
    let o = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "0000"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("softhsm2-util runs (apt-get install softhsm2)");
    assert!(o.status.success(), "{}", text(&o));
}

/// `pkcs11-tool` (OpenSC) logged in to the token (label, PIN).
fn pkcs11_tool(conf: &Path, (label, pin): (&str, &str), args: &[&str]) -> String {
    let o = Command::new("pkcs11-tool")
        .args(["--module", &path(&module()), "--token-label", label, "--login", "--pin", pin])
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("pkcs11-tool runs (apt-get install opensc)");
    assert!(o.status.success(), "pkcs11-tool {args:?}: {}", text(&o));
    text(&o)
}

/// Every file under `dir` that is, or holds, a private key — a PEM private
/// key of any kind, a `*.key.pem*` file, or anything openssl reads as a DER
/// private key — apart from the first administrator's own PKCS#12, their
/// credential to take away. (`audit-checkpoint.key` and `pseudonym.key` are
/// the service's MAC keys, not key pairs.)
fn private_key_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            if p.ends_with("bootstrap/admin.p12") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            let named = p.file_name().is_some_and(|n| n.to_string_lossy().contains(".key.pem"));
            let holds = bytes.windows(11).any(|w| w == b"PRIVATE KEY");
            let der = run("openssl", &["pkey", "-inform", "DER", "-noout", "-in", &path(&p)], dir);
            if named || holds || der.status.success() {
                found.push(p);
            }
        }
    }
    found
}

/// One key object `pkcs11-tool --list-objects` shows.
#[derive(Debug, Default)]
struct Object {
    label: String,
    id: String,
    /// Hex of CKA_EC_POINT (public keys).
    point: String,
    access: String,
}

fn token_objects(conf: &Path, token: (&str, &str), kind: &str) -> Vec<Object> {
    let listed = pkcs11_tool(conf, token, &["--list-objects", "--type", kind]);
    let mut out: Vec<Object> = Vec::new();
    for line in listed.lines() {
        if line.ends_with("Key Object; EC") || line.contains("Key Object; EC ") {
            out.push(Object::default());
            continue;
        }
        let (Some(o), Some((k, v))) = (out.last_mut(), line.trim().split_once(':')) else { continue };
        let v = v.trim().to_string();
        match k {
            "label" => o.label = v,
            "ID" => o.id = v,
            "EC_POINT" => o.point = v,
            "Access" => o.access = v,
            _ => {}
        }
    }
    out
}

/// The label of the token's private key for the certificate `pem`, after
/// checking it is there, never extractable, with its public half beside it.
fn key_in_token(conf: &Path, token: (&str, &str), dir: &Path, pem: &Path) -> String {
    let o = run("openssl", &["x509", "-in", &path(pem), "-noout", "-pubkey", "-out", &path(&dir.join("p.pem"))], dir);
    assert!(o.status.success(), "{}", text(&o));
    let o = run("openssl", &["pkey", "-pubin", "-in", "p.pem", "-outform", "DER", "-out", "p.der"], dir);
    assert!(o.status.success(), "{}", text(&o));
    let spki = std::fs::read(dir.join("p.der")).expect("public key");
    // An uncompressed point is the last 65 (P-256) or 97 (P-384) bytes.
    let len = if spki.len() > 100 { 97 } else { 65 };
    let point: String = spki[spki.len() - len..].iter().map(|b| format!("{b:02x}")).collect();
    let public = token_objects(conf, token, "pubkey");
    let public = public
        .iter()
        .find(|o| o.point.ends_with(&point))
        .unwrap_or_else(|| panic!("the key of {} is not in token {}: {public:?}", pem.display(), token.0));
    let private = token_objects(conf, token, "privkey");
    let private = private
        .iter()
        .find(|o| o.id == public.id)
        .unwrap_or_else(|| panic!("no private key beside {public:?}: {private:?}"));
    assert!(private.access.contains("never extractable") && private.access.contains("sensitive"), "{private:?}");
    private.label.clone()
}

/// `openssl ocsp` about `pem` from CA `issuing`, trusting the root only, on
/// the server's clock.
fn ocsp(s: &Server, pem: &Path, issuing: &str) -> String {
    let url = format!("http://{}/ocsp", s.public);
    let (root, issuer) = (path(&s.data("ca/root.pem")), path(&s.data(&format!("ca/{issuing}.pem"))));
    let o = s.run(
        "openssl",
        &["ocsp", "-issuer", &issuer, "-cert", &path(pem), "-url", &url, "-CAfile", &root, "-verify_other", &issuer],
    );
    let said = text(&o);
    assert!(o.status.success() && said.contains("Response verify OK"), "openssl ocsp ({issuing}): {said}");
    said
}

fn serial_of(pem: &Path) -> String {
    let o = run("openssl", &["x509", "-in", &path(pem), "-noout", "-serial"], Path::new("."));
    text(&o).trim().to_lowercase()
}

async fn the_ca_keys_live_in_a_pkcs11_token(backend: Backend) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let conf = new_token(scratch.path());
    add_token(&conf, ROOT);
    // The root token's PIN is in a file `serve` could read but never asks
    // for; it goes away below, and `serve` does not notice.
    let root_pin = scratch.path().join("root.pin");
    std::fs::write(&root_pin, ROOT.1).expect("write");
    let conf_s = path(&conf);
    let env = [("SOFTHSM2_CONF", conf_s.as_str()), ("CONNECT_PKI_PKCS11_PIN", PIN)];
    let module_s = path(&module());
    let root_pin_s = path(&root_pin);
    let init = [
        "--pkcs11-module",
        module_s.as_str(),
        "--pkcs11-token",
        LABEL,
        "--pkcs11-root-token",
        ROOT.0,
        "--pkcs11-root-pin-file",
        root_pin_s.as_str(),
    ];
    let mut s = Server::start_init(backend, &init, &env).await;
    assert_eq!(s.init["pkcs11_token"], LABEL, "{}", s.init);
    assert_eq!(s.init["pkcs11_root_token"], ROOT.0, "{}", s.init);
    assert!(s.init["root_key"].as_str().is_some_and(|n| n.contains("never opens")), "{}", s.init);
    assert!(s.init["passphrase_file"].is_null(), "a passphrase file with the keys in a token: {}", s.init);
    assert_eq!(private_key_files(&s.data_dir), Vec::<PathBuf>::new(), "private key files in the data directory");

    // The serving token holds three keys and the root token the root's
    // alone, sensitive and never extractable, each the key of its certificate.
    let root_label = key_in_token(&conf, ROOT, scratch.path(), &s.data("ca/root.pem"));
    assert_eq!(root_label, "connect-pki root");
    for name in ["issuing", "ocsp", "tls"] {
        let label = key_in_token(&conf, SERVING, scratch.path(), &s.data(&format!("ca/{name}.pem")));
        assert_eq!(label, format!("connect-pki {name}"));
    }
    let listed = pkcs11_tool(&conf, SERVING, &["--list-objects", "--type", "privkey"]);
    assert_eq!(listed.matches("never extractable").count(), 3, "{listed}");
    assert!(!listed.contains("decrypt"), "a CA key usable for more than signing: {listed}");
    let in_root = pkcs11_tool(&conf, ROOT, &["--list-objects", "--type", "privkey"]);
    assert_eq!(in_root.matches("never extractable").count(), 1, "{in_root}");

    // Without the root token's PIN, the service runs as before.
    std::fs::remove_file(&root_pin).expect("remove the root PIN");
    s.stop();
    s.spawn(&env);

    // Issue: the admin's and a device's certificates chain to the root, and
    // the TLS handshake (signed in the token) lets them in.
    let admin = s.admin_pem();
    let d = device(&s, &admin, "hsm-device");
    let root = path(&s.data("ca/root.pem"));
    let o =
        s.run("openssl", &["verify", "-CAfile", &root, "-untrusted", &path(&s.data("ca/issuing.pem")), &path(&d.pem)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(handshake_ok(&s, &d.pem), "the device was refused");
    assert!(ocsp(&s, &d.pem, "issuing").contains(": good"));

    // Revoke: the OCSP answer and the CRL, both signed in the token, say so.
    let (status, body) = revoke(&s, &admin, &d.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    assert!(!handshake_ok(&s, &d.pem), "a revoked device got in");
    assert!(ocsp(&s, &d.pem, "issuing").contains(": revoked"));
    let crl = s.scratch("issuing.crl");
    let (_, status, _) = s.curl_public("/crl/issuing.crl", &["-o", &path(&crl)]);
    assert_eq!(status, 200);
    let facts = s.python_json("ocsp_crl_facts.py", &["crl", &path(&crl), &path(&s.data("ca/issuing.pem"))]);
    assert_eq!(facts["signature_valid"], true, "{facts}");
    assert_eq!(facts["revoked"][&d.serial], "key_compromise", "{facts}");

    // A rollover needs the root token's PIN and says so; with it, it signs
    // the new issuing CA with the root key in the root token and makes the
    // new CA's and OCSP signer's keys in the serving token.
    let mut args = vec!["ca".to_string(), "rollover".into(), "--data-dir".into(), path(&s.data_dir)];
    if backend == Backend::Postgres {
        args.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let o = Command::new(binary()).args(&args).envs(env).output().expect("rollover runs");
    assert!(!o.status.success() && text(&o).contains(ROOT.0), "{}", text(&o));
    let o = Command::new(binary())
        .args(&args)
        .envs(env)
        .env("CONNECT_PKI_PKCS11_ROOT_PIN", ROOT.1)
        .output()
        .expect("rollover runs");
    assert!(o.status.success() && text(&o).contains("issuing-2"), "{}", text(&o));
    s.stop();
    s.spawn(&env);
    let d2 = device(&s, &admin, "hsm-device-2");
    let o = s.run("openssl", &["x509", "-in", &path(&d2.pem), "-noout", "-issuer"]);
    assert!(text(&o).contains("CONNECT Issuing CA 2"), "{}", text(&o));
    assert!(ocsp(&s, &d2.pem, "issuing-2").contains(": good"));
    for name in ["issuing-2", "ocsp-2"] {
        let label = key_in_token(&conf, SERVING, scratch.path(), &s.data(&format!("ca/{name}.pem")));
        assert_eq!(label, format!("connect-pki {name}"));
    }

    // 400 days on, the OCSP signers and the TLS certificate are renewed with
    // new keys in the token; the answers verify with the root alone.
    let (ocsp_before, tls_before) = (serial_of(&s.data("ca/ocsp-2.pem")), serial_of(&s.data("ca/tls.pem")));
    s.stop();
    s.spawn_at_env(FakeTime::ahead(time::Duration::days(400)), &[], &env);
    assert!(s.log_contains("service certificate renewed"), "{}", s.log());
    assert_ne!(serial_of(&s.data("ca/ocsp-2.pem")), ocsp_before, "the OCSP signer was not renewed");
    assert_ne!(serial_of(&s.data("ca/tls.pem")), tls_before, "the TLS certificate was not renewed");
    assert!(ocsp(&s, &d2.pem, "issuing-2").contains(": good"));
    assert!(ocsp(&s, &d.pem, "issuing").contains(": revoked"));
    for name in ["ocsp", "ocsp-2", "tls"] {
        key_in_token(&conf, SERVING, scratch.path(), &s.data(&format!("ca/{name}.pem")));
    }
    assert_eq!(private_key_files(&s.data_dir), Vec::<PathBuf>::new(), "private key files in the data directory");
}
both_backends!(the_ca_keys_live_in_a_pkcs11_token);

/// A wrong PIN, or a token that is not there, stops `serve` at once with a
/// message that says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_or_a_missing_token_is_named() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let conf = new_token(scratch.path());
    let conf_s = path(&conf);
    let module_s = path(&module());
    let init = ["--pkcs11-module", module_s.as_str(), "--pkcs11-token", LABEL];
    let mut s =
        Server::start_init(Backend::Sqlite, &init, &[("SOFTHSM2_CONF", &conf_s), ("CONNECT_PKI_PKCS11_PIN", PIN)])
            .await;
    s.stop();
    let serve = |env: &[(&str, &str)]| {
        Command::new(binary())
            .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
            .arg(&s.data_dir)
            .envs(env.iter().copied())
            .output()
            .expect("serve runs")
    };
    let o = serve(&[("SOFTHSM2_CONF", &conf_s), ("CONNECT_PKI_PKCS11_PIN", "9999")]);
    assert!(!o.status.success() && text(&o).contains("PIN"), "{}", text(&o));
    let o = serve(&[("SOFTHSM2_CONF", &conf_s)]);
    assert!(!o.status.success() && text(&o).contains("CONNECT_PKI_PKCS11_PIN"), "{}", text(&o));
    // A token with the same label and PIN but none of our keys (replaced,
    // or restored from the wrong backup).
    let other = tempfile::tempdir().expect("tempdir");
    let empty = new_token(other.path());
    let o = serve(&[("SOFTHSM2_CONF", &path(&empty)), ("CONNECT_PKI_PKCS11_PIN", PIN)]);
    assert!(!o.status.success() && text(&o).contains("not in token"), "{}", text(&o));
}
