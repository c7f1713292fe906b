//! Secrets travel over TLS only: on the plain listener the pages that take
//! codes, passwords or personal data redirect to HTTPS and their API calls
//! are refused before the body is read; relying parties' routes stay plain.
//! Behind a trusted proxy each client keeps its own limits and audit name.

use std::net::IpAddr;
use std::time::Duration;

use connect_pki_e2e::client::{self, Req};
use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGES: &[&str] = &["/apply", "/enroll", "/emergency", "/apply/status/some-token"];

async fn secret_routes_are_https_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let port = app.api.port();
    for page in PAGES {
        let reply = app.public(Req::new("GET", page)).await;
        assert_eq!(reply.status, 308, "GET {page} on plain HTTP: {}", reply.text());
        assert_eq!(reply.header("location"), Some(format!("https://127.0.0.1:{port}{page}").as_str()));
        let reply = app.open(Req::new("GET", page)).await;
        assert_ne!(reply.status, 308, "{page} is served on HTTPS");
        assert!(reply.header("strict-transport-security").is_some_and(|h| h.contains("max-age=")), "HSTS on {page}");
    }
    // A valid code and the right password, sent in clear, are refused unread:
    // the code still works afterwards over HTTPS, and no report was made.
    let user = app.register(&app.admin, 1, "cleartext", "staff").await;
    let code = app.code_for(&app.admin, user).await;
    let enroll = json!({"code": code, "generate_key": true, "password": PASSWORD, "device_label": "plain"});
    let d = app.device("reporter").await;
    let report = json!({"login_id": "reporter", "password": PASSWORD, "device_id": d.device_id});
    let calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/api/v1/enroll", Some(enroll.clone())),
        ("POST", "/api/v1/emergency", Some(report)),
        ("POST", "/api/v1/applications", Some(application("平文施設", "plain.kanri"))),
        ("GET", "/api/v1/application-status/some-token", None),
    ];
    for (method, path, body) in calls {
        let mut req = Req::new(method, path);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let reply = app.public(req).await;
        let out = reply.json();
        assert_eq!((reply.status, out["error"]["code"].as_str()), (403, Some("https_required")), "{path}: {out}");
        assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains(&format!(":{port}{path}"))), "{out}");
        assert_eq!(reply.header("connection"), Some("close"), "{path}");
    }
    // A form already posted in clear gets a Japanese page, not a redirect
    // that would make the browser send the password again.
    let form = Req::new("POST", "/enroll").form(&[("code", &code), ("password", PASSWORD), ("device_label", "x")]);
    let reply = app.public(form).await;
    assert_eq!(reply.status, 403);
    assert!(reply.text().contains("HTTPS") && reply.text().contains("開いてください"), "{}", reply.text());

    assert_eq!(app.ocsp_status(&d.id).await, "good", "no report was made over plain HTTP");
    let (_, queue) = app.api("GET", "/api/v1/escalations", Some(&app.admin), None).await;
    assert_eq!(queue.as_array().map(Vec::len), Some(0), "{queue}");
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&enroll)).await;
    assert_eq!(status, 201, "the code was not used up over plain HTTP: {out}");

    // Relying parties' routes stay on plain HTTP; metrics moved to HTTPS.
    for path in ["/ca/root.pem", "/ca/chain.pem", "/crl/issuing.crl", "/healthz"] {
        assert_eq!(app.public(Req::new("GET", path)).await.status, 200, "{path} on plain HTTP");
    }
    assert_eq!(app.public(Req::new("GET", "/metrics")).await.status, 404);
    // On HTTPS, for 行政管理課's certificate only: not for anyone, nor a manager.
    assert_eq!(app.open(Req::new("GET", "/metrics")).await.status, 401);
    let manager = app.facility(&app.admin, "計測施設", "keisoku.mgr").await;
    let manager = app.manager(&manager, "keisoku-mgr").await;
    let as_manager = app.try_mtls(Some(&manager.id), Req::new("GET", "/metrics")).await.expect("HTTPS");
    assert_eq!(as_manager.status, 403, "{}", as_manager.text());
    let as_city = app.try_mtls(Some(&app.admin), Req::new("GET", "/metrics")).await.expect("HTTPS");
    assert!(as_city.status == 200 && as_city.text().contains("connect_pki_"), "{}", as_city.text());
}
both_backends!(secret_routes_are_https_only);

