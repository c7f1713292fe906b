//! The benchmark's world: a data directory with thousands of certificates,
//! the release binary serving it, and clients for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use connect_pki_ca::crl::CrlEntry;
use connect_pki_ca::{DeviceSubject, IssuingCa, KeyKind, PrivateKey};
use connect_pki_domain::certificate::Change;
use connect_pki_domain::{CertStatus, FacilityId, FacilityKind, Reason, Role, Serial, SystemClock, UserId, UserStatus};
use connect_pki_server::InitOptions;
use connect_pki_server::datadir::DataDir;
use connect_pki_server::revocation::index::CertIndex;
use connect_pki_store::{CertEvent, NewCertificate, NewFacility, NewUser, Store, StoreError};
use der::Encode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Proc;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One certificate the benchmark holds the key of.
pub struct Cert {
    pub serial: Serial,
    pub der: Vec<u8>,
}

pub struct Env {
    dir: tempfile::TempDir,
    data: PathBuf,
    store: Store,
    pub ca: IssuingCa,
    issuing_der: Vec<u8>,
    root_der: Vec<u8>,
    /// One key shared by every benchmark device (the certificates differ).
    key: PrivateKey,
    pub admin: Cert,
    /// The OCSP set: every certificate, 10 % of them revoked.
    pub set: Vec<(Cert, bool)>,
    /// Devices the refusal benchmark revokes one by one.
    pub to_revoke: Vec<Cert>,
}

impl Env {
    pub async fn create(n: usize, n_refusal: usize) -> anyhow::Result<Self> {
        Self::create_on(n, n_refusal, None).await
    }

    /// The same on a given database (PostgreSQL for the cross-instance figure).
    pub async fn create_on(n: usize, n_refusal: usize, database_url: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let opts = InitOptions {
            data_dir: data.clone(),
            database_url: database_url.clone(),
            public_url: "http://127.0.0.1:8080".into(),
            tls_names: Vec::new(),
        };
        connect_pki_server::init(&opts, &SystemClock).await?;
        let loaded = DataDir::new(&data).load("http://127.0.0.1:8080")?;
        let store =
            Store::connect(&database_url.unwrap_or_else(|| connect_pki_server::config::default_database_url(&data)))
                .await?;
        let (issuing_der, root_der) = (loaded.issuing_der.clone(), loaded.root_der.clone());
        let ca = loaded.issuing;
        let key = PrivateKey::generate(KeyKind::P256)?;
        let now = OffsetDateTime::now_utc();
        let staff = store
            .create_user(
                FacilityId(1),
                &NewUser {
                    login_id: "bench".into(),
                    display_name: "bench".into(),
                    email: "b@example.test".into(),
                    role: Role::Staff,
                },
                UserStatus::Active,
                "bench",
                now,
            )
            .await?;
        let started = Instant::now();
        let admin = add(&store, &ca, &key, UserId(1)).await?;
        let mut set = Vec::with_capacity(n);
        for i in 0..n {
            let c = add(&store, &ca, &key, staff.id).await?;
            let revoked = i % 10 == 0;
            if revoked {
                store.change_certificate(&c.serial, Change::Revoke(Reason::KeyCompromise), "bench", now).await?;
            }
            set.push((c, revoked));
        }
        let mut to_revoke = Vec::with_capacity(n_refusal);
        for _ in 0..n_refusal {
            to_revoke.push(add(&store, &ca, &key, staff.id).await?);
        }
        eprintln!("   issued {} certificates in {:.1} s", n + n_refusal + 1, started.elapsed().as_secs_f64());
        Ok(Self { dir, data, store, ca, issuing_der, root_der, key, admin, set, to_revoke })
    }

