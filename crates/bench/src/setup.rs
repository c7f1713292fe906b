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
use connect_pki_responder::index::CertIndex;
use connect_pki_server::InitOptions;
use connect_pki_server::datadir::DataDir;
use connect_pki_store::{CertEvent, NewFacility, NewUser, Store, StoreError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Proc;

pub(crate) mod measure;
mod serve;

pub use measure::{handshake_bench, refusal_across, refusal_bench};
pub use serve::{Running, http1, send, tcp, wait_ocsp};

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
            pkcs11: None,
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
        let staff =
            store.create_user(FacilityId(1), &staff_user("bench".into()), UserStatus::Active, "bench", now).await?;
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

    /// The database the benchmark's services use.
    pub fn database_url(&self) -> String {
        connect_pki_server::config::default_database_url(&self.data)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        if rel.starts_with("ca/") { self.data.join(rel) } else { self.dir.path().join(rel) }
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
            let entries = index.crl_entries(1, now.unix_timestamp()).into_iter().map(|(k, e)| CrlEntry {
                serial: connect_pki_responder::index::serial_bytes(k),
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
                .create_user(f.id, &staff_user(format!("bench-f{}-{u}", f.id.0)), UserStatus::Active, "bench", now)
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
        self.set
            .iter()
            .map(|(c, _)| {
                connect_pki_ca::ocsp::request(&self.issuing_der, c.serial.as_bytes()).map_err(|e| anyhow!("{e}"))
            })
            .collect()
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
            let code = connect_pki_ra::secrets::new_code(UserId(2), time::Duration::hours(1), now)
                .map_err(|e| anyhow!("{e}"))?;
            self.store.create_enrollment_code(&code.stored, "bench", now).await?;
            bodies.push(json!({"code": code.display(), "csr": csr, "device_label": "bench"}).to_string());
        }
        Ok(bodies)
    }

    /// `n` EST enrollments for the same user and CSR as [`Self::enroll_bodies`]
    /// (which must run first): "Basic <label:code>" and the base64 CSR, a
    /// tab between them, one a line.
    pub async fn est_requests(&self, n: usize) -> anyhow::Result<Vec<String>> {
        use base64::Engine;
        let pem = std::fs::read_to_string(self.dir.path().join("e.csr"))?;
        // The PEM's body is the base64 DER that EST sends.
        let csr: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let now = OffsetDateTime::now_utc();
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            let code = connect_pki_ra::secrets::new_code(UserId(2), time::Duration::hours(1), now)
                .map_err(|e| anyhow!("{e}"))?;
            self.store.create_enrollment_code(&code.stored, "bench", now).await?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("bench:{}", code.display()));
            lines.push(format!("Basic {basic}\t{csr}"));
        }
        Ok(lines)
    }

    /// `n` SCEP PKCSReq messages for the benchmark user (hex DER, one a
    /// line), each with a code of its own, all from one RSA key, encrypted
    /// to the data directory's RA certificate.
    pub async fn scep_requests(&self, n: usize) -> anyhow::Result<Vec<String>> {
        use rustls_pki_types::pem::PemObject;
        let ra = rustls_pki_types::CertificateDer::from_pem_file(self.data.join("ca/scep-ra.pem"))?;
        let key = PrivateKey::generate(connect_pki_ca::KeyKind::Rsa2048)?;
        let requester = connect_pki_ca::scep::client::Requester::new(key)?;
        let now = OffsetDateTime::now_utc();
        let mut lines = Vec::with_capacity(n);
        for i in 0..n {
            let code = connect_pki_ra::secrets::new_code(UserId(2), time::Duration::hours(1), now)
                .map_err(|e| anyhow!("{e}"))?;
            self.store.create_enrollment_code(&code.stored, "bench", now).await?;
            let message = requester.pkcs_req(&ra, Some("bench"), &code.display(), &format!("bench-{i}"))?;
            lines.push(hex::encode(message));
        }
        Ok(lines)
    }

    /// How many certificates the database holds: a SCEP refusal is a 200
    /// too, so the SCEP benchmark counts what was issued.
    pub async fn certificate_count(&self) -> anyhow::Result<i64> {
        use sqlx::{Connection, Row};
        sqlx::any::install_default_drivers();
        let url = connect_pki_server::config::default_database_url(&self.data);
        let mut conn = sqlx::AnyConnection::connect(&url).await?;
        Ok(sqlx::query("select count(*) as n from certificates").fetch_one(&mut conn).await?.try_get("n")?)
    }

    /// `n` devices of the benchmark user (login `bench`), each with a
    /// certificate for the shared key, straight through the store.
    pub async fn bench_devices(&self, n: usize) -> anyhow::Result<Vec<Cert>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(add(&self.store, &self.ca, &self.key, UserId(2)).await?);
        }
        Ok(out)
    }

    /// A PKCS#10 request of the benchmark user for the shared key (DER).
    pub fn bench_csr(&self) -> anyhow::Result<Vec<u8>> {
        let key = rcgen::KeyPair::try_from(self.key.pkcs8_der())?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "bench");
        Ok(params.serialize_request(&key)?.der().to_vec())
    }

    /// Makes client configurations presenting a certificate for the shared
    /// key, for tasks that outlive a borrow of the environment.
    pub fn device_client_factory(
        &self,
    ) -> impl Fn(&[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> + Send + 'static + use<> {
        let (root, issuing, key) = (self.root_der.clone(), self.issuing_der.clone(), self.key.pkcs8_der().to_vec());
        move |der: &[u8]| client_config(&root, &issuing, der, &key)
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
        .add_device::<StoreError>(user, "bench", "bench", OffsetDateTime::now_utc(), |d| {
            let subject =
                DeviceSubject { facility: d.facility, user: d.user, device: d.device, login_id: d.login_id.clone() };
            let c = ca
                .issue_device(&spki, &subject, OffsetDateTime::now_utc())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(connect_pki_ra::stored(c))
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
            ca_generation: 1,
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

/// An active staff member the benchmark issues certificates to.
fn staff_user(login_id: String) -> NewUser {
    NewUser { login_id, display_name: "bench".into(), email: "b@example.test".into(), role: Role::Staff }
}
