//! nginx (Debian's package) as the TLS-terminating reverse proxy of
//! `deploy/nginx/connect-pki-proxy.conf`, trusted with `--trusted-proxy`:
//! each client behind it keeps its own rate limit and its own name in the
//! audit log, a header the client forged changes neither, and the routes
//! that carry secrets pass only because TLS ended at the proxy.

use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{Backend, Server};
use serde_json::Value;

use crate::nginx::{free_port, start_nginx_from};

/// `curl` from the local address `from` to `url`, trusting our root: (status, body).
pub(crate) fn curl_from(s: &Server, from: &str, url: &str, extra: &[&str]) -> (u16, String) {
    let root = s.data("ca/root.pem").display().to_string();
    let mut args = vec!["-sS", "--max-time", "20", "--interface", from, "--cacert", &root, "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let o = s.run("curl", &args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", ""));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// A facility application (manager `login`) sent to `base` from the local
/// address `from`, with `forged` as its own X-Forwarded-For: (status, body).
pub(crate) fn apply_through(s: &Server, base: &str, from: &str, forged: &str, login: &str) -> (u16, String) {
    let body = s.scratch(&format!("application-{login}.json"));
    std::fs::write(&body, application("プロキシ経由施設", login).to_string()).expect("write");
    let body = format!("@{}", body.display());
    let xff = format!("X-Forwarded-For: {forged}");
    let args = ["-H", "content-type: application/json", "-H", xff.as_str(), "--data-binary", body.as_str()];
    curl_from(s, from, &format!("{base}/api/v1/applications"), &args)
}

/// Through the proxy at `base`, with a limit of 2 applications a minute:
/// 127.0.0.2 and 127.0.0.3 each keep their own limit and audit name,
/// whatever address each writes into X-Forwarded-For itself.
pub(crate) fn two_clients_keep_their_own_limit_and_name(s: &Server, base: &str, login: &str) {
    let mut n = 0;
    let mut apply = |from: &str, forged: &str| {
        n += 1;
        apply_through(s, base, from, forged, &format!("{login}.{n}"))
    };
    for (i, forged) in ["203.0.113.7", "203.0.113.8", "203.0.113.9"].iter().enumerate() {
        let (status, out) = apply("127.0.0.2", forged);
        assert_eq!(status, if i < 2 { 201 } else { 429 }, "client .2, call {i}: {out}");
    }
    let (status, out) = apply("127.0.0.3", "127.0.0.2");
    assert_eq!(status, 201, "client .3 has a limit of its own: {out}");
    let (_, audit) = s.api("GET", "/api/v1/audit?limit=1000", Some(&s.admin_pem()), None);
    let actors: Vec<String> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "application.submit")
        .filter_map(|r| r["actor"].as_str().map(str::to_string))
        .collect();
    assert_eq!(actors.iter().filter(|a| *a == "public:127.0.0.2").count(), 2, "{actors:?}");
    assert_eq!(actors.iter().filter(|a| *a == "public:127.0.0.3").count(), 1, "{actors:?}");
    assert_eq!(actors.len(), 3, "{actors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_each_client_keeps_its_own_limit_and_name() {
    let env = [("CONNECT_PKI_TRUSTED_PROXIES", "127.0.0.1"), ("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "2")];
    let s = Server::start_with(Backend::Sqlite, &env).await;
    let port = free_port();
    let _nginx = start_nginx_from(&s, "deploy/nginx/connect-pki-proxy.conf", port, &[("${PKI_PLAIN}", &s.public)]);
    let proxy = format!("https://127.0.0.1:{port}");

    let (status, page) = curl_from(&s, "127.0.0.2", &format!("{proxy}/enroll"), &[]);
    assert_eq!(status, 200, "the enroll page through the proxy: {page}");
    assert!(page.contains("登録コード"), "{page}");

    two_clients_keep_their_own_limit_and_name(&s, &proxy, "via.proxy");

    // Straight to the plain listener from an address that is not the proxy,
    // claiming TLS: refused.
    let plain = format!("http://{}/api/v1/applications", s.public);
    let (status, out) =
        curl_from(&s, "127.0.0.4", &plain, &["-H", "X-Forwarded-Proto: https", "--json", r#"{"name":"x"}"#]);
    let out: Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("https_required")), "{out}");
}

/// Settings that cannot work stop `serve` at start with a message naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_https_settings_stop_the_service_at_start() {
    let mut s = Server::start(Backend::Sqlite).await;
    s.stop();
    let data = s.data_dir.display().to_string();
    let missing = s.scratch("missing.pem").display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--trusted-proxy", "10.0.0.0/33"], "10.0.0.0/33"),
        (&["--https-url", "http://pki.example"], "https_url must be https://"),
        (&["--tls-cert", &missing], "--tls-key"),
        (&["--tls-cert", &missing, "--tls-key", &missing], "missing.pem"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["serve", "--data-dir", &data, "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = s.run(&connect_pki_e2e::binary().display().to_string(), &args);
        let said = connect_pki_e2e::text(&out);
        assert!(!out.status.success() && said.contains(expected), "{extra:?}: {said}");
    }
}
