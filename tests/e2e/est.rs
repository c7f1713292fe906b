//! EST (RFC 7030, issue 26 item 1) with clients no one here wrote: `curl`
//! and `openssl`. The CA certificates as a certs-only PKCS#7 that `openssl
//! pkcs7 -print_certs` reads; an enrollment with a one-time code as the
//! HTTP Basic password (refused without it, with a wrong one, and when
//! reused); re-enrollment with the client certificate, after which the old
//! certificate is superseded for OCSP and our handshake; the CSR attributes;
//! a key made here (`serverkeygen`), its multipart answer split by Python's
//! MIME parser, the key opened by openssl and matching the certificate.

use std::path::{Path, PathBuf};

use connect_pki_e2e::{Backend, FakeTime, Server, text};
use serde_json::{Value, json};

use crate::revocation::{handshake_ok, ocsp_status};
use crate::scenarios::{openssl_verify, serial_of};

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `openssl` in the server's scratch directory; its output on success.
pub(crate) fn openssl(s: &Server, args: &[&str]) -> String {
    let o = s.run("openssl", args);
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    text(&o)
}

/// A P-256 key and CSR for `login`, the CSR base64-encoded DER as EST
/// sends it: (key file, base64 file).
pub(crate) fn csr(s: &Server, name: &str, login: &str) -> (PathBuf, PathBuf) {
    let (key, pem) = s.openssl_csr(name, &format!("/CN={login}"), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (pem_file, der, b64) = (
        s.scratch(&format!("{name}.csr")),
        s.scratch(&format!("{name}.csr.der")),
        s.scratch(&format!("{name}.csr.b64")),
    );
    std::fs::write(&pem_file, pem).expect("csr");
    openssl(s, &["req", "-in", &path(&pem_file), "-outform", "DER", "-out", &path(&der)]);
    openssl(s, &["base64", "-in", &path(&der), "-out", &path(&b64)]);
    (key, b64)
}

/// POSTs `body` (a file) to an EST operation: (HTTP status, body, headers).
pub(crate) fn post(s: &Server, op: &str, body: &Path, extra: &[&str]) -> (u16, String, String) {
    let headers = s.scratch("est-headers.txt");
    let mut args = vec!["-D", headers.to_str().expect("path"), "--data-binary"];
    let at = format!("@{}", path(body));
    args.push(&at);
    args.extend_from_slice(extra);
    let (code, status, out) = s.curl_api(&format!("/.well-known/est/{op}"), &args);
    assert_eq!(code, 0, "curl: {out}");
    (status, out, std::fs::read_to_string(headers).unwrap_or_default())
}

pub(crate) const PKCS10: [&str; 2] = ["-H", "Content-Type: application/pkcs10"];

/// The certificates of a base64 certs-only answer, through `openssl pkcs7`,
/// into `name`.pem.
pub(crate) fn certs_of(s: &Server, name: &str, b64: &str) -> (PathBuf, String) {
    let (b64_file, der, pem) =
        (s.scratch(&format!("{name}.p7.b64")), s.scratch(&format!("{name}.p7")), s.scratch(&format!("{name}.pem")));
    std::fs::write(&b64_file, b64).expect("write");
    openssl(s, &["base64", "-d", "-A", "-in", &path(&b64_file), "-out", &path(&der)]);
    let printed = openssl(s, &["pkcs7", "-inform", "DER", "-in", &path(&der), "-print_certs", "-out", &path(&pem)]);
    let _ = printed;
    let pem_text = std::fs::read_to_string(&pem).expect("pem");
    (pem, pem_text)
}

fn error_code(body: &str) -> Value {
    serde_json::from_str::<Value>(body).map(|v| v["error"]["code"].clone()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolls_and_reenrolls_by_est_with_curl_and_openssl() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();

    // cacerts: the issuing CA and the root, as openssl reads a certs-only PKCS#7.
    let (_, status, b64) = s.curl_api("/.well-known/est/cacerts", &[]);
    assert_eq!(status, 200, "{b64}");
    let (_, cas) = certs_of(&s, "cacerts", b64.trim());
    for file in ["ca/root.pem", "ca/issuing.pem"] {
        let want = std::fs::read_to_string(s.data(file)).expect("CA file");
        assert!(cas.contains(want.trim()), "{file} not in cacerts:\n{cas}");
    }

    let body = json!({"display_name": "EST 端末", "login_id": "est.device", "email": "est@example.test"});
    let (_, user) = s.api("POST", "/api/v1/facilities/1/users", Some(&admin), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(&admin), None);
    let code = code["code"].as_str().expect("code").to_string();
    let (key, request) = csr(&s, "est-first", "est.device");

    // Refused: no credentials (with a Basic challenge), a wrong code, not PKCS#10.
    let (status, out, headers) = post(&s, "simpleenroll", &request, &PKCS10);
    assert_eq!((status, error_code(&out)), (401, json!("code_required")), "{out}");
    assert!(headers.to_lowercase().contains("www-authenticate: basic"), "{headers}");
    let (status, out, _) =
        post(&s, "simpleenroll", &request, &[&PKCS10[..], &["-u", "tablet:ABCD-EFGH-JKMN-PQRS"]].concat());
    assert_eq!((status, error_code(&out)), (401, json!("invalid_code")), "{out}");
    let basic = format!("tablet:{code}");
    let (status, out, _) = post(&s, "simpleenroll", &request, &["-u", &basic, "-H", "Content-Type: text/plain"]);
    assert_eq!((status, error_code(&out)), (415, json!("not_pkcs10")), "{out}");

    let (status, out, headers) = post(&s, "simpleenroll", &request, &[&PKCS10[..], &["-u", &basic]].concat());
    assert_eq!(status, 200, "{out}");
    assert!(headers.to_lowercase().contains("application/pkcs7-mime"), "{headers}");
    let (cert, _) = certs_of(&s, "est-first-cert", out.trim());
    assert!(openssl_verify(&s, &cert).contains(": OK"), "{}", openssl_verify(&s, &cert));
    let first = s.scratch("est-first-full.pem");
    let key_text = std::fs::read_to_string(&key).expect("key");
    std::fs::write(&first, format!("{}{key_text}", std::fs::read_to_string(&cert).expect("cert"))).expect("write");
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&first), None);
    assert_eq!((status, me["login_id"].as_str()), (200, Some("est.device")), "{me}");
    assert_eq!(ocsp_status(&s, &first), "good");
    // The code was used.
    let (status, out, _) = post(&s, "simpleenroll", &request, &[&PKCS10[..], &["-u", &basic]].concat());
    assert_eq!((status, error_code(&out)), (409, json!("code_used")), "{out}");

    // simplereenroll with the client certificate: a new key, the old superseded.
    let (key2, request2) = csr(&s, "est-second", "est.device");
    let (status, out, _) = post(&s, "simplereenroll", &request2, &[&PKCS10[..], &["--cert", &path(&first)]].concat());
    assert_eq!(status, 200, "{out}");
    let (cert2, _) = certs_of(&s, "est-second-cert", out.trim());
    let second = s.scratch("est-second-full.pem");
    let key2_text = std::fs::read_to_string(&key2).expect("key");
    std::fs::write(&second, format!("{}{key2_text}", std::fs::read_to_string(&cert2).expect("cert"))).expect("write");
    assert_ne!(serial_of(&s, &first), serial_of(&s, &second));
    assert_eq!(ocsp_status(&s, &first), "revoked superseded");
    assert_eq!(ocsp_status(&s, &second), "good");
    assert!(!handshake_ok(&s, &first) && handshake_ok(&s, &second));
    // Without a certificate, re-enrollment is refused.
    let (status, out, _) = post(&s, "simplereenroll", &request2, &PKCS10);
    assert_eq!(status, 401, "{out}");

    // csrattrs: an EC key, signed with ECDSA and SHA-256.
    let (_, status, attrs) = s.curl_api("/.well-known/est/csrattrs", &[]);
    assert_eq!(status, 200, "{attrs}");
    let (b64_file, der) = (s.scratch("csrattrs.b64"), s.scratch("csrattrs.der"));
    std::fs::write(&b64_file, attrs.trim()).expect("write");
    openssl(&s, &["base64", "-d", "-A", "-in", &path(&b64_file), "-out", &path(&der)]);
    let parsed = openssl(&s, &["asn1parse", "-inform", "DER", "-in", &path(&der)]);
    assert!(parsed.contains("ecdsa-with-SHA256") && parsed.contains("id-ecPublicKey"), "{parsed}");

    server_key(&s, &admin);

    // Never in clear: the plain listener does not serve EST.
    let (_, status, _) = s.curl_public("/.well-known/est/cacerts", &[]);
    assert_eq!(status, 404);
}