    /// Keeps the working directory after the run, for inspection.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        if rel.starts_with("ca/") { self.data.join(rel) } else { self.dir.path().join(rel) }
    }

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
                .env("CONNECT_PKI_LOG", "warn")
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
            roots,
            key: self.key.pkcs8_der().to_vec(),
            issuing: self.issuing_der.clone(),
            admin: client_config(&self.root_der, &self.issuing_der, &self.admin.der, self.key.pkcs8_der())?,
        })
    }

    /// A CRL of `n` revoked entries built the way the service does: index
    /// scan, then signing. Returns (median ms of 3, DER size).
    pub fn crl_rebuild(&self, n: usize) -> anyhow::Result<(f64, usize)> {
        let index = big_index(n);
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let now = OffsetDateTime::now_utc();
            let entries = index.crl_entries(now.unix_timestamp()).into_iter().map(|(k, e)| CrlEntry {
                serial: connect_pki_server::revocation::index::serial_bytes(k),
                revoked_at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(now),
                reason: e.reason.unwrap_or(Reason::Unspecified),
            });
            let der = self.ca.sign_crl(entries, 7, now, now + time::Duration::hours(24))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = der.len();
        }
        Ok((crate::median(times), size))
    }

    /// `openssl ca -gencrl` over an index of `n` revoked certificates.
    pub fn openssl_gencrl(&self, n: usize) -> anyhow::Result<(f64, usize)> {
        let dir = self.path(&format!("openssl-ca-{n}"));
        std::fs::create_dir_all(&dir)?;
        let mut index = String::with_capacity(n * 80);
        let mut rng = 0x9e3779b97f4a7c15u64;
        for _ in 0..n {
            let mut serial = [0u8; 16];
            for chunk in serial.chunks_mut(8) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                chunk.copy_from_slice(&rng.to_be_bytes()[..chunk.len()]);
            }
            serial[0] = (serial[0] & 0x7f) | 0x40;
            index.push_str(&format!(
                "R\t271231000000Z\t261125000000Z,keyCompromise\t{}\tunknown\t/CN=x\n",
                hex::encode_upper(serial)
            ));
        }
        std::fs::write(dir.join("index.txt"), index)?;
        std::fs::write(dir.join("crlnumber"), "1000\n")?;
        let key = self.plain_key("issuing")?;
        let cnf = format!(
            "[ca]\ndefault_ca = ca\n[ca]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\ncertificate = {c}\nprivate_key = {k}\n\
             default_md = sha256\ndefault_crl_days = 1\n",
            d = dir.display(),
            c = self.path("ca/issuing.pem").display(),
            k = key.display()
        );
        std::fs::write(dir.join("ca.cnf"), cnf)?;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let o = Command::new("openssl")
                .args(["ca", "-gencrl", "-batch", "-config"])
                .arg(dir.join("ca.cnf"))
                .arg("-out")
                .arg(dir.join("crl.pem"))
                .output()?;
            if !o.status.success() {
                bail!("openssl ca -gencrl: {}", String::from_utf8_lossy(&o.stderr));
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let o =
            Command::new("openssl").args(["crl", "-in"]).arg(dir.join("crl.pem")).args(["-outform", "DER"]).output()?;
        Ok((crate::median(times), o.stdout.len()))
    }

    /// A key of the data directory decrypted to a PEM file (benchmark only:
    /// OpenSSL's responder and CA need them in the clear).
    pub fn plain_key(&self, name: &str) -> anyhow::Result<PathBuf> {
        let pass = DataDir::new(&self.data).passphrase()?;
        let pem = std::fs::read_to_string(self.path(&format!("ca/{name}.key.pem")))?;
        let key = PrivateKey::from_encrypted_pem(&pem, &pass, name)?;
        let out = self.path(&format!("{name}.plain.key"));
        std::fs::write(&out, connect_pki_ca::issue::to_pem("PRIVATE KEY", key.pkcs8_der()))?;
        Ok(out)
    }

    /// The issuing CA's key (the benchmark signs cfssl's CA-signed responses with it).
    pub fn issuing_key(&self) -> anyhow::Result<PrivateKey> {
        let pass = DataDir::new(&self.data).passphrase()?;
        let pem = std::fs::read_to_string(self.path("ca/issuing.key.pem"))?;
        Ok(PrivateKey::from_encrypted_pem(&pem, &pass, "issuing")?)
    }

    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing_der
    }

    /// A new approved facility with `users` staff users of `per_user` valid
    /// certificates each, written through the Store API as for the other
    /// benchmark certificates. Returns the facility and its serials.
    pub async fn add_facility(&self, users: usize, per_user: usize) -> anyhow::Result<(FacilityId, Vec<Serial>)> {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let f = self
            .store
            .create_facility(
                &NewFacility {
                    name: "bench facility".into(),
                    kind: FacilityKind::Internal,
                    address: "bench".into(),
                    department: None,
                },
                "bench",
                now,
            )
            .await?;
        let mut serials = Vec::with_capacity(users * per_user);
        for u in 0..users {
            let user = self
                .store
                .create_user(
                    f.id,
                    &NewUser {
                        login_id: format!("bench-f{}-{u}", f.id.0),
                        display_name: "bench".into(),
                        email: "b@example.test".into(),
                        role: Role::Staff,
                    },
                    UserStatus::Active,
                    "bench",
                    now,
                )
                .await?;
            for _ in 0..per_user {
                serials.push(add(&self.store, &self.ca, &self.key, user.id).await?.serial);
            }
        }
        eprintln!(
            "   facility {} with {} valid certificates set up in {:.1} s",
            f.id.0,
            serials.len(),
            started.elapsed().as_secs_f64()
        );
        Ok((f.id, serials))
    }

    /// OpenSSL's CA database of the OCSP set, for `openssl ocsp -index`.
    pub fn openssl_index(&self) -> PathBuf {
        let mut index = String::new();
        for (c, revoked) in &self.set {
            let serial = hex::encode_upper(c.serial.as_bytes());
            if *revoked {
                index.push_str(&format!(
                    "R\t271231000000Z\t261125000000Z,keyCompromise\t{serial}\tunknown\t/CN=bench\n"
                ));
            } else {
                index.push_str(&format!("V\t271231000000Z\t\t{serial}\tunknown\t/CN=bench\n"));
            }
        }
        let path = self.path("openssl-index.txt");
        let _ = std::fs::write(&path, index);
        let _ = std::fs::write(self.path("openssl-index.txt.attr"), "unique_subject = no\n");
        path
    }

    /// One DER OCSP request (SHA-1 CertID, no nonce — what RFC 5019 clients
    /// send) per certificate of the set.
    pub fn ocsp_requests(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let (_, issuer) = x509_parser::parse_x509_certificate(&self.issuing_der).map_err(|e| anyhow!("{e}"))?;
        let sha1 =
            |d: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, d).as_ref().to_vec();
        let name_hash = sha1(issuer.subject().as_raw());
        let key_hash = sha1(&issuer.public_key().subject_public_key.data);
        let alg = x509_cert::spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new("1.3.14.3.2.26").map_err(|e| anyhow!("{e}"))?,
            parameters: Some(der::asn1::Null.into()),
        };
        self.set
            .iter()
            .map(|(c, _)| {
                let id = x509_ocsp::CertId {
                    hash_algorithm: alg.clone(),
                    issuer_name_hash: der::asn1::OctetString::new(name_hash.clone())?,
                    issuer_key_hash: der::asn1::OctetString::new(key_hash.clone())?,
                    serial_number: x509_cert::serial_number::SerialNumber::new(c.serial.as_bytes())?,
                };
                let req = x509_ocsp::OcspRequest {
                    tbs_request: x509_ocsp::TbsRequest {
                        version: x509_ocsp::Version::V1,
                        requestor_name: None,
                        request_list: vec![x509_ocsp::Request { req_cert: id, single_request_extensions: None }],
                        request_extensions: None,
                    },
                    optional_signature: None,
                };
                req.to_der()
            })
            .collect::<Result<_, der::Error>>()
            .map_err(|e| anyhow!("{e}"))
    }

    /// `n` enrollment requests, each with its own code, for users who already
    /// have a password (a second device), all with one `openssl req` CSR.
    pub async fn enroll_bodies(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let dir = self.dir.path();
        let o = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "e.key",
                "-subj",
                "/CN=bench",
                "-out",
                "e.csr",
            ])
            .current_dir(dir)
            .output()?;
        if !o.status.success() {
            bail!("openssl req failed");
        }
        let csr = std::fs::read_to_string(dir.join("e.csr"))?;
        {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn =
                sqlx::AnyConnection::connect(&connect_pki_server::config::default_database_url(&self.data)).await?;
            // Any argon2 PHC string: the benchmark users never sign in.
            sqlx::query("update users set password_hash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA' where login_id = 'bench'")
                .execute(&mut conn)
                .await?;
        }
        let mut bodies = Vec::with_capacity(n);
        let now = OffsetDateTime::now_utc();
        for _ in 0..n {
            let code = connect_pki_server::service::secrets::new_code(UserId(2), time::Duration::hours(1), now)
                .map_err(|e| anyhow!("{e}"))?;
            let id = self.store.create_enrollment_code(&code.stored, "bench", now).await?;
            bodies.push(json!({"code": code.display(id), "csr": csr, "device_label": "bench"}).to_string());
        }
        Ok(bodies)
    }

    fn client_config(&self, cert: &Cert) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        client_config(&self.root_der, &self.issuing_der, &cert.der, self.key.pkcs8_der())
    }
}

