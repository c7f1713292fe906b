//! Several instances on one PostgreSQL behind HAProxy (Debian's package),
//! as `deploy/haproxy/connect-pki.cfg` sets it up (issue 13): a revocation
//! made through either instance is enforced by both, and killing one in the
//! middle of a stream of OCSP requests and mTLS API calls fails nothing but
//! what was in flight at that moment. Behind it, each client is named by
//! the address HAProxy saw (issue 24): the PROXY protocol on the TLS
//! listener, X-Forwarded-For set by HAProxy on the plain one, and nothing
//! the client wrote into a header.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_pki_e2e::client::{self, Identity, Req};
use connect_pki_e2e::fixtures::{Device, device};
use connect_pki_e2e::{Backend, Server, Spawned, text, workspace};

use crate::nginx::free_port;
use crate::proxy::{curl_from, two_clients_keep_their_own_limit_and_name};
use crate::revocation::revoke;

/// `127.0.0.1:8080` as ("127.0.0.1", "8080").
fn host_port(addr: &str) -> (String, String) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_string(), port.to_string())
}

/// HAProxy from the deploy recipe, in front of instances `a` and `b`:
/// (mTLS frontend, HTTP frontend).
fn start_haproxy(s: &Server, a: (&str, &str), b: (&str, &str)) -> (Spawned, SocketAddr, SocketAddr) {
    assert!(
        Command::new("haproxy").arg("-v").output().is_ok_and(|o| o.status.success()),
        "HAProxy is needed for this test (apt-get install haproxy; the README's test command does)"
    );
    let (api, public) = (free_port(), free_port());
    let mut conf = std::fs::read_to_string(workspace().join("deploy/haproxy/connect-pki.cfg")).expect("recipe");
    for (k, v) in [
        ("${API_LISTEN}", format!("127.0.0.1:{api}")),
        ("${PUBLIC_LISTEN}", format!("127.0.0.1:{public}")),
        ("${PKI_A_API}", a.0.to_string()),
        ("${PKI_A_PUBLIC}", a.1.to_string()),
        ("${PKI_B_API}", b.0.to_string()),
        ("${PKI_B_PUBLIC}", b.1.to_string()),
        ("${PKI_A_PUBLIC_HOST}", host_port(a.1).0),
        ("${PKI_A_PUBLIC_PORT}", host_port(a.1).1),
        ("${PKI_B_PUBLIC_HOST}", host_port(b.1).0),
        ("${PKI_B_PUBLIC_PORT}", host_port(b.1).1),
    ] {
        conf = conf.replace(k, &v);
    }
    assert!(!conf.contains("${"), "a placeholder was left: {conf}");
    let path = s.scratch("haproxy.cfg");
    std::fs::write(&path, conf).expect("write");
    let check = s.run("haproxy", &["-c", "-f", &path.display().to_string()]);
    assert!(check.status.success(), "haproxy -c: {}", text(&check));
    let log = std::fs::File::create(s.scratch("haproxy.log")).expect("log");
    let child = Spawned::start(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log)),
    )
    .expect("haproxy starts");
    let proxy = child;
    let (api, public): (SocketAddr, SocketAddr) =
        (format!("127.0.0.1:{api}").parse().expect("addr"), format!("127.0.0.1:{public}").parse().expect("addr"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(public).is_err() || std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen: {}", haproxy_log(s));
        std::thread::sleep(Duration::from_millis(50));
    }
    (proxy, api, public)
}

fn haproxy_log(s: &Server) -> String {
    std::fs::read_to_string(s.scratch("haproxy.log")).unwrap_or_default()
}

/// The certificate and PKCS#8 key of an enrolled device's PEM file.
fn identity(pem: &Path) -> Identity {
    let data = std::fs::read(pem).expect("device PEM");
    let (mut cert_der, mut key_der) = (Vec::new(), Vec::new());
    for block in x509_parser::pem::Pem::iter_from_buffer(&data) {
        let block = block.expect("PEM");
        match block.label.as_str() {
            "CERTIFICATE" if cert_der.is_empty() => cert_der = block.contents,
            "PRIVATE KEY" => key_der = block.contents,
            _ => {}
        }
    }
    assert!(!cert_der.is_empty() && !key_der.is_empty(), "{} holds a certificate and a key", pem.display());
    Identity { cert_der, key_der }
}