/// `serverkeygen`: the key and the certificate of a device that cannot make
/// its own key, in a multipart/mixed answer.
fn server_key(s: &Server, admin: &Path) {
    let body = json!({"display_name": "鍵なし端末", "login_id": "est.nokey", "email": "nokey@example.test"});
    let (_, user) = s.api("POST", "/api/v1/facilities/1/users", Some(admin), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(admin), None);
    let basic = format!("printer:{}", code["code"].as_str().expect("code"));
    let (_, request) = csr(s, "est-nokey", "est.nokey");
    let answer = s.scratch("serverkeygen.body");
    let headers = s.scratch("serverkeygen.headers");
    let url = format!("https://{}/.well-known/est/serverkeygen", s.api);
    let root = path(&s.data("ca/root.pem"));
    let at = format!("@{}", path(&request));
    let o = s.run(
        "curl",
        &[
            "-sS",
            "--cacert",
            &root,
            "-u",
            &basic,
            "-H",
            PKCS10[1],
            "--data-binary",
            &at,
            "-D",
            &path(&headers),
            "-o",
            &path(&answer),
            &url,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let head = std::fs::read_to_string(&headers).expect("headers");
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/2 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_string())
        })
        .expect("a content type");
    let prefix = s.scratch("serverkeygen-part");
    let kinds = s.python_json("multipart.py", &[&content_type, &path(&answer), &path(&prefix)]);
    assert_eq!(kinds, json!(["application/pkcs8", "application/pkcs7-mime"]), "{head}");
    let (key_der, p7) = (s.scratch("serverkeygen-part-0.der"), s.scratch("serverkeygen-part-1.der"));
    let cert = s.scratch("serverkeygen-cert.pem");
    openssl(s, &["pkcs7", "-inform", "DER", "-in", &path(&p7), "-print_certs", "-out", &path(&cert)]);
    let key_pub = openssl(s, &["pkey", "-inform", "DER", "-in", &path(&key_der), "-pubout"]);
    let cert_pub = openssl(s, &["x509", "-in", &path(&cert), "-noout", "-pubkey"]);
    assert_eq!(key_pub.trim(), cert_pub.trim(), "the key does not belong to the certificate");
    let key_pem = openssl(s, &["pkey", "-inform", "DER", "-in", &path(&key_der)]);
    let full = s.scratch("serverkeygen-full.pem");
    std::fs::write(&full, format!("{}{key_pem}", std::fs::read_to_string(&cert).expect("cert"))).expect("write");
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&full), None);
    assert_eq!((status, me["login_id"].as_str()), (200, Some("est.nokey")), "{me}");
}

