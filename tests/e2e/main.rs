//! End-to-end: the real binary, on random ports, checked with openssl, curl
//! and Python `cryptography`.

mod audit;
mod backup;
mod consistency;
mod deb;
mod emergency;
mod est;
mod feed;
mod haproxy;
mod hardening;
mod hsm;
mod incident;
mod instances;
mod lifecycle;
mod mdm;
mod nginx;
mod pages_city;
mod pages_manager;
mod proxy;
mod races;
mod revocation;
mod rollover;
mod scenarios;
mod scep;
mod schema;
mod secrets;
mod service_certs;

use std::path::Path;

use connect_pki_ca::issue::to_pem;
use connect_pki_ca::{DeviceSubject, KeyKind, PrivateKey};
use connect_pki_domain::{DeviceId, FacilityId, UserId};
use connect_pki_e2e::{Backend, Server, binary, both_backends, python_json, run, text};
use serde_json::Value;

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = run("openssl", args, dir);
    (out.status.success(), text(&out))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The whole bootstrap path, on each backend: init's PKCS#12 opens with plain
/// `openssl pkcs12`, its certificate chains to the root, a second X.509
/// implementation confirms the profile, and `whoami` names the admin.
async fn bootstrap_admin_is_usable_end_to_end(backend: Backend) {
    let s = Server::start(backend).await;
    let dir = s.dir.path();
    let pem = s.admin_pem();
    let pem_s = pem.display().to_string();
    let root = s.data("ca/root.pem").display().to_string();
    let issuing = s.data("ca/issuing.pem").display().to_string();

    let (ok, out) =
        openssl(dir, &["verify", "-CAfile", &root, "-untrusted", &issuing, "-purpose", "sslclient", &pem_s]);
    assert!(ok && out.contains(": OK"), "openssl verify: {out}");

    let leaf = s.scratch("admin-cert.pem").display().to_string();
    let (ok, out) = openssl(dir, &["x509", "-in", &pem_s, "-out", &leaf]);
    assert!(ok, "{out}");
    let facts = python_json("x509_facts.py", &[&leaf, &issuing], dir);
    assert_eq!(facts["signature_verified_by_issuer"], true);
    assert_eq!(facts["client_auth"], true, "{facts}");
    assert_eq!(facts["server_auth"], false, "{facts}");
    assert_eq!(facts["is_ca"], false, "{facts}");
    assert_eq!(facts["digital_signature"], true, "{facts}");
    assert_eq!(facts["public_key"], "ec");
    assert_eq!(facts["serial_positive"], true, "serial is positive: {facts}");
    let bits = facts["serial_bits"].as_u64().expect("bits");
    assert!((64..=128).contains(&bits) && bits >= 120, "serial has {bits} bits");
    let san = facts["san_uris"][0].as_str().expect("a SAN URI");
    assert!(san.starts_with("urn:connect-pki:facility:1:user:1:device:1"), "{san}");
    assert_eq!(facts["cdp_uris"][0], "http://127.0.0.1:8080/crl/issuing.crl");
    assert_eq!(facts["ocsp_uris"][0], "http://127.0.0.1:8080/ocsp");
    assert_eq!(facts["ca_issuers_uris"][0], "http://127.0.0.1:8080/ca/issuing.crt");
    let serial = s.init["bootstrap"]["serial"].as_str().expect("serial");
    let (_, out) = openssl(dir, &["x509", "-in", &leaf, "-noout", "-serial"]);
    assert_eq!(out.trim().to_lowercase(), format!("serial={serial}"));

    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", &pem_s]);
    assert_eq!((code, status), (0, 200), "{body}");
    let me = json(&body);
    assert_eq!(me["role"], "admin_division");
    assert_eq!(me["login_id"], "admin");
    assert_eq!(me["serial"], serial);
    assert_eq!(me["facility_id"], 1);
    assert!(me["not_after"].as_str().is_some_and(|t| t.ends_with('Z')), "{me}");

    let (code, status, _) = s.curl_public("/healthz", &[]);
    assert_eq!((code, status), (0, 200));
}
both_backends!(bootstrap_admin_is_usable_end_to_end);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_certificate_of_ours_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let dir = s.dir.path();

    // No certificate: the connection is allowed, the API answers 401 in JSON.
    let (code, status, body) = s.curl_api("/api/v1/whoami", &[]);
    assert_eq!((code, status), (0, 401), "{body}");
    assert_eq!(json(&body)["error"]["code"], "client_certificate_required");

    // Self-signed: refused in the handshake.
    let (ok, out) = openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=admin",
            "-days",
            "1",
        ],
    );
    assert!(ok, "{out}");
    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", "self.pem", "--key", "self.key"]);
    assert!(code != 0 && status == 0, "self-signed accepted: {code} {status} {body}");

    // A foreign CA, even with clientAuth and the admin's own serial number.
    let serial = format!("0x{}", s.init["bootstrap"]["serial"].as_str().expect("serial"));
    foreign_ca_device(dir, &serial);
    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", "fdev.pem", "--key", "fdev.key"]);
    assert!(code != 0 && status == 0, "foreign CA accepted: {code} {status} {body}");
    assert!(s.log_contains("TLS handshake refused"), "{}", s.log());
}

