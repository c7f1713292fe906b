//! nginx (Debian's package) as a relying party, configured from
//! `deploy/nginx/connect-mtls.conf`: a device gets through, and is refused at
//! its next connection right after the revoke call — or right after its
//! facility is suspended, and let through again once it resumes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, Server, Spawned, workspace};
use serde_json::json;

/// nginx's master and workers, stopped together (SIGTERM to the group,
/// SIGKILL to what is left after a grace period) when dropped.
pub struct Nginx(Spawned);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub(crate) fn start_nginx(s: &Server, port: u16) -> Nginx {
    let ocsp = format!("http://{}/ocsp", s.public);
    let ca = s.data("ca/chain.pem").display().to_string();
    let vars = [("${CLIENT_CA}", ca.as_str()), ("${OCSP_URL}", &ocsp), ("${BACKEND_HOSTPORT}", &s.public)];
    start_nginx_from(s, "deploy/nginx/connect-mtls.conf", port, &vars)
}

/// nginx from a template of `deploy/nginx/`, on `port`, with our server
/// certificate, and `vars` filled in besides.
pub fn start_nginx_from(s: &Server, template: &str, port: u16, vars: &[(&str, &str)]) -> Nginx {
    let prefix = s.scratch("nginx");
    for sub in ["", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(prefix.join(sub)).expect("nginx dirs");
    }
    let chain = s.scratch("nginx-server-chain.pem");
    let tls = std::fs::read_to_string(s.data("ca/tls.pem")).expect("tls cert");
    let issuing = std::fs::read_to_string(s.data("ca/issuing.pem")).expect("issuing");
    std::fs::write(&chain, format!("{tls}{issuing}")).expect("write chain");
    let mut conf = std::fs::read_to_string(workspace().join(template)).expect("template");
    let p = |x: &Path| x.display().to_string();
    for (k, v) in [
        ("${LISTEN}", format!("127.0.0.1:{port}")),
        ("${SERVER_CERT}", p(&chain)),
        ("${SERVER_KEY}", p(&s.data("ca/tls.key.pem"))),
        ("${SERVER_KEY_PASS}", p(&s.data("passphrase"))),
        ("${PREFIX}", p(&prefix)),
    ] {
        conf = conf.replace(k, &v);
    }
    for (k, v) in vars {
        conf = conf.replace(k, v);
    }
    assert!(!conf.contains("${"), "a placeholder was left: {conf}");
    // nginx clears its workers' environment, and libfaketime reads FAKETIME
    // from it at every call: without these, a server run at another time
    // would have nginx's workers judge certificates on the real clock.
    conf.push_str("\nenv LD_PRELOAD;\nenv FAKETIME;\nenv FAKETIME_NO_CACHE;\nenv FAKETIME_DONT_FAKE_MONOTONIC;\n");
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    // On the server's clock (libfaketime when it runs at another time):
    // nginx judges the client certificates' validity itself.
    let child = Spawned::start(
        s.command("nginx")
            .args(["-p", &p(&prefix), "-c", &p(&conf_path), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("nginx runs (the README's test command installs Debian's nginx)");
    let mut nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if !nginx.0.running() {
            let status = nginx.0.reap();
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            panic!("nginx exited with {status:?}: {log}");
        }
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}

pub(crate) fn through_nginx(s: &Server, port: u16, pem: &Path) -> (u16, String) {
    let url = format!("https://127.0.0.1:{port}/healthz");
    let root = s.data("ca/root.pem").display().to_string();
    let pem = pem.display().to_string();
    let o =
        s.run("curl", &["-sS", "--max-time", "20", "--cacert", &root, "--cert", &pem, "-w", "\n%{http_code}", &url]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", ""));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refuses_a_device_right_after_its_revocation() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let body = json!({"display_name": "nginx user", "login_id": "via.nginx", "email": "n@example.test"});
    let (_, user) = s.api("POST", "/api/v1/facilities/1/users", Some(&admin), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(&admin), None);
    let pem = s.enroll_csr(code["code"].as_str().expect("code"), Some(PASSWORD), "nginx-dev", "/CN=via.nginx");
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&pem), None);
    let serial = me["serial"].as_str().expect("serial").to_string();

    let port = free_port();
    let _nginx = start_nginx(&s, port);
    let (status, body) = through_nginx(&s, port, &pem);
    assert_eq!(status, 200, "nginx refused a good device: {body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let (status, out) = s.api(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(&admin),
        Some(&json!({"reason": "keyCompromise"})),
    );
    assert_eq!(status, 200, "{out}");
    let (status, body) = through_nginx(&s, port, &pem);
    assert_eq!(status, 400, "nginx still let the revoked device through: {body}");
    assert!(body.contains("The SSL certificate error"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refuses_a_suspended_facilitys_manager_until_it_resumes() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (status, applied) =
        s.public_api("POST", "/api/v1/applications", Some(&application("nginx施設", "nginx.kanri")));
    assert_eq!(status, 201, "{applied}");
    let (status, approval) =
        s.api("POST", &format!("/api/v1/applications/{}/approve", applied["id"]), Some(&admin), None);
    assert_eq!(status, 200, "{approval}");
    let code = approval["enrollment_code"]["code"].as_str().expect("code");
    let manager = s.enroll_generated(code, Some(PASSWORD), "nginx-manager");
    let facility = approval["facility_id"].as_i64().expect("facility");

    let port = free_port();
    let _nginx = start_nginx(&s, port);
    assert_eq!(through_nginx(&s, port, &manager).0, 200, "nginx refused a good manager");
    let (status, out) = s.api("POST", &format!("/api/v1/facilities/{facility}/suspend"), Some(&admin), None);
    assert_eq!(status, 200, "{out}");
    let (status, body) = through_nginx(&s, port, &manager);
    assert_eq!(status, 400, "nginx let the suspended facility's manager through: {body}");
    assert!(body.contains("The SSL certificate error"), "{body}");
    let (status, out) = s.api("POST", &format!("/api/v1/facilities/{facility}/resume"), Some(&admin), None);
    assert_eq!(status, 200, "{out}");
    assert_eq!(through_nginx(&s, port, &manager).0, 200, "nginx still refuses after the resume");
}

/// Month 11 at a relying party: a device renews with its current
/// certificate (`renew-pkcs12`, what わたしの端末's 証明書の更新 does), the
/// PKCS#12 opens with plain `openssl pkcs12`, nginx takes the new
/// certificate, and the old one — still taken until then — is refused by
/// nginx once the new one has been used (nginx's own OCSP query of it is
/// that use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_takes_a_renewed_certificate_and_refuses_the_old_once_the_new_is_used() {
    // A window that covers a fresh certificate; counts written every second.
    let env = [("CONNECT_PKI_EXPIRY_NOTICE_DAYS", "400"), ("CONNECT_PKI_RELYING_PARTY_FLUSH_SECONDS", "1")];
    let s = Server::start_with(Backend::Sqlite, &env).await;
    let admin = s.admin_pem();
    let body = json!({"display_name": "renewing user", "login_id": "koushin.nginx", "email": "k@example.test"});
    let (_, user) = s.api("POST", "/api/v1/facilities/1/users", Some(&admin), Some(&body));
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(&admin), None);
    let old = s.enroll_csr(code["code"].as_str().expect("code"), Some(PASSWORD), "koushin-dev", "/CN=koushin.nginx");

    let port = free_port();
    let _nginx = start_nginx(&s, port);
    assert_eq!(through_nginx(&s, port, &old).0, 200);
    let (status, renewed) = s.api("POST", "/api/v1/certificates/renew-pkcs12", Some(&old), None);
    assert_eq!(status, 201, "{renewed}");
    let p12 = s.scratch("renewed.p12");
    let der =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, renewed["pkcs12"].as_str().expect("pkcs12"))
            .expect("base64");
    std::fs::write(&p12, der).expect("write");
    let new = p12.with_extension("pem");
    let pass = format!("pass:{}", renewed["password"].as_str().expect("password"));
    let o = s.run(
        "openssl",
        &["pkcs12", "-in", &p12.display().to_string(), "-passin", &pass, "-nodes", "-out", &new.display().to_string()],
    );
    assert!(o.status.success(), "openssl pkcs12: {}", String::from_utf8_lossy(&o.stderr));
    // Not installed yet: the old certificate still gets through.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(through_nginx(&s, port, &old).0, 200, "the old certificate stopped before the new one was used");
    // The new one is taken; from then on the old one is refused.
    assert_eq!(through_nginx(&s, port, &new).0, 200, "nginx refused the renewed certificate");
    let deadline = Instant::now() + Duration::from_secs(20);
    while through_nginx(&s, port, &old).0 == 200 {
        assert!(Instant::now() < deadline, "the old certificate still gets through after the new one was used");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(through_nginx(&s, port, &new).0, 200);
}
