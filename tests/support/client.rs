//! The in-process tests' HTTP client: plain HTTP to the public listener and
//! HTTPS with an optional client certificate to the HTTPS (mTLS) listener, on
//! hyper's client and rustls (the stack the service itself is built on).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// A certificate of ours and its key: who a test acts as on the mTLS API.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert_der: Vec<u8>,
    /// PKCS#8.
    pub key_der: Vec<u8>,
}

impl Identity {
    /// The certificate's serial as the API writes it (lowercase hex).
    pub fn serial(&self) -> String {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.cert_der).expect("a certificate");
        hex_serial(cert.raw_serial())
    }
}

fn hex_serial(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// One HTTP request: method, path, extra headers and body.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self { method: method.into(), path: path.into(), ..Self::default() }
    }

    /// With a JSON body (and its content type).
    pub fn json(mut self, body: &Value) -> Self {
        self.headers.push(("content-type".into(), "application/json".into()));
        self.body = body.to_string().into_bytes();
        self
    }

    /// With an HTML form body, as a browser (or `curl --data-urlencode`) sends it.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect();
        self.body("application/x-www-form-urlencoded", body.join("&"))
    }

    /// With a raw body and content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("content-type".into(), content_type.into()));
        self.body = body.into();
        self
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => char::from(b).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The client side of our TLS: trusts our root only, presents `who` if given.
pub fn tls_config(root_der: &[u8], who: Option<&Identity>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec())).expect("our root is a certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match who {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(id.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone())),
            )
            .expect("a usable client certificate"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Sends `req` over HTTPS to `addr` with `tls`. A new connection each time
/// (no pool): every call is a fresh handshake, as a separate curl was.
pub async fn https(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, req: Req) -> Result<Reply, String> {
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*tls).clone()).https_only().enable_http1().build();
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
    send(&client, &format!("https://{addr}"), req).await
}

/// Sends `req` over plain HTTP to `addr`.
pub async fn http(addr: SocketAddr, req: Req) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    send(&client, &format!("http://{addr}"), req).await
}

/// Sends `req` over plain HTTP to `addr` from the local address `from`.
pub async fn http_from(addr: SocketAddr, from: std::net::IpAddr, req: Req) -> Result<Reply, String> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(from));
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
    send(&client, &format!("http://{addr}"), req).await
}

/// Sends `req` over HTTPS to `addr` from the local address `from` (any
/// 127.0.0.0/8 address reaches a loopback listener on Linux), so one test
/// can play callers on several networks.
pub async fn https_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
    tls: Arc<rustls::ClientConfig>,
    req: Req,
) -> Result<Reply, String> {
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_local_address(Some(from));
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_only()
        .enable_http1()
        .wrap_connector(tcp);
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
    send(&client, &format!("https://{addr}"), req).await
}

async fn send<C>(client: &Client<C, Full<Bytes>>, base: &str, req: Req) -> Result<Reply, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut builder = hyper::Request::builder().method(req.method.as_str()).uri(format!("{base}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(Full::new(Bytes::from(req.body))).map_err(|e| e.to_string())?;
    let call = client.request(request);
    let response = tokio::time::timeout(std::time::Duration::from_secs(20), call)
        .await
        .map_err(|_| "no answer in 20 s".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    into_reply(response).await
}

async fn into_reply(response: hyper::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.into_body().collect().await.map_err(|e| format!("{e:?}"))?.to_bytes().to_vec();
    Ok(Reply { status, headers, body })
}

/// Sends only `head` (request line and headers, announcing a body it never
/// sends) over HTTPS to `addr` and returns the response (head and body)
/// that comes back: for checking refusals made on the headers alone, which
/// a client still writing its body can miss (the server closes mid-write).
pub async fn https_head_only(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, head: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| e.to_string())?;
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    let read = async {
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(done) = complete(&answer) {
                return done;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&answer).into_owned(),
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .map_err(|_| "no answer in 20 s: the server is waiting for the body".to_string())
}

/// Sends `req` over HTTPS to `addr` from the local address `from`, as a
/// proxy that passes TLS through would: `prefix` (a PROXY protocol header)
/// goes out before the first TLS byte.
pub async fn https_with_prefix(
    addr: SocketAddr,
    from: std::net::IpAddr,
    prefix: &[u8],
    tls: Arc<rustls::ClientConfig>,
    req: Req,
) -> Result<Reply, String> {
    use tokio::io::AsyncWriteExt;
    let call = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.bind(SocketAddr::new(from, 0)).map_err(|e| e.to_string())?;
        let mut tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(prefix).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut builder = hyper::Request::builder().method(req.method.as_str()).uri(req.path.as_str());
        builder = builder.header("host", addr.to_string());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder.body(Full::new(Bytes::from(req.body))).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| format!("{e:?}"))?;
        into_reply(response).await
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), call).await.map_err(|_| "no answer in 20 s".to_string())?
}

/// The response in `bytes` once its head and `content-length` bytes of body are in.
fn complete(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))?
        .parse()
        .ok()?;
    (body.len() >= length).then(|| text.into_owned())
}

/// Sends `reqs` one after the other over one HTTP/1.1 connection kept alive,
/// as browsers and HTTP libraries do, each body as a client on a slow link
/// sends it ([`Trickle`]); the answers in order, up to the first request the
/// connection could not carry.
pub async fn https_one_connection(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    reqs: Vec<Req>,
) -> Vec<Result<Reply, String>> {
    let mut replies = Vec::new();
    let connected = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| e.to_string())?;
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())
    };
    let mut sender: hyper::client::conn::http1::SendRequest<Trickle> = match connected.await {
        Ok((sender, connection)) => {
            tokio::spawn(connection);
            sender
        }
        Err(e) => return vec![Err(e)],
    };
    for req in reqs {
        let mut builder = hyper::Request::builder().method(req.method.as_str()).uri(req.path.as_str());
        builder = builder.header("host", addr.to_string());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let reply = match builder.body(Trickle::new(req.body)) {
            Ok(request) => match sender.ready().await.map(|()| sender.send_request(request)) {
                Ok(sent) => match sent.await {
                    Ok(response) => into_reply(response).await,
                    Err(e) => Err(format!("{e:?}")),
                },
                Err(e) => Err(format!("{e:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        let failed = reply.is_err();
        replies.push(reply);
        if failed {
            break;
        }
    }
    replies
}

/// A request body whose first half goes out with the head and the rest
/// 200 ms later, so the server has the head well before the whole body.
pub struct Trickle {
    parts: std::collections::VecDeque<Bytes>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Trickle {
    fn new(body: Vec<u8>) -> Self {
        let mut body = Bytes::from(body);
        let rest = body.split_off(body.len() / 2);
        let parts = [body, rest].into_iter().filter(|b| !b.is_empty()).collect();
        Self { parts, pause: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(200))) }
    }
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.parts.len() == 1 && self.pause.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(self.parts.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.parts.iter().map(|b| b.len() as u64).sum())
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }
}