/// A CA of someone else's with our issuing CA's name, and a device
/// certificate from it with clientAuth and `serial`: fdev.pem and fdev.key in `dir`.
fn foreign_ca_device(dir: &Path, serial: &str) {
    std::fs::write(dir.join("ext.cnf"), "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
        .expect("write");
    for args in [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "fca.key",
            "-out",
            "fca.pem",
            "-subj",
            "/CN=CONNECT Issuing CA 1",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ][..],
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "fdev.key",
            "-out",
            "fdev.csr",
            "-subj",
            "/CN=admin",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "fdev.csr",
            "-CA",
            "fca.pem",
            "-CAkey",
            "fca.key",
            "-set_serial",
            serial,
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-out",
            "fdev.pem",
        ],
    ] {
        let (ok, out) = openssl(dir, args);
        assert!(ok, "{out}");
    }
}

/// Certificates from our own CA that must still not get in: one that has
/// expired and one the database does not know (it may have been revoked
/// since: restored from before it, a replica that missed it) — both refused
/// in the handshake, failing closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_unregistered_certificates_of_our_ca_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let dir = s.dir.path();
    let ca = connect_pki_server::datadir::DataDir::new(&s.data_dir).load("http://127.0.0.1:8080").expect("CA loads");
    let admin =
        DeviceSubject { facility: FacilityId(1), user: UserId(1), device: DeviceId(1), login_id: "admin".into() };
    let now = time::OffsetDateTime::now_utc();
    for (name, at) in [("expired", now - time::Duration::days(400)), ("unknown", now)] {
        let key = PrivateKey::generate(KeyKind::P256).expect("key");
        let cert = ca.issuing.issue_device(&key.public_key_der(), &admin, at).expect("issue");
        let pem = format!("{}{}", cert.pem(), to_pem("PRIVATE KEY", key.pkcs8_der()));
        std::fs::write(dir.join(format!("{name}.pem")), pem).expect("write");
    }
    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", "expired.pem"]);
    assert!(code != 0 && status == 0, "expired certificate accepted: {code} {status} {body}");
    assert!(s.log_contains("certificate expired"), "{}", s.log());

    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", "unknown.pem"]);
    assert!(code != 0 && status == 0, "a certificate the database does not know was accepted: {code} {status} {body}");
    // A registered certificate of the same CA gets in: the refusal was the database's verdict.
    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", &s.admin_pem().display().to_string()]);
    assert_eq!((code, status), (0, 200), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_certificates_are_published_as_pem_and_der() {
    let s = Server::start(Backend::Sqlite).await;
    let dir = s.dir.path();
    let root_file = std::fs::read_to_string(s.data("ca/root.pem")).expect("root");
    let issuing_file = std::fs::read_to_string(s.data("ca/issuing.pem")).expect("issuing");

    let (_, status, root) = s.curl_public("/ca/root.pem", &[]);
    assert_eq!((status, root.as_str()), (200, root_file.as_str()));
    let (_, status, chain) = s.curl_public("/ca/chain.pem", &[]);
    assert_eq!((status, chain), (200, format!("{issuing_file}{root_file}")));
    let (_, status, headers) = s.curl_public("/ca/issuing.crt", &["-o", "issuing.der", "-D", "-"]);
    assert_eq!(status, 200);
    assert!(headers.to_lowercase().contains("content-type: application/pkix-cert"), "{headers}");
    let (ok, pem) = openssl(dir, &["x509", "-inform", "DER", "-in", "issuing.der"]);
    assert!(ok && pem.trim() == issuing_file.trim(), "{pem}");
    let (_, status, _) = s.curl_public("/ca/root.crt", &["-o", "root.der"]);
    assert_eq!(status, 200);
    let (ok, out) = openssl(dir, &["x509", "-inform", "DER", "-in", "root.der", "-noout", "-fingerprint", "-sha256"]);
    let want = s.init["root_ca_sha256"].as_str().expect("fingerprint");
    assert!(ok && out.contains(want), "init printed {want}, openssl says {out}");

    let (_, status, body) = s.curl_public("/no/such/thing", &[]);
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"]["code"], "not_found");
}

/// CA keys are encrypted at rest (openssl opens them with the passphrase and
/// not without), files are private, and nothing secret reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_encrypted_at_rest_and_never_logged() {
    let mut s = Server::start(Backend::Sqlite).await;
    let dir = s.dir.path();
    let passphrase = std::fs::read_to_string(s.data("passphrase")).expect("passphrase file");
    let pass_arg = format!("pass:{}", passphrase.trim());
    for key in ["root", "issuing", "ocsp", "tls"] {
        let path = s.data(&format!("ca/{key}.key.pem")).display().to_string();
        let text = std::fs::read_to_string(&path).expect("key file");
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{key} key is not encrypted");
        let (ok, _) = openssl(dir, &["pkey", "-in", &path, "-passin", "pass:wrong", "-noout"]);
        assert!(!ok, "{key} key opened with a wrong passphrase");
        let (ok, out) = openssl(dir, &["pkey", "-in", &path, "-passin", &pass_arg, "-noout"]);
        assert!(ok, "{key} key does not open with the passphrase: {out}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key} key file mode");
    }
    for private in ["passphrase", "bootstrap/admin.p12", "connect-pki.db", "config.toml"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data(private)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{private} mode");
    }
    // A request that really ran, so its log lines are there to inspect.
    let (code, status, body) = s.curl_api("/api/v1/whoami", &["--cert", &s.admin_pem().display().to_string()]);
    assert_eq!((code, status), (0, 200), "{body}");
    s.stop();
    let log = s.log();
    assert!(!log.contains(passphrase.trim()), "passphrase in the log");
    assert!(!log.contains(s.p12_password()), "PKCS#12 password in the log");
    assert!(!log.contains("PRIVATE KEY"), "key material in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_from_the_environment_is_never_written_down() {
    let env = [("CONNECT_PKI_PASSPHRASE", "a passphrase kept in a vault")];
    let mut s = Server::start_with(Backend::Sqlite, &env).await;
    assert!(!s.data("passphrase").exists());
    assert_eq!(s.init["passphrase_file"], Value::Null);
    let (_, status, _) = s.curl_api("/api/v1/whoami", &["--cert", &s.admin_pem().display().to_string()]);
    assert_eq!(status, 200);
    s.stop();

    // Without the passphrase the service refuses to start, and says why.
    let out = std::process::Command::new(binary())
        .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&s.data_dir)
        .env_remove("CONNECT_PKI_PASSPHRASE")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(text(&out).contains("CONNECT_PKI_PASSPHRASE"), "{}", text(&out));
    let wrong = std::process::Command::new(binary())
        .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&s.data_dir)
        .env("CONNECT_PKI_PASSPHRASE", "not it")
        .output()
        .expect("runs");
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("wrong passphrase"), "{}", text(&wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_an_existing_data_directory_and_leaves_nothing_on_failure() {
    let s = Server::start(Backend::Sqlite).await;
    let before = std::fs::read(s.data("ca/root.pem")).expect("root");
    let out = s.run(&binary().display().to_string(), &["init", "--data-dir", &s.data_dir.display().to_string()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("refusing to touch it"), "{}", text(&out));
    assert_eq!(std::fs::read(s.data("ca/root.pem")).expect("root"), before, "existing CA was modified");

    // A database that cannot be reached: init fails and leaves no directory.
    let target = s.scratch("never");
    let out = s.run(
        &binary().display().to_string(),
        &["init", "--data-dir", &target.display().to_string(), "--database-url", "postgres://nobody@127.0.0.1:1/x"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot connect"), "{}", text(&out));
    assert!(!target.exists(), "failed init left {} behind", target.display());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".init-"))
        .collect();
    assert!(leftovers.is_empty(), "staging directories left: {leftovers:?}");

    // A bad public URL is refused before anything is created.
    let out = s.run(
        &binary().display().to_string(),
        &["init", "--data-dir", &target.display().to_string(), "--public-url", "ftp://x"],
    );
    assert!(!out.status.success() && text(&out).contains("http:// or https://"), "{}", text(&out));
    assert!(!target.exists());
}

/// The README's run command on a fresh machine: `serve` with no data
/// directory initialises one, prints the admin's credentials once, and serves.
/// SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_initialises_on_first_run_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready.json");
    let printed = dir.path().join("stdout.txt");
    let mut child = connect_pki_e2e::Spawned::start(
        std::process::Command::new(binary())
            .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .current_dir(dir.path())
            .stdout(std::fs::File::create(&printed).expect("stdout file"))
            .stderr(std::process::Stdio::null()),
    )
    .expect("serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "serve never became ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dir.path().join("connect-pki-data/ca/issuing.pem").exists(), "default data directory not created");
    let status = child.stop(std::time::Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "exit status after SIGTERM: {status:?}");
    let stdout = std::fs::read_to_string(&printed).expect("stdout");
    assert!(stdout.contains("PKCS#12 password") && stdout.contains("admin.p12"), "{stdout}");
}

/// Each setting is taken from the defaults, then config.toml, then `--set`,
/// then its own flag: the last one given wins. Seen from outside in the CRL
/// the binary serves (nextUpdate − thisUpdate = `crl_next_update_hours`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_defaults_then_config_toml_then_set_then_flags() {
    let mut s = Server::start(Backend::Sqlite).await;
    let hours = |s: &Server| revocation::crl(s)["next_update_after_last"].as_f64().expect("a number") / 3600.0;
    assert_eq!(hours(&s), 24.0, "the default");
    let config = s.data("config.toml");
    let mut written = std::fs::read_to_string(&config).expect("init wrote config.toml");
    written.push_str("crl_next_update_hours = 48\n");
    std::fs::write(&config, written).expect("write config.toml");
    for (args, want) in [
        (&[][..], 48.0),
        (&["--set", "crl_next_update_hours=36"][..], 36.0),
        (&["--set", "crl_next_update_hours=36", "--crl-next-update-hours", "12"][..], 12.0),
    ] {
        s.stop();
        s.spawn_args(args);
        assert_eq!(hours(&s), want, "serve {args:?}");
    }
    s.stop();
    let out = std::process::Command::new(binary())
        .args(["serve", "--data-dir"])
        .arg(s.data(""))
        .args(["--set", "crl_next_update_hourz=36"])
        .output()
        .expect("serve runs");
    assert!(!out.status.success(), "a misspelt key was accepted");
    assert!(text(&out).contains("crl_next_update_hourz"), "the error names the key: {}", text(&out));
}