fn client_config(root: &[u8], issuing: &[u8], leaf: &[u8], key: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(leaf.to_vec()), CertificateDer::from(issuing.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )?;
    Ok(Arc::new(cfg))
}

async fn add(store: &Store, ca: &IssuingCa, key: &PrivateKey, user: UserId) -> anyhow::Result<Cert> {
    let spki = key.public_key_der();
    let (_, cert) = store
        .add_device::<StoreError, _>(user, "bench", "bench", OffsetDateTime::now_utc(), |d| {
            let subject =
                DeviceSubject { facility: d.facility, user: d.user, device: d.device, login_id: d.login_id.clone() };
            let c = ca
                .issue_device(&spki, &subject, OffsetDateTime::now_utc())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(NewCertificate { serial: c.serial, der: c.der, not_before: c.not_before, not_after: c.not_after })
        })
        .await?;
    Ok(Cert { serial: cert.serial, der: cert.der })
}

/// An index of `n` revoked certificates with random serials.
pub fn big_index(n: usize) -> CertIndex {
    let index = CertIndex::default();
    let mut rng = 0x2545f4914f6cdd1du64;
    let not_after = OffsetDateTime::now_utc() + time::Duration::days(365);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut serial = [0u8; 16];
        for chunk in serial.chunks_mut(8) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            chunk.copy_from_slice(&rng.to_be_bytes()[..chunk.len()]);
        }
        serial[0] = (serial[0] & 0x7f) | 0x40;
        batch.push(CertEvent {
            id: i as i64 + 1,
            serial: Serial::from_bytes(&serial).unwrap_or_else(|_| unreachable!()),
            status: CertStatus::Revoked,
            reason: Some(Reason::KeyCompromise),
            at: OffsetDateTime::now_utc(),
            not_after,
        });
        if batch.len() == batch.capacity() {
            index.apply(&batch);
            batch.clear();
        }
    }
    index.apply(&batch);
    index
}