/// The refusal comes before the body: a client that announced a large body
/// and sent none gets its answer at once, and the connection ends.
async fn a_secret_sent_in_clear_is_not_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tcp = tokio::net::TcpStream::connect(app.public).await.expect("connect");
    let head = "POST /api/v1/enroll HTTP/1.1\r\nHost: pki.example\r\nContent-Type: application/json\r\n\
                Content-Length: 50000\r\n\r\n{\"code\": \"";
    tcp.write_all(head.as_bytes()).await.expect("send headers");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer before the body was sent: the body is being read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("https_required") && text.contains("https://pki.example:"), "{text}");
}
both_backends!(a_secret_sent_in_clear_is_not_read);

/// `--https-url` names where pages go (a name browsers know, a standard port).
async fn redirects_go_to_the_configured_https_url(backend: Backend) {
    let mut opts = AppOptions::default();
    opts.config.https.url = Some("https://pki.city.example".parse().expect("a URL"));
    let app = spawn_app_with(backend, opts).await;
    let reply = app.public(Req::new("GET", "/enroll?lang=ja")).await;
    assert_eq!(reply.status, 308);
    assert_eq!(reply.header("location"), Some("https://pki.city.example/enroll?lang=ja"));
}
both_backends!(redirects_go_to_the_configured_https_url);

const PROXY: [u8; 4] = [127, 0, 0, 5];
const STRANGER: [u8; 4] = [127, 0, 0, 9];

/// How a submission reaches the service.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// Plain HTTP (TLS ended at a proxy, or nowhere).
    Plain,
    /// TLS straight from the caller.
    Tls,
    /// TLS passed through by a proxy that names `client` in a PROXY v2 header.
    ProxyProtocol(&'a str),
}

fn proxy_header(client: &str) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let ip: IpAddr = client.parse().expect("client address");
    let src = std::net::SocketAddr::new(ip, 40000);
    let dst = std::net::SocketAddr::new(
        if ip.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
        443,
    );
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (src, dst)).build().expect("header")
}

async fn submit(app: &TestApp, from: [u8; 4], headers: &[(&str, &str)], n: u32, via: Via<'_>) -> (u16, Value) {
    let mut req = Req::new("POST", "/api/v1/applications").json(&application("代理施設", &format!("proxied.{n}")));
    for (k, v) in headers {
        req.headers.push(((*k).into(), (*v).into()));
    }
    let tls = || client::tls_config(&app.ca.root_der, None);
    let reply = match via {
        Via::Plain => client::http_from(app.public, IpAddr::from(from), req).await,
        Via::Tls => client::https_from(app.api, IpAddr::from(from), tls(), req).await,
        Via::ProxyProtocol(client) => {
            client::https_with_prefix(app.api, IpAddr::from(from), &proxy_header(client), tls(), req).await
        }
    }
    .expect("an answer");
    (reply.status, reply.json())
}

