//! Revocation (issue 4): effective before the call returns, and visible to
//! clients no one here wrote — `openssl ocsp`, `openssl crl`/`verify
//! -crl_check`, Python `cryptography`, curl's handshake — on both backends.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use connect_pki_e2e::fixtures::{Device, PASSWORD, another_device, device};
use connect_pki_e2e::{Backend, Server, both_backends, run, text};
use serde_json::{Value, json};

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whether a TLS handshake with this certificate gets a 200 from whoami.
pub(crate) fn handshake_ok(s: &Server, pem: &Path) -> bool {
    let (code, status, _) = s.curl_api("/api/v1/whoami", &["--cert", &path(pem)]);
    code == 0 && status == 200
}

/// `openssl ocsp` against our responder (POST, with a nonce): the status line
/// for the certificate, after checking "Response verify OK".
fn openssl_ocsp(s: &Server, pem: &Path, extra: &[&str]) -> String {
    let url = format!("http://{}/ocsp", s.public);
    let (issuing, ocsp) = (path(&s.data("ca/issuing.pem")), path(&s.data("ca/ocsp.pem")));
    let pem_s = path(pem);
    let mut args = vec!["ocsp", "-issuer", &issuing, "-cert", &pem_s, "-url", &url, "-VAfile", &ocsp];
    args.extend_from_slice(extra);
    let o = s.run("openssl", &args);
    let out = text(&o);
    assert!(o.status.success() && out.contains("Response verify OK"), "openssl ocsp: {out}");
    out
}

pub(crate) fn ocsp_status(s: &Server, pem: &Path) -> String {
    ocsp_status_with(s, pem, &[])
}

/// Like [`ocsp_status`], with extra `openssl ocsp` options.
pub(crate) fn ocsp_status_with(s: &Server, pem: &Path, extra: &[&str]) -> String {
    let out = openssl_ocsp(s, pem, extra);
    let line = out.lines().find(|l| l.starts_with(&path(pem))).unwrap_or_default();
    let status = line.rsplit(':').next().unwrap_or_default().trim().to_string();
    match out.lines().find(|l| l.trim_start().starts_with("Reason:")) {
        Some(r) => format!("{status} {}", r.trim().trim_start_matches("Reason: ")),
        None => status,
    }
}

/// The served CRL, checked with Python cryptography: serial → reason.
pub(crate) fn crl(s: &Server) -> Value {
    let file = s.scratch("crl.der");
    let (_, status, _) = s.curl_public("/crl/issuing.crl", &["-o", &path(&file)]);
    assert_eq!(status, 200);
    let facts = s.python_json("ocsp_crl_facts.py", &["crl", &path(&file), &path(&s.data("ca/issuing.pem"))]);
    assert_eq!(facts["signature_valid"], true, "{facts}");
    facts
}

pub(crate) fn revoke(s: &Server, admin: &Path, serial: &str, reason: &str) -> (u16, Value) {
    s.api("POST", &format!("/api/v1/certificates/{serial}/revoke"), Some(admin), Some(&json!({"reason": reason})))
}

async fn revocation_takes_effect_before_the_call_returns(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "keiko");
    assert!(handshake_ok(&s, &d.pem));
    assert_eq!(ocsp_status(&s, &d.pem), "good");
    let before = crl(&s);
    assert!(before["revoked"].get(&d.serial).is_none());

    // A keep-alive connection opened before the revocation.
    let mut keeper = connect_pki_e2e::Spawned::start(
        s.command("python3")
            .arg(connect_pki_e2e::workspace().join("tests/py/keepalive.py"))
            .args(["127.0.0.1", s.api.rsplit(':').next().expect("port"), &path(&d.pem), &path(&s.data("ca/root.pem"))])
            .stdout(std::process::Stdio::piped()),
    )
    .expect("python3 runs");
    let mut reader = std::io::BufReader::new(keeper.child().stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("ready line");
    assert_eq!(line.trim(), "ready 200");

    let (status, out) = revoke(&s, &admin, &d.serial, "keyCompromise");
    let returned = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["status"].as_str(), out["reason"].as_str(), out["changed"].as_bool()),
        (Some("revoked"), Some("keyCompromise"), Some(true))
    );

    // Right after the call: the handshake, OCSP (POST with nonce, and GET) and the CRL.
    assert!(!handshake_ok(&s, &d.pem), "revoked certificate still accepted");
    assert_eq!(ocsp_status(&s, &d.pem), "revoked keyCompromise");
    ocsp_get_says_revoked(&s, &d);

    crl_lists_it(&s, &d, &before);

    // The connection opened before: closed within 1 s of the call returning.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("keepalive output");
    keeper.reap();
    let k: Value = serde_json::from_str(rest.trim()).expect("keepalive JSON");
    assert_eq!(k["closed"], true, "connection still open: {k}");
    let delay = k["closed_at"].as_f64().expect("time") - returned;
    assert!(delay < 1.0, "connection closed {delay:.3} s after the revoke call returned");

    repeating_is_safe(&s, &admin, &d);
}
both_backends!(revocation_takes_effect_before_the_call_returns);

