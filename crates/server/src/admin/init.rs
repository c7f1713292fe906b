//! `connect-pki init`: a new data directory with the CA hierarchy, the
//! migrated database and the first `admin_division` user.
//!
//! Everything is built in a hidden sibling directory and renamed into place
//! only when every step succeeded, so a failed init leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use connect_pki_ca::hierarchy::HierarchyNames;
use connect_pki_ca::{DeviceSubject, Hierarchy, IssuingCa, KeyKind, PrivateKey, Profile, pkcs12};
use connect_pki_domain::{Clock, FacilityKind, Role};
use connect_pki_store::{BootstrapInput, NewCertificate, NewFacility, NewUser, Store, StoreError};
use serde::Serialize;

use crate::config::{FileConfig, default_database_url};
use crate::datadir::keys::Keys;
use crate::datadir::{
    CONFIG_FILE, DataDir, PASSPHRASE_ENV, PASSPHRASE_FILE, create_private_dir, write_cert_and_key, write_new,
};
use connect_pki_ra::secrets::random_secret;

/// Login ID of the first administrator.
pub(crate) const BOOTSTRAP_LOGIN: &str = "admin";

/// What `init` is asked to do.
#[derive(Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    /// `None`: SQLite inside the data directory.
    pub database_url: Option<String>,
    pub public_url: String,
    /// Extra DNS names or IP addresses for the mTLS listener's certificate.
    pub tls_names: Vec<String>,
    /// Make and keep the CA keys in this PKCS#11 token instead of files.
    pub pkcs11: Option<crate::config::Pkcs11Config>,
}

connect_pki_domain::redacted_debug!(InitOptions { data_dir, public_url, tls_names, pkcs11; database_url });

/// What `init` did; printed once (the PKCS#12 password is not stored anywhere).
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub database: String,
    pub public_url: String,
    pub root_ca_sha256: String,
    pub issuing_ca_sha256: String,
    pub passphrase_file: Option<PathBuf>,
    /// The label of the PKCS#11 token holding the CA keys, if they are in one.
    pub pkcs11_token: Option<String>,
    /// The token holding the root key alone, which `serve` never opens.
    pub pkcs11_root_token: Option<String>,
    /// Where the root key is, and how to keep it from `serve` if it is not yet.
    pub root_key: String,
    pub bootstrap: BootstrapReport,
}

/// What `init` says of the root key.
fn root_key_note(pkcs11: Option<&crate::config::Pkcs11Config>) -> String {
    const OFFLINE: &str = "or take it offline: `ca rollover --csr-out` and `--import` sign the next issuing CA \
                           with the root key elsewhere (docs/operations/rollover.md)";
    match pkcs11 {
        Some(p) => match &p.root_token {
            Some(root) => format!(
                "in PKCS#11 token {root:?}, under its own PIN; `serve` never opens it, `ca rollover` asks for \
                 CONNECT_PKI_PKCS11_ROOT_PIN (or root_pin_file under [pkcs11])"
            ),
            None => format!(
                "in PKCS#11 token {:?} with the keys `serve` uses; keep it apart with --pkcs11-root-token at init, \
                 {OFFLINE}",
                p.token
            ),
        },
        None => format!(
            "ca/root.key.pem, under the passphrase `serve` uses; move it off this machine once the service runs, \
             {OFFLINE}"
        ),
    }
}

/// The first admin's credentials.
#[derive(Clone, Serialize)]
pub struct BootstrapReport {
    pub login_id: String,
    pub serial: String,
    pub pkcs12_path: PathBuf,
    pub pkcs12_password: String,
}

connect_pki_domain::redacted_debug!(BootstrapReport { login_id, serial, pkcs12_path; pkcs12_password });

/// SHA-256 fingerprint as `AB:CD:…`, the form `openssl x509 -fingerprint -sha256` prints.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Runs `init`. Refuses a data directory that exists and is not empty.
pub async fn init(opts: &InitOptions, clock: &dyn Clock) -> anyhow::Result<InitReport> {
    let target = DataDir::new(&opts.data_dir);
    if target.is_in_use() {
        bail!(
            "data directory {} already exists and is not empty; refusing to touch it \
             (choose another --data-dir, or remove it if it is really unused)",
            opts.data_dir.display()
        );
    }
    let profile = Profile::new(&opts.public_url)?;
    let staging = staging_path(&opts.data_dir)?;
    create_private_dir(&staging)?;
    let result = build(opts, &profile, &DataDir::new(&staging), clock).await;
    let built = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // An existing empty directory (say, made by systemd) is replaced.
    if opts.data_dir.exists() {
        std::fs::remove_dir(&opts.data_dir).with_context(|| format!("cannot replace {}", opts.data_dir.display()))?;
    }
    std::fs::rename(&staging, &opts.data_dir)
        .with_context(|| format!("cannot move {} to {}", staging.display(), opts.data_dir.display()))?;
    Ok(built.relocate(&staging, &opts.data_dir))
}