/// Resident memory of this process, from /proc.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The release binary, serving.
pub struct Running {
    _proc: Proc,
    pub public: String,
    pub api: String,
    roots: Arc<rustls::RootCertStore>,
    key: Vec<u8>,
    issuing: Vec<u8>,
    /// Client configuration with the `admin_division` user's certificate.
    admin: Arc<rustls::ClientConfig>,
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

    async fn tls(
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

/// Revokes devices one by one and, right after each revoke call returns,
/// tries a handshake with the revoked certificate.
pub async fn refusal_bench(env: &Env, server: &Running) -> anyhow::Result<Value> {
    refusal_across(env, &env.to_revoke, server, server).await
}

/// Revokes `devices` through `caller`'s instance and measures until
/// `server`'s instance refuses the revoked certificate (the same instance, or
/// another one sharing the database). Each attempt is a new mTLS connection
/// and a `GET /api/v1/whoami`. Two moments are recorded: the first refusal of
/// either kind (the handshake fails, or the API answers 401 from its
/// per-request check of the certificate in the database), and the first
/// refused handshake, which is the instance's own revocation index saying
/// "revoked" (the index is also what its OCSP responder and CRL read).
pub async fn refusal_across(env: &Env, devices: &[Cert], caller: &Running, server: &Running) -> anyhow::Result<Value> {
    let _ = (&server.roots, &server.issuing, &caller.key);
    let mut admin = caller.admin().await?;
    let (mut from_call, mut after_response) = (Vec::new(), Vec::new());
    let (mut index_from_call, mut index_after_response) = (Vec::new(), Vec::new());
    let mut first_attempt = 0usize;
    let mut first_by_request = 0usize;
    let across = !std::ptr::eq(caller, server);
    let mut jitter = 0x9e37_79b9_u32;
    for dev in devices {
        let cfg = env.client_config(dev)?;
        if across {
            // Revocations at random moments relative to the other instance's
            // feed poll, so the figure is not phase-locked to it.
            jitter = jitter.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            tokio::time::sleep(Duration::from_millis(u64::from(jitter >> 25))).await;
        }
        let t0 = Instant::now();
        let (status, body) = send(
            &mut admin,
            "POST",
            &format!("/api/v1/certificates/{}/revoke", dev.serial),
            "application/json",
            br#"{"reason":"keyCompromise"}"#.to_vec(),
        )
        .await?;
        if status != 200 {
            bail!("revoke answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let t1 = Instant::now();
        let mut attempts = 0;
        let mut first: Option<Instant> = None;
        loop {
            attempts += 1;
            // Any failure of the connection itself is the handshake refused
            // (with TLS 1.3 the server's alert arrives after the client has
            // finished, so it surfaces on the first read or write).
            let answer = match server.tls(cfg.clone()).await {
                Err(_) => None,
                Ok(tls) => match http1(tls).await {
                    Err(_) => None,
                    Ok(mut s) => send(&mut s, "GET", "/api/v1/whoami", "text/plain", Vec::new()).await.ok(),
                },
            };
            let now = Instant::now();
            match answer {
                None => {
                    if first.is_none() {
                        first = Some(now);
                        if attempts == 1 {
                            first_attempt += 1;
                        }
                    }
                    index_from_call.push((now - t0).as_secs_f64() * 1000.0);
                    index_after_response.push((now - t1).as_secs_f64() * 1000.0);
                    break;
                }
                Some((200, _)) => {}
                Some(_) => {
                    if first.is_none() {
                        first = Some(now);
                        first_by_request += 1;
                        if attempts == 1 {
                            first_attempt += 1;
                        }
                    }
                }
            }
            if attempts > 100_000 || now - t1 > Duration::from_secs(30) {
                bail!(
                    "the other instance still completed handshakes with a revoked certificate after {attempts} attempts"
                );
            }
        }
        let t2 = first.unwrap_or(t1);
        from_call.push((t2 - t0).as_secs_f64() * 1000.0);
        after_response.push((t2 - t1).as_secs_f64() * 1000.0);
    }
    let pct = crate::percentile;
    let r = json!({
        "revocations": devices.len(),
        "first_attempt_refused": first_attempt,
        "first_refusal_by_api_check": first_by_request,
        "from_call_p50_ms": pct(&mut from_call, 0.5),
        "from_call_p99_ms": pct(&mut from_call, 0.99),
        "after_response_p50_ms": pct(&mut after_response, 0.5),
        "after_response_p99_ms": pct(&mut after_response, 0.99),
        "handshake_refused_from_call_p50_ms": pct(&mut index_from_call, 0.5),
        "handshake_refused_from_call_p99_ms": pct(&mut index_from_call, 0.99),
        "handshake_refused_after_response_p50_ms": pct(&mut index_after_response, 0.5),
        "handshake_refused_after_response_p99_ms": pct(&mut index_after_response, 0.99),
        "handshake_refused_after_response_max_ms": pct(&mut index_after_response, 1.0),
    });
    eprintln!("   {r}");
    Ok(r)
}

/// Handshakes in memory (no sockets): the listener's rustls configuration
/// with the live check over an index of the whole set, and without it.
pub fn handshake_bench(env: &Env, n: usize) -> anyhow::Result<Value> {
    let index = Arc::new(CertIndex::default());
    let events: Vec<CertEvent> = env
        .set
        .iter()
        .enumerate()
        .map(|(i, (c, revoked))| CertEvent {
            id: i as i64 + 1,
            serial: c.serial.clone(),
            status: if *revoked { CertStatus::Revoked } else { CertStatus::Valid },
            reason: revoked.then_some(Reason::KeyCompromise),
            at: OffsetDateTime::now_utc(),
            not_after: OffsetDateTime::now_utc() + time::Duration::days(365),
        })
        .collect();
    index.apply(&events);
    let loaded = DataDir::new(&env.data).load("http://127.0.0.1:8080")?;
    let identity = connect_pki_server::tls::TlsIdentity {
        issuing_der: &loaded.issuing_der,
        tls_der: &loaded.tls_der,
        tls_key: &loaded.tls_key,
    };
    let lookup: Arc<connect_pki_server::tls::CertIndexRef> = {
        let index = index.clone();
        Arc::new(move |s: &[u8]| index.get(s).map(|e| e.status))
    };
    let with = connect_pki_server::tls::server_config(&identity, Some(lookup))?;
    let without = connect_pki_server::tls::server_config(&identity, None)?;
    let valid = env.set.iter().find(|(_, r)| !r).map(|(c, _)| c).context("a valid certificate")?;
    let client = env.client_config(valid)?;
    let mut t_with = Duration::ZERO;
    let mut t_without = Duration::ZERO;
    // Interleaved, so both see the same machine state.
    for _ in 0..n {
        t_with += handshake(&with, &client)?;
        t_without += handshake(&without, &client)?;
    }
    let per_s = |t: Duration| n as f64 / t.as_secs_f64();
    let (a, b) = (per_s(t_with), per_s(t_without));
    let r = json!({"handshakes": n, "with_live_check_per_s": a, "without_per_s": b, "overhead_percent": (b - a) / b * 100.0});
    eprintln!("   {r}");
    Ok(r)
}

fn handshake(server: &Arc<rustls::ServerConfig>, client: &Arc<rustls::ClientConfig>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut s = rustls::ServerConnection::new(server.clone())?;
    let mut c = rustls::ClientConnection::new(client.clone(), ServerName::try_from("127.0.0.1")?.to_owned())?;
    let mut buf = Vec::new();
    for _ in 0..10 {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd)?;
        }
        s.process_new_packets()?;
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd)?;
        }
        c.process_new_packets()?;
        if !s.is_handshaking() && !c.is_handshaking() {
            return Ok(t.elapsed());
        }
    }
    bail!("handshake did not complete")
}