/// A new certificate for `pem` by `simplereenroll` (a fresh key), as a PEM
/// with its key; or what refused it (the answer, or the handshake).
pub(crate) fn reenrolled(s: &Server, pem: &Path, name: &str, login: &str) -> Result<PathBuf, String> {
    let (key, request) = csr(s, name, login);
    let pem = path(pem);
    let extra = [&PKCS10[..], &["--cert", &pem]].concat();
    let headers = s.scratch("est-headers.txt");
    let at = format!("@{}", path(&request));
    let mut args = vec!["-D", headers.to_str().expect("path"), "--data-binary", &at];
    args.extend_from_slice(&extra);
    let (code, status, out) = s.curl_api("/.well-known/est/simplereenroll", &args);
    if code != 0 || status != 200 {
        return Err(format!("curl {code}, HTTP {status}: {out}"));
    }
    let (cert, _) = certs_of(s, &format!("{name}-cert"), out.trim());
    let full = s.scratch(&format!("{name}-full.pem"));
    let both =
        format!("{}{}", std::fs::read_to_string(&cert).expect("cert"), std::fs::read_to_string(key).expect("key"));
    std::fs::write(&full, both).expect("write");
    Ok(full)
}

/// Whether `pem`'s certificate, on the server's clock, ends within `days`.
/// A half-life renewal's checks: the new certificate verifies and lives 7
/// days, the one it replaced is superseded.
pub(crate) fn renewed(s: &Server, current: &Path, next: &Path, step: i64) {
    assert!(openssl_verify(s, next).contains(": OK"), "{}", openssl_verify(s, next));
    assert!(ends_within(s, next, 7.01) && !ends_within(s, next, 6.99), "renewal {step}: not 7 days");
    assert_eq!(ocsp_status(s, current), "revoked superseded", "renewal {step}");
    assert_eq!(ocsp_status(s, next), "good", "renewal {step}");
}