fn staging_path(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = data_dir
        .file_name()
        .ok_or_else(|| anyhow!("--data-dir {} has no directory name", data_dir.display()))?
        .to_string_lossy();
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("the parent of --data-dir, {}, does not exist", parent.display());
    }
    Ok(parent.join(format!(".{name}.init-{}", random_secret(6)?)))
}

async fn build(opts: &InitOptions, profile: &Profile, dir: &DataDir, clock: &dyn Clock) -> anyhow::Result<InitReport> {
    let now = clock.now();
    create_private_dir(&dir.path().join("ca"))?;
    create_private_dir(&dir.path().join("bootstrap"))?;
    let (keys, passphrase_file) = match (&opts.pkcs11, std::env::var(PASSPHRASE_ENV)) {
        (Some(token), _) => (Keys::token(token)?, None),
        (None, Ok(p)) if !p.is_empty() => (Keys::files(&p), None),
        (None, _) => {
            let p = random_secret(32)?;
            write_new(&dir.path().join(PASSPHRASE_FILE), format!("{p}\n").as_bytes(), 0o600)?;
            (Keys::files(&p), Some(opts.data_dir.join(PASSPHRASE_FILE)))
        }
    };
    let root_keys = match &opts.pkcs11 {
        Some(token) => Keys::root_token(token)?,
        None => None,
    };
    let h = write_hierarchy(opts, profile, dir, &keys, root_keys.as_ref().unwrap_or(&keys), now)?;
    let file_config = FileConfig {
        database_url: opts.database_url.clone(),
        public_url: Some(profile.public_url().to_string()),
        pkcs11: opts.pkcs11.clone(),
        ..FileConfig::default()
    };
    write_new(&dir.path().join(CONFIG_FILE), toml::to_string(&file_config)?.as_bytes(), 0o600)?;
    write_new(&dir.path().join(crate::terms::TERMS_FILE), connect_pki_ra::terms::DEFAULT.as_bytes(), 0o644)?;
    crate::checkpoint::CheckpointKey::create(dir.path())?;
    crate::pseudonym::create(dir.path())?;
    crate::datadir::create_key_file(&dir.path().join(crate::datadir::WEBHOOK_KEY_FILE))?;
    let ca = IssuingCa::new(h.issuing_der.clone(), h.issuing_key, h.root_der.clone(), profile.clone())?;
    // Made here so that `ca/`, copied to further instances, holds it.
    dir.scep_ra(&keys, &ca, now)?;
    let (user, cert, key) = bootstrap_admin(opts, dir, &ca, now).await?;
    let password = random_secret(12)?;
    let p12 = pkcs12::build(&key, &cert.der, &[&h.issuing_der], &password, BOOTSTRAP_LOGIN)?;
    write_new(&dir.bootstrap_p12(), &p12, 0o600)?;

    Ok(InitReport {
        data_dir: dir.path().to_path_buf(),
        database: match &opts.database_url {
            Some(url) => connect_pki_store::redact(url),
            None => format!("sqlite ({})", crate::datadir::SQLITE_FILE),
        },
        public_url: profile.public_url().to_string(),
        root_ca_sha256: fingerprint(&h.root_der),
        issuing_ca_sha256: fingerprint(&h.issuing_der),
        passphrase_file,
        pkcs11_token: opts.pkcs11.as_ref().map(|p| p.token.clone()),
        pkcs11_root_token: opts.pkcs11.as_ref().and_then(|p| p.root_token.clone()),
        root_key: root_key_note(opts.pkcs11.as_ref()),
        bootstrap: BootstrapReport {
            login_id: user.login_id.unwrap_or_default(),
            serial: cert.serial.to_hex(),
            pkcs12_path: dir.bootstrap_p12(),
            pkcs12_password: password,
        },
    })
}

