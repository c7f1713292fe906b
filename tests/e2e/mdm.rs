//! A device-management system end to end (issue 26, item 3), with curl and
//! openssl: the system, holding a client certificate of its role, fetches a
//! one-time challenge for a person; the person's device enrolls with it by
//! EST, or by SCEP with the micromdm client from the Apple profile the
//! system fetched for it (read by Python's plistlib; on both backends); the system reports the device wiped by a webhook signed with `openssl
//! dgst -hmac`, and before the webhook's answer is read, `openssl ocsp` says
//! revoked and our handshake refuses the device. The same webhook again, and
//! one without a signature, are refused.

use std::path::Path;

use connect_pki_e2e::{Backend, Server};
use serde_json::{Value, json};

use crate::est::{PKCS10, certs_of, csr, openssl, path, post};
use crate::revocation::{handshake_ok, ocsp_status};
use crate::scenarios::{facility, openssl_verify, person, registered};

/// POSTs a webhook body with `headers` to the public route (no client
/// certificate): (HTTP status, body).
fn webhook(s: &Server, body: &Path, headers: &[String]) -> (u16, Value) {
    let at = format!("@{}", path(body));
    let mut args = vec!["-H", "Content-Type: application/json", "--data-binary", &at];
    for h in headers {
        args.extend_from_slice(&["-H", h]);
    }
    let (code, status, out) = s.curl_api("/api/v1/mdm/events", &args);
    assert_eq!(code, 0, "curl: {out}");
    (status, serde_json::from_str(&out).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_management_system_enrolls_a_device_by_est_and_a_wipe_revokes_it_before_it_answers() {
    wiped(Backend::Sqlite, Protocol::Est).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_management_system_enrolls_a_device_by_scep_and_a_wipe_revokes_it_before_it_answers() {
    wiped(Backend::Sqlite, Protocol::Scep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolled_by_scep_is_wiped_on_postgres() {
    wiped(Backend::Postgres, Protocol::Scep).await;
}

/// How the device enrolls with the challenge its system fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Est,
    /// With the micromdm client, the challenge as challengePassword.
    Scep,
}

async fn wiped(backend: Backend, protocol: Protocol) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let (a, _, manager) = facility(&s, &admin, "端末管理する施設", "kanri.mdm");
    let system = person(&s, &admin, a, "jamf.kanri", "device_management");
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&system), None);
    let sender = me["user_id"].as_i64().expect("id");
    let (status, secret) = s.api("GET", &format!("/api/v1/users/{sender}/webhook-secret"), Some(&admin), None);
    assert_eq!(status, 200, "{secret}");
    let secret = secret["secret"].as_str().expect("secret").to_string();

    // The system asks for a challenge for a person, with its certificate:
    // as JSON for EST, inside an Apple profile's SCEP payload for SCEP.
    let (staff, _) = registered(&s, &manager, a, "mdm.hanako", "staff");
    let device = match protocol {
        Protocol::Est => {
            let body = json!({"user_id": staff}).to_string();
            let (code, status, out) = s.curl_api(
                "/api/v1/mdm/challenges",
                &["--cert", &path(&system), "-H", "Content-Type: application/json", "--data", &body],
            );
            assert_eq!((code, status), (0, 201), "{out}");
            let challenge: Value = serde_json::from_str(&out).expect("JSON");
            by_est(&s, challenge["challenge"].as_str().expect("challenge"))
        }
        Protocol::Scep => by_scep_profile(&s, &system, staff),
    };
    assert!(openssl_verify(&s, &device).contains(": OK"));
    assert_eq!(ocsp_status(&s, &device), "good");
    assert!(handshake_ok(&s, &device));
    let serial = crate::scenarios::serial_of(&s, &device);

    // Wiped: a webhook signed with openssl.
    let body = s.scratch("wiped.json");
    std::fs::write(&body, json!({"event": "wiped", "serial": serial}).to_string()).expect("write");
    let at = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let signed = s.scratch("wiped.signed");
    std::fs::write(&signed, format!("{at}.{}", std::fs::read_to_string(&body).expect("body"))).expect("write");
    let digest = openssl(&s, &["dgst", "-sha256", "-hmac", &secret, "-r", &path(&signed)]);
    let signature = digest.split_whitespace().next().expect("digest").to_string();
    let headers = [
        format!("X-Connect-Mdm: {sender}"),
        format!("X-Connect-Timestamp: {at}"),
        format!("X-Connect-Signature: sha256={signature}"),
    ];
    let (status, answer) = webhook(&s, &body, &headers);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["revoked"], json!([serial]), "{answer}");
    // The answer is in: the device is already refused everywhere.
    assert_eq!(ocsp_status(&s, &device), "revoked cessationOfOperation");
    assert!(!handshake_ok(&s, &device), "the wiped device still gets in");
    // The same webhook again, and one without a signature: refused.
    let (status, again) = webhook(&s, &body, &headers);
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("replayed")), "{again}");
    let (status, unsigned) = webhook(&s, &body, &headers[..2]);
    assert_eq!((status, unsigned["error"]["code"].as_str()), (401, Some("bad_signature")), "{unsigned}");
}