/// An OCSP GET (no nonce) for the revoked certificate: cacheable briefly,
/// signed by our responder, and saying keyCompromise to openssl and to
/// Python cryptography.
fn ocsp_get_says_revoked(s: &Server, d: &Device) {
    let req = s.scratch("req.der");
    let (issuing, ocsp) = (path(&s.data("ca/issuing.pem")), path(&s.data("ca/ocsp.pem")));
    let o =
        s.run("openssl", &["ocsp", "-issuer", &issuing, "-cert", &path(&d.pem), "-no_nonce", "-reqout", &path(&req)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = s.run("openssl", &["base64", "-A", "-in", &path(&req)]);
    let b64 = String::from_utf8_lossy(&o.stdout).replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let resp = s.scratch("resp.der");
    let (_, status, headers) = s.curl_public(&format!("/ocsp/{b64}"), &["-o", &path(&resp), "-D", "-"]);
    assert_eq!(status, 200);
    let headers = headers.to_lowercase();
    assert!(headers.contains("content-type: application/ocsp-response"), "{headers}");
    let max_age: i64 = headers
        .split("max-age=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("max-age");
    assert!((1..=60).contains(&max_age), "{headers}");
    let o = s.run(
        "openssl",
        &["ocsp", "-respin", &path(&resp), "-issuer", &issuing, "-cert", &path(&d.pem), "-VAfile", &ocsp, "-no_nonce"],
    );
    let out = text(&o);
    assert!(
        out.contains("Response verify OK") && out.contains(": revoked") && out.contains("keyCompromise"),
        "GET: {out}"
    );
    let facts = s.python_json("ocsp_crl_facts.py", &["ocsp", &path(&resp), &issuing]);
    assert_eq!(facts["signature_verified"], true, "{facts}");
    assert_eq!(facts["responder_has_ocsp_signing"], true);
    assert_eq!(facts["responder_nocheck"], true);
    assert_eq!(facts["responses"][0]["status"], "REVOKED");
    assert_eq!(facts["responses"][0]["reason"], "key_compromise");
    assert_eq!(facts["responses"][0]["validity_seconds"], 60.0);
}

/// The served CRL lists the revocation with a higher number, and openssl
/// refuses the certificate with it.
pub(crate) fn crl_lists_it(s: &Server, d: &Device, before: &Value) {
    let after = crl(s);
    assert_eq!(after["revoked"][&d.serial], "key_compromise", "{after}");
    assert!(after["crl_number"].as_u64() > before["crl_number"].as_u64(), "CRL number did not increase");
    assert_eq!(after["next_update_after_last"], 86400.0);
    let crl_pem = s.scratch("crl.pem");
    let o = s.run(
        "openssl",
        &["crl", "-inform", "DER", "-in", &path(&s.scratch("crl.der")), "-out", &path(&crl_pem), "-text"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = s.run("openssl", &["crl", "-in", &path(&crl_pem), "-noout", "-text"]);
    let out = text(&o).to_lowercase();
    assert!(out.contains("version 2") && out.contains(&d.serial) && out.contains("key compromise"), "{out}");
    let root = path(&s.data("ca/root.pem"));
    let issuing = path(&s.data("ca/issuing.pem"));
    let o = s.run(
        "openssl",
        &["verify", "-crl_check", "-CAfile", &root, "-untrusted", &issuing, "-CRLfile", &path(&crl_pem), &path(&d.pem)],
    );
    assert!(!o.status.success() && text(&o).contains("certificate revoked"), "{}", text(&o));
}

/// Repeating is safe; a revoked certificate cannot come back.
fn repeating_is_safe(s: &Server, admin: &Path, d: &Device) {
    let (status, again) = revoke(s, admin, &d.serial, "affiliationChanged");
    assert_eq!(status, 200);
    assert_eq!((again["reason"].as_str(), again["changed"].as_bool()), (Some("keyCompromise"), Some(false)));
    assert_eq!(again["revoked_at"], out_revoked_at(&out_of(s, admin, &d.serial)));
    let (status, out) = s.api("POST", &format!("/api/v1/certificates/{}/release", d.serial), Some(admin), None);
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("invalid_transition")), "{out}");
    let (status, out) = revoke(s, admin, &d.serial, "certificateHold");
    assert_eq!(status, 422, "{out}");
    let (_, log) = s.api("GET", "/api/v1/audit?limit=10000", Some(admin), None);
    let revocations = log
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "certificate.revoke" && r["target"] == format!("certificate:{}", d.serial))
        .count();
    assert_eq!(revocations, 1, "the audit log records the revocation once");
}

fn out_of(s: &Server, admin: &Path, serial: &str) -> Value {
    s.api("GET", &format!("/api/v1/certificates/{serial}"), Some(admin), None).1
}

fn out_revoked_at(v: &Value) -> Value {
    v["revoked_at"].clone()
}

/// Hold and release, lost device, retirement (now and scheduled), deletion
/// and facility closure all show in OCSP, the CRL and the handshake.
async fn every_operation_shows_everywhere(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();

    // Hold, then release.
    let a = device(&s, &admin, "hold.me");
    let (status, out) = s.api("POST", &format!("/api/v1/certificates/{}/hold", a.serial), Some(&admin), None);
    assert_eq!((status, out["status"].as_str()), (200, Some("on_hold")), "{out}");
    assert!(!handshake_ok(&s, &a.pem));
    assert_eq!(ocsp_status(&s, &a.pem), "revoked certificateHold");
    assert_eq!(crl(&s)["revoked"][&a.serial], "certificate_hold");
    let (status, out) = s.api("POST", &format!("/api/v1/certificates/{}/release", a.serial), Some(&admin), None);
    assert_eq!((status, out["status"].as_str()), (200, Some("valid")), "{out}");
    assert!(handshake_ok(&s, &a.pem), "released certificate refused");
    assert_eq!(ocsp_status(&s, &a.pem), "good");
    assert!(crl(&s)["revoked"].get(&a.serial).is_none());

    // Lost device: every certificate of it, keyCompromise.
    let b = device(&s, &admin, "lost.it");
    let (status, out) = s.api("POST", &format!("/api/v1/devices/{}/lost", b.device_id), Some(&admin), None);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["revoked_serials"], json!([b.serial]));
    assert!(!handshake_ok(&s, &b.pem));
    assert_eq!(ocsp_status(&s, &b.pem), "revoked keyCompromise");
    assert_eq!(crl(&s)["revoked"][&b.serial], "key_compromise");

    // Retirement now: every device of the person, affiliationChanged; then deletion.
    let c1 = device(&s, &admin, "retires.now");
    let c2 = another_device(&s, &admin, c1.user_id, "retires.now", "retires.now-2");
    let (status, out) = s.api("POST", &format!("/api/v1/users/{}/retire", c1.user_id), Some(&admin), None);
    assert_eq!((status, out["status"].as_str()), (200, Some("retired")), "{out}");
    assert_eq!(out["revoked_serials"].as_array().map(Vec::len), Some(2));
    let list = crl(&s);
    for c in [&c1, &c2] {
        assert!(!handshake_ok(&s, &c.pem));
        assert_eq!(ocsp_status(&s, &c.pem), "revoked affiliationChanged");
        assert_eq!(list["revoked"][&c.serial], "affiliation_changed");
    }
    let (status, out) = s.api("DELETE", &format!("/api/v1/users/{}", c1.user_id), Some(&admin), None);
    assert_eq!((status, out["status"].as_str(), out["login_id"].clone()), (200, Some("deleted"), Value::Null), "{out}");
    let (_, log) = s.api("GET", &format!("/api/v1/audit?user_id={}", c1.user_id), Some(&admin), None);
    assert!(log.as_array().expect("audit").len() >= 5, "audit trail of a deleted user: {log}");
    let d = device(&s, &admin, "not.retired");
    let (status, out) = s.api("DELETE", &format!("/api/v1/users/{}", d.user_id), Some(&admin), None);
    assert_eq!(status, 409, "an active user was deleted: {out}");

    // Scheduled retirement: nothing until the time, then everything.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = at.format(&time::format_description::well_known::Rfc3339).expect("format");
    let (status, out) =
        s.api("POST", &format!("/api/v1/users/{}/retire", d.user_id), Some(&admin), Some(&json!({"at": at})));
    assert_eq!((status, out["status"].as_str()), (200, Some("scheduled")), "{out}");
    assert_eq!(ocsp_status(&s, &d.pem), "good");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ocsp_status(&s, &d.pem) == "good" {
        assert!(Instant::now() < deadline, "scheduled retirement never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ocsp_status(&s, &d.pem), "revoked affiliationChanged");
    assert!(!handshake_ok(&s, &d.pem));

    facility_closure_revokes_everyone_in_it(&s, &admin);

    // And nothing valid is left that should not be.
    let bin = path(connect_pki_e2e::binary());
    let mut args = vec!["check".to_string(), "--data-dir".into(), path(&s.data_dir)];
    if backend == Backend::Postgres {
        args.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = s.run(&bin, &refs);
    assert!(o.status.success(), "{}", text(&o));
}
both_backends!(every_operation_shows_everywhere);

/// Facility closure: cessationOfOperation for everyone in it.
fn facility_closure_revokes_everyone_in_it(s: &Server, admin: &Path) {
    let (status, created) = s.public_api(
        "POST",
        "/api/v1/applications",
        Some(&json!({
        "name": "閉所する施設", "kind": "internal", "address": "千歳市", "department": null,
        "manager": {"name": "閉所 太郎", "login_id": "closing", "email": "c@example.test", "phone": "0123-00-0000"},
        "purpose_attested": true, "terms_version": "2026-04-01"})),
    );
    assert_eq!(status, 201, "{created}");
    let (_, approval) = s.api("POST", &format!("/api/v1/applications/{}/approve", created["id"]), Some(admin), None);
    let manager =
        s.enroll_generated(approval["enrollment_code"]["code"].as_str().expect("code"), Some(PASSWORD), "closing");
    assert!(handshake_ok(s, &manager));
    let (status, out) =
        s.api("POST", &format!("/api/v1/facilities/{}/close", approval["facility_id"]), Some(admin), None);
    assert_eq!((status, out["facility"]["status"].as_str()), (200, Some("closed")), "{out}");
    assert!(!handshake_ok(s, &manager));
    assert_eq!(ocsp_status(s, &manager), "revoked cessationOfOperation");
}

/// Garbage, truncated, oversized and foreign requests get OCSP error
/// responses; several CertIDs, SHA-1 and SHA-256 CertIDs, unknown serials
/// and nonces are answered as RFC 6960 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_answers_every_request_with_an_ocsp_response() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let good = device(&s, &admin, "good.one");
    let bad = device(&s, &admin, "bad.one");
    assert_eq!(revoke(&s, &admin, &bad.serial, "keyCompromise").0, 200);
    let issuing = path(&s.data("ca/issuing.pem"));

    let status_of = |file: &str| ocsp_response_status(&s, file);
    let post = |body_file: &Path, out: &str| post_ocsp(&s, body_file, out);
    // Garbage, truncated, oversized.
    let garbage = s.scratch("garbage.der");
    std::fs::write(&garbage, b"this is not DER at all").expect("write");
    assert_eq!(post(&garbage, "g.der"), 200);
    assert_eq!(status_of("g.der"), "MALFORMED_REQUEST");
    let req = s.scratch("two.der");
    let o = s.run(
        "openssl",
        &["ocsp", "-issuer", &issuing, "-cert", &path(&good.pem), "-cert", &path(&bad.pem), "-reqout", &path(&req)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let full = std::fs::read(&req).expect("req");
    let truncated = s.scratch("truncated.der");
    std::fs::write(&truncated, &full[..full.len() / 2]).expect("write");
    assert_eq!(post(&truncated, "t.der"), 200);
    assert_eq!(status_of("t.der"), "MALFORMED_REQUEST");
    let huge = s.scratch("huge.der");
    std::fs::write(&huge, vec![0x30u8; 64 * 1024]).expect("write");
    assert_eq!(post(&huge, "h.der"), 200);
    assert_eq!(status_of("h.der"), "MALFORMED_REQUEST");
    let (_, status, _) = s.curl_public("/ocsp/%%%not-base64%%%", &["-o", "b.der"]);
    assert_eq!(status, 200);
    assert_eq!(status_of("b.der"), "MALFORMED_REQUEST");

    foreign_issuer_is_unauthorized(&s);

    // Two certificates in one request, with a nonce: each answered; nonce echoed
    // (openssl reports "Nonce Verify error" otherwise) and no caching allowed.
    let out = openssl_ocsp(&s, &good.pem, &["-cert", &path(&bad.pem), "-resp_text"]);
    assert!(out.contains(&format!("{}: good", path(&good.pem))), "{out}");
    assert!(out.contains(&format!("{}: revoked", path(&bad.pem))), "{out}");
    assert!(!out.contains("Nonce Verify error") && out.contains("OCSP Nonce"), "{out}");
    // SHA-256 CertIDs.
    let out = openssl_ocsp(&s, &good.pem, &["-sha256", "-cert", &path(&bad.pem)]);
    assert!(out.contains(": good") && out.contains(": revoked"), "{out}");
    never_issued_serial_is_unknown(&s);
    // Nonce responses are not cacheable; plain ones are, briefly.
    let (_, _, h) = s.curl_public(
        "/ocsp",
        &[
            "-H",
            "content-type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", path(&req)),
            "-D",
            "-",
            "-o",
            "/dev/null",
        ],
    );
    assert!(h.to_lowercase().contains("cache-control: no-store"), "{h}");
}

/// The `responseStatus` of a saved OCSP response, read by Python cryptography.
fn ocsp_response_status(s: &Server, file: &str) -> String {
    let issuing = path(&s.data("ca/issuing.pem"));
    s.python_json("ocsp_crl_facts.py", &["ocsp", file, &issuing])["response_status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POSTs the request in `body_file` to the responder, saving the answer in
/// `out`; returns the HTTP status.
fn post_ocsp(s: &Server, body_file: &Path, out: &str) -> u16 {
    let body = format!("@{}", path(body_file));
    let (_, status, _) =
        s.curl_public("/ocsp", &["-H", "content-type: application/ocsp-request", "--data-binary", &body, "-o", out]);
    status
}

/// A certificate of another issuer: unauthorized.
fn foreign_issuer_is_unauthorized(s: &Server) {
    let dir = s.dir.path();
    let other = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "other.key",
        "-out",
        "other.pem",
        "-subj",
        "/CN=Other CA",
        "-days",
        "2",
    ];
    assert!(run("openssl", &other, dir).status.success());
    let o = run("openssl", &["ocsp", "-issuer", "other.pem", "-serial", "0x1234", "-reqout", "foreign.der"], dir);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(post_ocsp(s, &s.scratch("foreign.der"), "f.der"), 200);
    assert_eq!(ocsp_response_status(s, "f.der"), "UNAUTHORIZED");
}

/// A serial of ours that was never issued: unknown.
fn never_issued_serial_is_unknown(s: &Server) {
    let issuing = path(&s.data("ca/issuing.pem"));
    let dir = s.dir.path();
    let o = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            &issuing,
            "-serial",
            "0x4242424242",
            "-url",
            &format!("http://{}/ocsp", s.public),
            "-VAfile",
            &path(&s.data("ca/ocsp.pem")),
        ],
        dir,
    );
    assert!(text(&o).contains(": unknown"), "{}", text(&o));
}

/// The server killed with SIGKILL in the middle of a burst of revocations,
/// then restarted, still reports every revocation it had answered 200.
async fn sigkill_in_a_burst_loses_no_answered_revocation(backend: Backend) {
    let mut s = Server::start(backend).await;
    let admin = s.admin_pem();
    let devices: Vec<Device> = (0..24).map(|i| device(&s, &admin, &format!("burst{i:02}"))).collect();
    let pid = s.pid().expect("running");
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for chunk in devices.chunks(6) {
            let answered = answered.clone();
            let s = &s;
            let admin = &admin;
            scope.spawn(move || {
                for d in chunk {
                    let url = format!("/api/v1/certificates/{}/revoke", d.serial);
                    let (code, status, _) = s.curl_api(
                        &url,
                        &[
                            "--cert",
                            &path(admin),
                            "-H",
                            "content-type: application/json",
                            "--data-binary",
                            "{\"reason\":\"keyCompromise\"}",
                        ],
                    );
                    if code == 0 && status == 200 {
                        answered.lock().expect("lock").push(d.serial.clone());
                    }
                }
            });
        }
        // Kill once some, but not all, have been answered.
        let deadline = Instant::now() + Duration::from_secs(30);
        while answered.lock().expect("lock").len() < 6 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    s.reap();
    let answered = answered.lock().expect("lock").clone();
    assert!(!answered.is_empty(), "no revocation was answered before the kill");
    s.spawn(&[]);
    let list = crl(&s);
    for d in devices.iter().filter(|d| answered.contains(&d.serial)) {
        assert_eq!(
            list["revoked"][&d.serial], "key_compromise",
            "answered revocation of {} lost from the CRL",
            d.serial
        );
        assert_eq!(
            ocsp_status(&s, &d.pem),
            "revoked keyCompromise",
            "answered revocation of {} lost from OCSP",
            d.serial
        );
        assert!(!handshake_ok(&s, &d.pem), "answered revocation of {} lost from the handshake", d.serial);
    }
    eprintln!("{} of {} revocations were answered before SIGKILL; all survived", answered.len(), devices.len());
}
both_backends!(sigkill_in_a_burst_loses_no_answered_revocation);

/// `connect-pki check` lists a valid certificate of a retired user (made
/// here by editing the database, as a bug or a restore could) and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_certificates_that_should_be_revoked() {
    use sqlx::Connection;
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "leaver");
    assert_eq!(s.api("POST", &format!("/api/v1/users/{}/retire", d.user_id), Some(&admin), None).0, 200);
    sqlx::any::install_default_drivers();
    let mut conn =
        sqlx::AnyConnection::connect(&format!("sqlite://{}", s.data("connect-pki.db").display())).await.expect("db");
    sqlx::query(
        "update certificates set status = 'valid', revocation_reason = null, revoked_at = null where serial = $1",
    )
    .bind(&d.serial)
    .execute(&mut conn)
    .await
    .expect("edit");
    let o = s.run(&path(connect_pki_e2e::binary()), &["check", "--data-dir", &path(&s.data_dir)]);
    assert!(!o.status.success(), "check passed: {}", text(&o));
    assert!(text(&o).contains(&d.serial) && text(&o).contains("is retired"), "{}", text(&o));
}

/// Two instances sharing PostgreSQL: a revocation made through one is
/// refused by the other's handshake and OCSP shortly after (each instance
/// follows the change feed; see the benchmark for the latency).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_reaches_the_other() {
    let s = Server::start(Backend::Postgres).await;
    let admin = s.admin_pem();
    let d = device(&s, &admin, "two.instances");
    let peer = s.peer();
    let root = path(&s.data("ca/root.pem"));
    let via_peer = || {
        let o = s.run(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &root,
                "--cert",
                &path(&d.pem),
                &format!("https://{}/api/v1/whoami", peer.api),
            ],
        );
        String::from_utf8_lossy(&o.stdout).trim() == "200"
    };
    assert!(via_peer(), "the second instance refused a good device");
    assert_eq!(revoke(&s, &admin, &d.serial, "keyCompromise").0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while via_peer() {
        assert!(Instant::now() < deadline, "the second instance never saw the revocation");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = s.run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            &path(&s.data("ca/issuing.pem")),
            "-cert",
            &path(&d.pem),
            "-url",
            &format!("http://{}/ocsp", peer.public),
            "-VAfile",
            &path(&s.data("ca/ocsp.pem")),
        ],
    );
    assert!(text(&o).contains(": revoked"), "{}", text(&o));
}