/// Creates the CA hierarchy and writes every certificate and encrypted key.
fn write_hierarchy(
    opts: &InitOptions,
    profile: &Profile,
    dir: &DataDir,
    keys: &Keys,
    root_keys: &Keys,
    now: time::OffsetDateTime,
) -> anyhow::Result<Hierarchy> {
    let mut tls_names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = profile.public_host().map(|h| h.trim_matches(|c| c == '[' || c == ']').to_string());
    for name in host.into_iter().chain(opts.tls_names.iter().cloned()) {
        if !tls_names.contains(&name) {
            tls_names.push(name);
        }
    }
    let names = HierarchyNames::default();
    let h = Hierarchy::create_apart(profile, &names, &tls_names, root_keys.generator(), keys.generator(), now)?;
    write_cert_and_key(dir, "root", &h.root_der, &h.root_key, root_keys)?;
    write_cert_and_key(dir, "issuing", &h.issuing_der, &h.issuing_key, keys)?;
    write_cert_and_key(dir, "ocsp", &h.ocsp_der, &h.ocsp_key, keys)?;
    write_cert_and_key(dir, "tls", &h.tls_der, &h.tls_key, keys)?;
    let chain = format!(
        "{}{}",
        connect_pki_ca::issue::to_pem("CERTIFICATE", &h.issuing_der),
        connect_pki_ca::issue::to_pem("CERTIFICATE", &h.root_der)
    );
    write_new(&dir.ca("chain.pem"), chain.as_bytes(), 0o644)?;
    Ok(h)
}

/// Creates the database, the city's own facility and the first
/// 行政管理課 account with its certificate and key.
async fn bootstrap_admin(
    opts: &InitOptions,
    dir: &DataDir,
    ca: &IssuingCa,
    now: time::OffsetDateTime,
) -> anyhow::Result<(connect_pki_store::UserRecord, NewCertificate, PrivateKey)> {
    let database_url = match &opts.database_url {
        Some(url) => url.clone(),
        None => {
            // Created empty with owner-only access before SQLite opens it;
            // SQLite gives its -wal and -shm files the same mode.
            write_new(&dir.path().join(crate::datadir::SQLITE_FILE), b"", 0o600)?;
            default_database_url(dir.path())
        }
    };
    let store = Store::connect(&database_url).await?;
    let outcome = bootstrap_database(&store, ca, now).await;
    store.close().await;
    outcome.map_err(|e| match e.downcast::<StoreError>() {
        Ok(StoreError::AlreadyInitialised) => anyhow!(
            "the database {} already holds a connect-pki installation; init creates a new one only",
            connect_pki_store::redact(&database_url)
        ),
        Ok(other) => anyhow::Error::new(other),
        Err(e) => e,
    })
}

/// Writes what `init` puts into a new database: the city's own facility and
/// its first 行政管理課 account with one certificate (and its key) from `ca`.
pub async fn bootstrap_database(
    store: &Store,
    ca: &IssuingCa,
    now: time::OffsetDateTime,
) -> anyhow::Result<(connect_pki_store::UserRecord, NewCertificate, PrivateKey)> {
    let input = BootstrapInput {
        facility: NewFacility {
            name: "千歳市 総務部 行政管理課".into(),
            kind: FacilityKind::Internal,
            address: String::new(),
            department: None,
        },
        admin: NewUser {
            login_id: BOOTSTRAP_LOGIN.into(),
            display_name: "行政管理課 初期管理者".into(),
            email: String::new(),
            role: Role::AdminDivision,
        },
        device_label: "初期管理者 (init)".into(),
    };
    let mut key: Option<PrivateKey> = None;
    let (_, user, _, cert) = store
        .bootstrap::<anyhow::Error>(&input, now, |d| {
            let subject =
                DeviceSubject { facility: d.facility, user: d.user, device: d.device, login_id: d.login_id.clone() };
            let (cert, k) = ca.issue_device_with_new_key(KeyKind::P256, &subject, now)?;
            key = Some(k);
            Ok(connect_pki_ra::stored(cert))
        })
        .await?;
    let key = key.ok_or_else(|| anyhow!("bootstrap certificate was not issued"))?;
    Ok((user, cert, key))
}

impl InitReport {
    /// Rewrites paths from the staging directory to the final one.
    fn relocate(mut self, from: &Path, to: &Path) -> Self {
        let fix = |p: &Path| to.join(p.strip_prefix(from).unwrap_or(p));
        self.data_dir = to.to_path_buf();
        self.bootstrap.pkcs12_path = fix(&self.bootstrap.pkcs12_path);
        self
    }
}
