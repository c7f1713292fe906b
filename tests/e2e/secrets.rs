//! No secret a full run uses reaches the log, even at debug level: codes,
//! passwords (right and wrong), the PKCS#12 password, the application's
//! status token, the webhook URL (a bearer secret on chat services) and its
//! signing key, the CA passphrase.

use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, Server, Sinks};
use serde_json::{Value, json};

const HOOK_SECRET: &str = "hook-signing-key-5d1f0a";
const HOOK_PATH: &str = "/services/T0KEN-in-the-webhook-path-93c2";
const WRONG_PASSWORD: &str = "a wrong guess of the password";

/// Applies, approves, enrolls the manager (server-generated key) and one
/// staff device (CSR); returns the secrets it used and the staff's device.
fn enroll_everyone(s: &Server, secrets: &mut Vec<String>) -> i64 {
    let admin = s.admin_pem();
    let (status, created) = s.public_api("POST", "/api/v1/applications", Some(&application("秘密施設", "secret.mgr")));
    assert_eq!(status, 201, "{created}");
    let token = created["status_url"].as_str().expect("status url").rsplit('/').next().expect("token").to_string();
    let (status, _) = s.public_api("GET", &format!("/api/v1/application-status/{token}"), None);
    assert_eq!(status, 200);
    secrets.push(token);
    let (status, approval) =
        s.api("POST", &format!("/api/v1/applications/{}/approve", created["id"]), Some(&admin), None);
    assert_eq!(status, 200, "{approval}");
    let code = approval["enrollment_code"]["code"].as_str().expect("code").to_string();
    let body = json!({"code": code, "generate_key": true, "password": PASSWORD, "device_label": "mgr"});
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&body));
    assert_eq!(status, 201, "{out}");
    secrets.extend([code.clone(), out["pkcs12_password"].as_str().expect("p12 password").to_string()]);
    // A wrong secret for a code that exists.
    let wrong = "ZZZZ-ZZZZ-ZZZZ-ZZZZ".to_string();
    let (status, _) = s.public_api("POST", "/api/v1/enroll", Some(&json!({"code": wrong, "generate_key": true})));
    assert!(status >= 400);
    secrets.push(wrong);
    let staff = connect_pki_e2e::fixtures::device(s, &admin, "secret.staff");
    staff.device_id
}

fn report(s: &Server, password: &str, device: i64) -> (u16, Value) {
    let body = json!({"login_id": "secret.staff", "password": password, "device_id": device});
    s.public_api("POST", "/api/v1/emergency", Some(&body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_used_in_a_full_run_reaches_the_log() {
    let env = [("CONNECT_PKI_LOG", "debug"), ("CONNECT_PKI_WEBHOOK_SECRET", HOOK_SECRET)];
    let mut s = Server::start_with(Backend::Sqlite, &env).await;
    let sinks = Sinks::start(&s, HOOK_SECRET);
    sinks.configure_at(&s, HOOK_PATH);
    s.stop();
    s.spawn(&env);
    let mut secrets = vec![PASSWORD.to_string(), WRONG_PASSWORD.to_string(), HOOK_SECRET.into(), HOOK_PATH.into()];
    let device = enroll_everyone(&s, &mut secrets);
    assert_eq!(report(&s, WRONG_PASSWORD, device).0, 401);
    let (status, out) = report(&s, PASSWORD, device);
    assert_eq!(status, 201, "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sinks.entries().iter().any(|e| e["kind"] == "webhook" && e["answered"] == 200) {
        assert!(std::time::Instant::now() < deadline, "the webhook was never delivered: {:?}", sinks.entries());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.stop();
    let log = s.log();
    // The run really logged what it did, so an absence means something.
    for line in ["notification delivered", "emergency report", "request"] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    let passphrase = std::fs::read_to_string(s.data("passphrase")).expect("passphrase");
    secrets.extend([passphrase.trim().to_string(), s.p12_password().to_string()]);
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret:?} is in the log");
    }
}
