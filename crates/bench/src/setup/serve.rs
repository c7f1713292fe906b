//! Starting the release binary on the benchmark's data directory, and the
//! plain HTTP and mTLS clients that talk to it.

use super::*;

impl Env {
    /// Starts the release binary on the data directory.
    pub fn serve(&self) -> anyhow::Result<Running> {
        self.serve_named("ready.json")
    }

    /// Starts one more instance on the same data directory and database.
    pub fn serve_named(&self, ready_name: &str) -> anyhow::Result<Running> {
        self.serve_with(ready_name, &[])
    }

    /// The same with extra `serve` flags (e.g. `--feed-listen false`).
    pub fn serve_with(&self, ready_name: &str, extra: &[&str]) -> anyhow::Result<Running> {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "-p", "connect-pki", "--bin", "connect-pki"])
            .current_dir(workspace())
            .status()?;
        if !status.success() {
            bail!("building connect-pki failed");
        }
        let ready = self.path(ready_name);
        let proc = Proc::spawn(
            Command::new(workspace().join("target/release/connect-pki"))
                .stdin(Stdio::null())
                .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
                .arg(&self.data)
                .arg("--ready-file")
                .arg(&ready)
                .args(extra)
                .env("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "100000000")
                // wrk hammers OCSP from one address over many connections.
                .env("CONNECT_PKI_OCSP_RATE_LIMIT_PER_MINUTE", "100000000")
                .env("CONNECT_PKI_MAX_CONNECTIONS_PER_SOURCE", "100000")
                .env("CONNECT_PKI_NEW_CONNECTIONS_PER_SOURCE_PER_MINUTE", "100000000")
                // BENCH_SERVER_LOG: the server's log filter, to see where a run's time went.
                .env("CONNECT_PKI_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let addrs: Value = loop {
            if let Some(v) = std::fs::read(&ready).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                break v;
            }
            if Instant::now() > deadline {
                bail!("connect-pki did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let public = addrs["public_addr"].as_str().unwrap_or_default().to_string();
        let api = addrs["api_addr"].as_str().unwrap_or_default().to_string();
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            r.add(CertificateDer::from(self.root_der.clone()))?;
            Arc::new(r)
        };
        Ok(Running {
            _proc: proc,
            public,
            api,
            roots: roots.clone(),
            key: self.key.pkcs8_der().to_vec(),
            issuing: self.issuing_der.clone(),
            admin: client_config(&self.root_der, &self.issuing_der, &self.admin.der, self.key.pkcs8_der())?,
            anonymous: Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth(),
            ),
        })
    }
}

/// The release binary, serving.
pub struct Running {
    _proc: Proc,
    pub public: String,
    pub api: String,
    pub(super) roots: Arc<rustls::RootCertStore>,
    pub(super) key: Vec<u8>,
    pub(super) issuing: Vec<u8>,
    /// Client configuration with the `admin_division` user's certificate.
    pub(super) admin: Arc<rustls::ClientConfig>,
    /// Client configuration without a certificate.
    anonymous: Arc<rustls::ClientConfig>,
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A TCP connection with Nagle's algorithm off, as curl and browsers open
/// them. With it on, a request written right after the TLS handshake waits
/// for the server's delayed ACK of the client's Finished: about 40 ms on the
/// first request of every connection.
pub async fn tcp(addr: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub async fn http1<S>(io: S) -> anyhow::Result<Sender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub async fn send(
    sender: &mut Sender,
    method: &str,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Bytes)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Waits until an OCSP responder at `addr` answers `request`.
pub async fn wait_ocsp(addr: &str, request: &[u8]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut s = http1(tcp(addr).await?).await?;
            send(&mut s, "POST", "/", "application/ocsp-request", request.to_vec()).await
        };
        if let Ok(Ok((200, _))) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no OCSP responder answers at {addr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Running {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self._proc.pid()
    }

    /// A client configuration that trusts our root and presents no certificate.
    pub fn anonymous(&self) -> Arc<rustls::ClientConfig> {
        self.anonymous.clone()
    }

    /// POSTs each request once to our responder and returns the responses.
    pub async fn fetch_ocsp(&self, requests: &[Vec<u8>]) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut sender = http1(tcp(&self.public).await?).await?;
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let (status, body) = send(&mut sender, "POST", "/ocsp", "application/ocsp-request", r.clone()).await?;
            if status != 200 {
                bail!("OCSP answered {status}");
            }
            out.push(body.to_vec());
        }
        Ok(out)
    }

    /// A connection to the API listener as the `admin_division` user.
    pub async fn admin(&self) -> anyhow::Result<Sender> {
        http1(self.tls(self.admin.clone()).await?).await
    }

    /// The CRL being served: its number and its entries' serials.
    pub async fn crl(&self) -> anyhow::Result<ServedCrl> {
        let mut s = http1(tcp(&self.public).await?).await?;
        let (status, body) = send(&mut s, "GET", "/crl/issuing.crl", "text/plain", Vec::new()).await?;
        if status != 200 {
            bail!("the CRL answered {status}");
        }
        let (_, crl) = x509_parser::parse_x509_crl(&body).map_err(|e| anyhow!("CRL: {e}"))?;
        let number = crl.crl_number().map(|n| n.to_string()).unwrap_or_default().parse::<u64>().unwrap_or(0);
        let serials = crl
            .iter_revoked_certificates()
            .map(|r| {
                let raw = r.raw_serial();
                let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
                raw[start..].to_vec()
            })
            .collect();
        Ok(ServedCrl { number, serials })
    }

    pub(super) async fn tls(
        &self,
        cfg: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let stream = tcp(&self.api).await?;
        let name = ServerName::try_from("127.0.0.1")?.to_owned();
        Ok(tokio_rustls::TlsConnector::from(cfg).connect(name, stream).await?)
    }
}

/// The CRL a running instance serves.
pub struct ServedCrl {
    pub number: u64,
    /// Serials as unsigned big-endian bytes without leading zeros.
    pub serials: std::collections::HashSet<Vec<u8>>,
}

impl ServedCrl {
    pub fn lists(&self, serial: &Serial) -> bool {
        let raw = serial.as_bytes();
        let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
        self.serials.contains(&raw[start..])
    }
}