/// Limits and audit names follow the client behind a trusted proxy: named
/// in `X-Forwarded-For` where the proxy speaks HTTP, in a PROXY protocol
/// header where it passes TLS through. A header inside TLS is written by
/// the client itself and is never believed, whoever relays it.
async fn trusted_proxies_name_the_client(backend: Backend) {
    let opts = AppOptions::with(|c| {
        c.rate_limit_per_minute = 2;
        c.https.trusted_proxies = vec!["127.0.0.5/32".parse().expect("a network")];
    });
    let app = spawn_app_with(backend, opts).await;
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    // Two clients behind an HTTP proxy, two behind a TLS pass-through one,
    // each with a limit of its own.
    let plain =
        |client: &str| [("x-forwarded-for", format!("203.0.113.99, {client}")), ("x-forwarded-proto", "https".into())];
    for (client, via) in [
        ("198.51.100.1", Via::Plain),
        ("198.51.100.2", Via::Plain),
        ("198.51.100.3", Via::ProxyProtocol("198.51.100.3")),
        ("2001:db8:5::1", Via::ProxyProtocol("2001:db8:5::1")),
    ] {
        let headers = plain(client);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for _ in 0..2 {
            let (status, out) = submit(&app, PROXY, &headers, next(), via).await;
            assert_eq!(status, 201, "{client}: {out}");
        }
        let (status, out) = submit(&app, PROXY, &headers, next(), via).await;
        assert_eq!((status, out["error"]["code"].as_str()), (429, Some("rate_limited")), "{client}: {out}");
    }
    // The same /64 is the same client.
    let (status, _) = submit(&app, PROXY, &[], next(), Via::ProxyProtocol("2001:db8:5::ffff")).await;
    assert_eq!(status, 429, "another address of 2001:db8:5::/64");
    // Inside TLS, X-Forwarded-For counts for nothing, even relayed by the
    // trusted proxy: the client behind it rotating the header is limited
    // as the client its PROXY header names…
    for i in 0..3 {
        let xff = format!("198.51.100.{}", 60 + i);
        let (status, _) =
            submit(&app, PROXY, &[("x-forwarded-for", &xff)], next(), Via::ProxyProtocol("198.51.100.4")).await;
        assert_eq!(status, if i < 2 { 201 } else { 429 }, "forged X-Forwarded-For #{i} through the TLS proxy");
    }
    // …and a stranger connecting straight, as itself.
    for i in 0..3 {
        let xff = format!("198.51.100.{}", 50 + i);
        let (status, _) = submit(&app, STRANGER, &[("x-forwarded-for", &xff)], next(), Via::Tls).await;
        assert_eq!(status, if i < 2 { 201 } else { 429 }, "forged X-Forwarded-For #{i}");
    }
    // A stranger's PROXY header is not read: its bytes break the handshake.
    let mut req = Req::new("POST", "/api/v1/applications").json(&application("代理施設", "forged.proxy"));
    req.headers.push(("content-type".into(), "application/json".into()));
    let forged = client::https_with_prefix(
        app.api,
        IpAddr::from(STRANGER),
        &proxy_header("198.51.100.77"),
        client::tls_config(&app.ca.root_der, None),
        req,
    )
    .await;
    assert!(forged.is_err(), "a PROXY header from a stranger was accepted: {:?}", forged.map(|r| r.status));

    let (_, audit) = app.api("GET", "/api/v1/audit?limit=1000", Some(&app.admin), None).await;
    let actors: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "application.submit")
        .filter_map(|r| r["actor"].as_str())
        .collect();
    for who in [
        "public:198.51.100.1",
        "public:198.51.100.2",
        "public:198.51.100.3",
        "public:2001:db8:5::1",
        "public:198.51.100.4",
        "public:127.0.0.9",
    ] {
        assert_eq!(actors.iter().filter(|a| **a == who).count(), 2, "{who} in {actors:?}");
    }
    assert!(
        !actors.iter().any(|a| a.contains("203.0.113.99") || a.contains("198.51.100.5") || a.contains("198.51.100.6")),
        "{actors:?}"
    );

    // TLS ended at the trusted proxy: it may send secrets over plain HTTP.
    // Anyone else saying so is still refused.
    let https = [("x-forwarded-for", "198.51.100.8"), ("x-forwarded-proto", "https")];
    let (status, out) = submit(&app, PROXY, &https, next(), Via::Plain).await;
    assert_eq!(status, 201, "through the proxy: {out}");
    let (status, out) = submit(&app, STRANGER, &https, next(), Via::Plain).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("https_required")), "{out}");
}
both_backends!(trusted_proxies_name_the_client);

/// An operator's own certificate (here from a stand-in for the city's
/// public CA) on the HTTPS listener; client certificates are still ours.
async fn operator_supplied_server_certificate(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root_der, cert_pem, key_pem) = public_ca_issued("127.0.0.1");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, cert_pem).expect("write");
    std::fs::write(&key, key_pem).expect("write");
    let mut opts = AppOptions::default();
    opts.config.https.cert_files = Some((cert, key));
    let app = spawn_app_with(backend, opts).await;

    let theirs = client::tls_config(&root_der, Some(&app.admin));
    let reply = client::https(app.api, theirs, Req::new("GET", "/api/v1/whoami")).await.expect("handshake");
    assert_eq!((reply.status, reply.json()["role"].as_str()), (200, Some("admin_division")), "{}", reply.text());
    let page = client::https(app.api, client::tls_config(&root_der, None), Req::new("GET", "/enroll")).await;
    assert_eq!(page.expect("the enroll page").status, 200);
    // Our own root no longer vouches for the listener.
    assert!(app.try_mtls(Some(&app.admin), Req::new("GET", "/api/v1/whoami")).await.is_err());
}
both_backends!(operator_supplied_server_certificate);

/// A root and a server certificate for `ip` under it: (root DER, chain PEM, key PEM).
fn public_ca_issued(ip: &str) -> (Vec<u8>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let root_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = params.self_signed(&root_key).expect("root");
    let issuer = Issuer::from_params(&params, &root_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.subject_alt_names = vec![SanType::IpAddress(ip.parse().expect("ip"))];
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    (root.der().to_vec(), format!("{}{}", cert.pem(), root.pem()), key.serialize_pem())
}