/// The device of `mdm.hanako` enrolled by EST with `challenge`.
fn by_est(s: &Server, challenge: &str) -> std::path::PathBuf {
    let basic = format!("ipad:{challenge}");
    let (key, request) = csr(s, "mdm-ipad", "mdm.hanako");
    let (status, out, _) = post(s, "simpleenroll", &request, &[&PKCS10[..], &["-u", &basic]].concat());
    assert_eq!(status, 200, "{out}");
    let (cert, _) = certs_of(s, "mdm-ipad-cert", out.trim());
    let device = s.scratch("mdm-ipad-full.pem");
    let both =
        format!("{}{}", std::fs::read_to_string(&cert).expect("cert"), std::fs::read_to_string(key).expect("key"));
    std::fs::write(&device, both).expect("write");
    device
}

/// The device of `mdm.hanako` enrolled by SCEP as an Apple device would be
/// from the profile its system pushed: the profile read by Python's
/// plistlib, the micromdm client sent to its URL with its challenge and CN.
fn by_scep_profile(s: &Server, system: &Path, staff: i64) -> std::path::PathBuf {
    let profile = s.scratch("scep.mobileconfig");
    let body = json!({"user_id": staff}).to_string();
    let (code, status, _) = s.curl_api(
        "/api/v1/mdm/scep-profiles",
        &["--cert", &path(system), "-H", "Content-Type: application/json", "--data", &body, "-o", &path(&profile)],
    );
    assert_eq!((code, status), (0, 201));
    let read = s.python_json("scep_profile.py", &[&path(&profile)]);
    assert_eq!(read["type"], "Configuration", "{read}");
    assert_eq!(read["payloads"], json!(["com.apple.security.scep", "com.apple.security.root"]), "{read}");
    assert_eq!((read["key_type"].as_str(), read["key_size"].as_i64()), (Some("RSA"), Some(2048)), "{read}");
    assert_eq!(read["subject"], json!([[["CN", "mdm.hanako"]]]), "{read}");
    // The configured public URL (here not the test's listener) and /scep.
    let public = s.init["public_url"].as_str().expect("public_url").trim_end_matches('/');
    assert_eq!(read["url"].as_str(), Some(format!("{public}/scep").as_str()), "{read}");
    let root = openssl(s, &["x509", "-in", &path(&s.data("ca/root.pem")), "-noout", "-fingerprint", "-sha256"]);
    let root = root.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_lowercase();
    assert_eq!(read["root_sha256"].as_str(), Some(root.as_str()), "{read}");
    let (key, cert) = (s.scratch("mdm-scep.key"), s.scratch("mdm-scep.pem"));
    let challenge = read["challenge"].as_str().expect("challenge");
    let (ok, out) = crate::scep::scepclient(s, &key, &cert, challenge, "mdm.hanako");
    assert!(ok, "{out}\n{}", s.log());
    crate::scep::full(s, "mdm-scep", &cert, &key)
}