/// The device of `current` reported lost by `admin`; revoked at once.
pub(crate) fn report_lost(s: &Server, admin: &Path, current: &Path) {
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(current), None);
    let (status, out) = s.api("POST", &format!("/api/v1/devices/{}/lost", me["device_id"]), Some(admin), None);
    assert_eq!(status, 200, "{out}");
    assert!(ocsp_status(s, current).starts_with("revoked"));
}

pub(crate) fn ends_within(s: &Server, pem: &Path, days: f64) -> bool {
    let seconds = format!("{}", (days * 86_400.0) as i64);
    !s.run("openssl", &["x509", "-in", &path(pem), "-noout", "-checkend", &seconds]).status.success()
}

/// A managed device (enrolled by EST) gets 7-day certificates and renews
/// them by EST at half-life: five weeks of renewals on a clock stepped 3.5
/// days at a time, each new certificate verified by openssl and good in
/// OCSP, each old one superseded. Then the device is reported lost, and every
/// renewal path is refused: EST, the JSON API with a CSR, and the browser's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_device_renews_at_half_life_for_five_weeks_until_a_revocation_stops_it() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let body = json!({"display_name": "管理 端末", "login_id": "kanri.ipad", "email": "ipad@example.test"});
    let (_, user) = s.api("POST", "/api/v1/facilities/1/users", Some(&admin), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(&admin), None);
    let (key, request) = csr(&s, "ipad-0", "kanri.ipad");
    let basic = format!("mdm:{}", code["code"].as_str().expect("code"));
    let (status, out, _) = post(&s, "simpleenroll", &request, &[&PKCS10[..], &["-u", &basic]].concat());
    assert_eq!(status, 200, "{out}");
    let (cert, _) = certs_of(&s, "ipad-0-cert", out.trim());
    let mut current = s.scratch("ipad-0-full.pem");
    let both =
        format!("{}{}", std::fs::read_to_string(&cert).expect("cert"), std::fs::read_to_string(key).expect("key"));
    std::fs::write(&current, both).expect("write");
    assert!(ends_within(&s, &current, 7.01) && !ends_within(&s, &current, 6.99), "not a 7-day certificate");

    for step in 1..=10 {
        s.stop();
        s.spawn_at(FakeTime::ahead(time::Duration::hours(84 * step)), &[]);
        let next = reenrolled(&s, &current, &format!("ipad-{step}"), "kanri.ipad")
            .unwrap_or_else(|e| panic!("renewal {step} refused: {e}"));
        renewed(&s, &current, &next, step);
        current = next;
    }
    // Five weeks on: the first certificate has long run out; the current works.
    assert!(handshake_ok(&s, &current));

    // Lost: every renewal path is refused.
    report_lost(&s, &admin, &current);
    let refused = reenrolled(&s, &current, "ipad-after", "kanri.ipad");
    assert!(refused.is_err(), "EST renewed a lost device");
    csr(&s, "ipad-json", "kanri.ipad");
    let pem_csr = std::fs::read_to_string(s.scratch("ipad-json.csr")).expect("csr");
    let body = json!({"csr": pem_csr});
    let (code, status, _) = s.curl_api(
        "/api/v1/certificates/renew",
        &["--cert", &path(&current), "-H", "Content-Type: application/json", "--data", &body.to_string()],
    );
    assert!(code != 0 || status >= 400, "the JSON API renewed a lost device: {status}");
    let (code, status, _) = s.curl_api(
        "/api/v1/certificates/renew-pkcs12",
        &["--cert", &path(&current), "-H", "Content-Type: application/json", "--data", "{}"],
    );
    assert!(code != 0 || status >= 400, "the browser renewal renewed a lost device: {status}");
}