fn root_der(s: &Server) -> Vec<u8> {
    let pem = std::fs::read(s.data("ca/root.pem")).expect("root");
    x509_parser::pem::parse_x509_pem(&pem).expect("PEM").1.contents
}

/// whoami through `api` as `who`: the status, or why there was none.
async fn whoami(s: &Server, api: SocketAddr, who: &Identity) -> Result<u16, String> {
    let tls = client::tls_config(&root_der(s), Some(who));
    client::https(api, tls, Req::new("GET", "/api/v1/whoami")).await.map(|r| r.status)
}

/// What OCSP at `public` says of `d` ("good", "revoked keyCompromise", …),
/// or why there was no answer.
async fn ocsp(s: &Server, public: SocketAddr, d: &Device) -> Result<String, String> {
    let issuing = x509_parser::pem::parse_x509_pem(&std::fs::read(s.data("ca/issuing.pem")).expect("issuing"))
        .expect("PEM")
        .1
        .contents;
    let ocsp_der =
        x509_parser::pem::parse_x509_pem(&std::fs::read(s.data("ca/ocsp.pem")).expect("ocsp")).expect("PEM").1.contents;
    let request = connect_pki_e2e::ocsp::request(&issuing, &identity(&d.pem).cert_der);
    let reply = client::http(public, Req::new("POST", "/ocsp").body("application/ocsp-request", request)).await?;
    if reply.status != 200 {
        return Err(format!("HTTP {}", reply.status));
    }
    std::panic::catch_unwind(|| connect_pki_e2e::ocsp::status(&reply.body, &ocsp_der))
        .map_err(|_| "not a good OCSP response".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_behind_haproxy_share_revocations_and_survive_a_kill() {
    // HAProxy connects from 127.0.0.1 and sends a PROXY header before TLS:
    // the recipe says every instance trusts it.
    let trust = [("CONNECT_PKI_TRUSTED_PROXIES", "127.0.0.1")];
    let s = Server::start_with(Backend::Postgres, &trust).await;
    let mut b = s.instance("b", &trust);
    b.start(Duration::from_secs(60)).expect("instance b starts");
    let admin = s.admin_pem();
    let (one, two, three) =
        (device(&s, &admin, "ha-one"), device(&s, &admin, "ha-two"), device(&s, &admin, "ha-three"));
    let addr = |a: &str| -> SocketAddr { a.parse().expect("address") };
    let instances = [(addr(&s.api), addr(&s.public)), (addr(&b.api), addr(&b.public))];

    // One revoked through instance a, one through instance b.
    let (status, body) = revoke(&s, &admin, &one.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    let admin_id = identity(&admin);
    let tls = client::tls_config(&root_der(&s), Some(&admin_id));
    let req = Req::new("POST", &format!("/api/v1/certificates/{}/revoke", two.serial))
        .json(&serde_json::json!({"reason": "keyCompromise"}));
    let reply = client::https(addr(&b.api), tls, req).await.expect("b answers");
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Each instance enforces both, in the handshake and in OCSP.
    for (api, public) in instances {
        for d in [&one, &two] {
            assert!(whoami(&s, api, &identity(&d.pem)).await != Ok(200), "{api} let a revoked device in");
            assert_eq!(ocsp(&s, public, d).await, Ok("revoked keyCompromise".to_string()), "{public}");
        }
        assert_eq!(whoami(&s, api, &identity(&three.pem)).await, Ok(200), "{api}");
        assert_eq!(ocsp(&s, public, &three).await, Ok("good".to_string()), "{public}");
    }

    let (_proxy, api, public) = start_haproxy(&s, (&s.api, &s.public), (&b.api, &b.public));
    assert_eq!(whoami(&s, api, &identity(&three.pem)).await, Ok(200), "through haproxy: {}", haproxy_log(&s));

    // A stream of each kind of call; instance a is killed in the middle.
    let start = Instant::now();
    let run_for = Duration::from_secs(6);
    let three = Arc::new(three);
    let ocsp_stream = {
        let s = &s;
        let three = three.clone();
        async move {
            let mut calls = Vec::new();
            while start.elapsed() < run_for {
                let t0 = start.elapsed();
                let r = ocsp(s, public, &three).await;
                calls.push((t0, start.elapsed(), r.as_deref() == Ok("good"), format!("{r:?}")));
            }
            calls
        }
    };
    let api_stream = {
        let s = &s;
        let who = identity(&three.pem);
        async move {
            let mut calls = Vec::new();
            while start.elapsed() < run_for {
                let t0 = start.elapsed();
                let r = whoami(s, api, &who).await;
                calls.push((t0, start.elapsed(), r == Ok(200), format!("{r:?}")));
            }
            calls
        }
    };
    let kill_at = Duration::from_millis(2000);
    // The kill takes effect a moment after the signal is sent: from the
    // signal until the instance's port refuses connections, a call may meet it.
    let killer = async {
        tokio::time::sleep(kill_at).await;
        let pid = s.pid().expect("instance a runs");
        let signalled = start.elapsed();
        let o = s.run("kill", &["-KILL", &pid.to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        while std::net::TcpStream::connect(addr(&s.api)).is_ok() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (signalled, start.elapsed())
    };
    let (ocsp_calls, api_calls, (signalled, killed)) = tokio::join!(ocsp_stream, api_stream, killer);

    for (kind, calls) in [("OCSP", &ocsp_calls), ("API", &api_calls)] {
        let after = calls.iter().filter(|(t0, _, ok, _)| *t0 > killed && *ok).count();
        assert!(after >= 5, "{kind}: only {after} calls answered after the kill: {calls:?}");
        // Calls are made one after another, so at most one was in flight.
        let failed: Vec<_> = calls.iter().filter(|(_, _, ok, _)| !ok).collect();
        for (t0, t1, _, why) in &failed {
            assert!(
                *t0 <= killed && *t1 >= signalled,
                "{kind}: a call from {t0:?} to {t1:?} failed ({why}), not in flight at the kill \
                 ({signalled:?} to {killed:?}); haproxy: {}",
                haproxy_log(&s)
            );
        }
        assert!(failed.len() <= 1, "{kind}: {failed:?}");
        eprintln!("{kind}: {} calls, {} failed (in flight at the kill)", calls.len(), failed.len());
    }
    // What was revoked through the dead instance is still refused through the proxy.
    assert!(whoami(&s, api, &identity(&one.pem)).await != Ok(200));
    assert_eq!(ocsp(&s, public, &one).await, Ok("revoked keyCompromise".to_string()));
    assert!(b.running(), "instance b died: {}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_each_client_is_named_by_the_address_haproxy_saw() {
    let env = [("CONNECT_PKI_TRUSTED_PROXIES", "127.0.0.1"), ("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "2")];
    let s = Server::start_with(Backend::Sqlite, &env).await;
    let (_proxy, api, public) = start_haproxy(&s, (&s.api, &s.public), (&s.api, &s.public));
    // TLS passes through HAProxy; the limit (2 a minute) is each client's
    // own, whatever it writes into X-Forwarded-For inside TLS.
    two_clients_keep_their_own_limit_and_name(&s, &format!("https://{api}"), "via.haproxy");

    // The HTTP frontend replaces what the client says of itself: claiming
    // TLS (and another address) through it is refused, as plain HTTP.
    let plain = format!("http://{public}/api/v1/applications");
    let claims = ["-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-For: 198.51.100.1", "--json", r#"{"name":"x"}"#];
    let (status, out) = curl_from(&s, "127.0.0.4", &plain, &claims);
    let out: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("https_required")), "{out}");
}
