//! The data directory: what lives where, with which permissions, and how the
//! CA material is written and read back.
//!
//! ```text
//! <data-dir>/config.toml          settings written by init
//! <data-dir>/passphrase           0600, only when CONNECT_PKI_PASSPHRASE was not set at init
//! <data-dir>/connect-pki.db       SQLite database (default backend)
//! <data-dir>/audit-checkpoint.key  0600, the MAC key of the audit checkpoints (crate::checkpoint)
//! <data-dir>/audit-checkpoints.jsonl  0600, checkpoints of the audit log's head, appended by serve
//! <data-dir>/serve.lock         held (shared) by every running serve; restore refuses while it is
//! <data-dir>/pseudonym.key        0600, the key of the keyed hashes in the audit log (crate::pseudonym)
//! <data-dir>/mdm-webhook.key      0600, what device-management systems' webhook secrets derive from (ra::mdm)
//! <data-dir>/ca/*.pem             certificates
//! <data-dir>/ca/*.key.pem         private keys, encrypted PKCS#8 (scrypt + AES-256-CBC), 0600;
//!                                 none when config.toml names a PKCS#11 token (crate::keys)
//! <data-dir>/ca/issuing-N.pem, ocsp-N.pem  issuing CA generation N and its OCSP signer (after a rollover)
//! <data-dir>/ca/*.new             a renewed certificate and key while they replace the old pair
//! <data-dir>/crl/issuing.crl      the newest CRL this instance signed, kept for a restore (crate::backup)
//! <data-dir>/crl/issued.jsonl     0600, every certificate this instance issued, for a restore (journal.rs)
//! <data-dir>/terms.toml           the terms of use in force (crate::terms)
//! <data-dir>/bootstrap/admin.p12  the first admin's PKCS#12, 0600
//! ```

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use connect_pki_ca::issue::to_pem;
use connect_pki_ca::{CaKey, IssuingCa, Profile};

pub(crate) mod journal;
pub mod keys;
mod scep;

use keys::Keys;

/// Held (shared) by every running `serve` (see [`DataDir::hold_serving`]).
pub(crate) const SERVE_LOCK: &str = "serve.lock";
pub(crate) use crate::config::{CONFIG_FILE, SQLITE_FILE};
/// Generated passphrase file name.
pub(crate) const PASSPHRASE_FILE: &str = "passphrase";
/// Environment variable holding the CA key passphrase.
pub(crate) const PASSPHRASE_ENV: &str = "CONNECT_PKI_PASSPHRASE";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub fn ca(&self, file: &str) -> PathBuf {
        self.0.join("ca").join(file)
    }

    pub(crate) fn bootstrap_p12(&self) -> PathBuf {
        self.0.join("bootstrap").join("admin.p12")
    }

    /// Whether the directory exists and holds anything.
    pub(crate) fn is_in_use(&self) -> bool {
        match std::fs::read_dir(&self.0) {
            Ok(mut entries) => entries.next().is_some(),
            Err(_) => self.0.exists(),
        }
    }

    /// The CA key passphrase: `CONNECT_PKI_PASSPHRASE` if set, else the
    /// generated passphrase file.
    pub fn passphrase(&self) -> anyhow::Result<String> {
        if let Ok(p) = std::env::var(PASSPHRASE_ENV)
            && !p.is_empty()
        {
            return Ok(p);
        }
        let path = self.0.join(PASSPHRASE_FILE);
        let p = std::fs::read_to_string(&path)
            .map_err(|e| anyhow!("no CA key passphrase: set {PASSPHRASE_ENV} or provide {} ({e})", path.display()))?;
        Ok(p.trim_end().to_string())
    }

    /// The generations of the issuing CA in the data directory, oldest
    /// first: 1 (`issuing.pem`) and every `issuing-N.pem` a rollover added.
    pub(crate) fn generations(&self) -> Vec<u32> {
        let mut out = vec![1];
        while self.ca(&format!("{}.pem", issuing_file(out.len() as u32 + 1))).exists() {
            out.push(out.len() as u32 + 1);
        }
        out
    }

    /// The certificate in `ca/<file>` (PEM on disk), as DER.
    pub(crate) fn cert_der(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.ca(file);
        let pem = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (_, doc) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow!("{} is not a PEM certificate: {e}", path.display()))?;
        Ok(doc.contents)
    }

    /// A shared lock on `serve.lock` held by every running `serve` on this
    /// data directory for its whole life (the kernel drops it when the
    /// process ends, however it ends): `restore` refuses while any is held.
    pub(crate) fn hold_serving(&self) -> anyhow::Result<std::fs::File> {
        let f = self.serve_lock()?;
        f.lock_shared().with_context(|| format!("cannot lock {}", self.0.join(SERVE_LOCK).display()))?;
        Ok(f)
    }

    /// Whether a `serve` runs on this data directory now.
    pub(crate) fn is_served(&self) -> anyhow::Result<bool> {
        if !self.0.join(SERVE_LOCK).exists() {
            return Ok(false);
        }
        let f = self.serve_lock()?;
        match f.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.0.join(SERVE_LOCK).display()))
            }
        }
    }

    fn serve_lock(&self) -> anyhow::Result<std::fs::File> {
        let path = self.0.join(SERVE_LOCK);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))
    }

    /// An exclusive lock on the CA files, held while the value lives:
    /// instances that share a data directory renew one at a time.
    pub(crate) fn lock_ca(&self) -> anyhow::Result<std::fs::File> {
        let path = self.ca(".lock");
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(f)
    }

    /// Loads the issuing CAs and the service's TLS identity, with their
    /// keys from the store the directory was initialised with.
    ///
    /// Under the CA lock: another instance renewing a certificate in this
    /// directory moves its key and certificate into place one after the
    /// other, and a start in between would finish (or discard) that
    /// replacement half-way, or read the new key beside the old certificate.
    pub fn load(&self, public_url: &str) -> anyhow::Result<LoadedCa> {
        let _one_at_a_time = self.lock_ca()?;
        let keys = Keys::of(self)?;
        let generations = self.generations();
        for g in &generations {
            self.finish_replacement(&ocsp_file(*g))?;
        }
        self.finish_replacement("tls")?;
        let read = |file: &str| self.cert_der(file);
        let key = |name: &str| keys.load(self, name);
        let root_der = read("root.pem")?;
        let profile = Profile::new(public_url)?;
        let mut loaded = Vec::new();
        for g in generations {
            let (issuing, ocsp) = (issuing_file(g), ocsp_file(g));
            let der = read(&format!("{issuing}.pem"))?;
            let ca = IssuingCa::new(der.clone(), key(&issuing)?, root_der.clone(), profile.clone())?.with_generation(g);
            loaded.push(CaGeneration {
                issuing: ca,
                issuing_der: der,
                ocsp_der: read(&format!("{ocsp}.pem"))?,
                ocsp_key: key(&ocsp)?,
            });
        }
        let active = loaded.pop().ok_or_else(|| anyhow!("no issuing CA in {}", self.ca("").display()))?;
        Ok(LoadedCa {
            issuing: active.issuing,
            root_der,
            issuing_der: active.issuing_der,
            tls_der: read("tls.pem")?,
            tls_key: key("tls")?,
            ocsp_der: active.ocsp_der,
            ocsp_key: active.ocsp_key,
            older: loaded,
            keys,
        })
    }
}

/// The file stem of issuing CA generation `g` in `ca/`.
pub(crate) fn issuing_file(g: u32) -> String {
    connect_pki_ca::issue::name_of_generation(g)
}

/// The file stem of the OCSP signer of issuing CA generation `g` in `ca/`.
pub(crate) fn ocsp_file(g: u32) -> String {
    if g <= 1 { "ocsp".into() } else { format!("ocsp-{g}") }
}

impl DataDir {
    /// Replaces `<name>.pem` and `<name>.key.pem` so that a crash at any
    /// point leaves the old pair or the new pair, never one of each: both go
    /// to `.new` files first (the certificate last), and [`Self::load`] rolls
    /// a half-done replacement forward. With the keys in a token only the
    /// certificate is written; the token already holds its key.
    pub(crate) fn replace_cert_and_key(&self, name: &str, der: &[u8], key: &CaKey, keys: &Keys) -> anyhow::Result<()> {
        let (cert_path, key_path) = (self.ca(&format!("{name}.pem")), self.ca(&format!("{name}.key.pem")));
        if let Some(pem) = keys.key_file(key)? {
            write_replacing(&new_path(&key_path), pem.as_bytes(), 0o600)?;
        }
        write_replacing(&new_path(&cert_path), to_pem("CERTIFICATE", der).as_bytes(), 0o644)?;
        self.finish_replacement(name)
    }

    /// Completes a replacement begun by [`Self::replace_cert_and_key`]. The
    /// certificate's `.new` file is written after the key's, so it existing
    /// means the key's is complete (or already in place); a lone key's `.new`
    /// is an unfinished start and goes.
    fn finish_replacement(&self, name: &str) -> anyhow::Result<()> {
        let (cert_path, key_path) = (self.ca(&format!("{name}.pem")), self.ca(&format!("{name}.key.pem")));
        let (cert_new, key_new) = (new_path(&cert_path), new_path(&key_path));
        let rename = |from: &Path, to: &Path| {
            std::fs::rename(from, to).with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
        };
        if cert_new.exists() {
            if key_new.exists() {
                rename(&key_new, &key_path)?;
            }
            rename(&cert_new, &cert_path)?;
        } else if key_new.exists() {
            std::fs::remove_file(&key_new).with_context(|| format!("cannot remove {}", key_new.display()))?;
        }
        let dir = self.0.join("ca");
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))
    }
}

fn new_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

/// Replaces the file at `path` with `bytes` so that a crash leaves the old
/// file or the new one: written beside it, synced, renamed over it, and the
/// directory synced.
pub(crate) fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    write_replacing(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))
}

/// Writes a file whole and durably, replacing any earlier one of that name.
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

/// The CA material `serve` runs with. The root key is never loaded.
#[derive(Debug)]
pub struct LoadedCa {
    /// The newest issuing CA: it issues every new certificate.
    pub issuing: IssuingCa,
    pub root_der: Vec<u8>,
    pub issuing_der: Vec<u8>,
    pub tls_der: Vec<u8>,
    pub tls_key: CaKey,
    pub ocsp_der: Vec<u8>,
    pub ocsp_key: CaKey,
    /// Issuing CAs a rollover replaced, oldest first: they issue nothing
    /// more, and keep their CRL and OCSP answers for what they issued.
    pub(crate) older: Vec<CaGeneration>,
    /// Where the keys came from; renewals put their new keys there.
    pub keys: Keys,
}

/// One issuing CA with its delegated OCSP signer.
#[derive(Debug)]
pub(crate) struct CaGeneration {
    pub issuing: IssuingCa,
    pub issuing_der: Vec<u8>,
    pub ocsp_der: Vec<u8>,
    pub ocsp_key: CaKey,
}

/// Creates a directory readable by its owner only.
pub(crate) fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Writes a new file with the given mode; never overwrites.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a certificate as PEM (0644) and its key file (0600), if its keys
/// are kept in files.
pub(crate) fn write_cert_and_key(
    dir: &DataDir,
    name: &str,
    der: &[u8],
    key: &CaKey,
    keys: &Keys,
) -> anyhow::Result<()> {
    write_new(&dir.ca(&format!("{name}.pem")), to_pem("CERTIFICATE", der).as_bytes(), 0o644)?;
    if let Some(pem) = keys.key_file(key)? {
        write_new(&dir.ca(&format!("{name}.key.pem")), pem.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// The key the webhook secrets of device-management systems derive from:
/// every instance must have the same file (copied with the data directory).
pub(crate) const WEBHOOK_KEY_FILE: &str = "mdm-webhook.key";

/// The webhook key in `dir`, made first if the directory has none (data
/// directories initialised before it existed).
pub(crate) fn webhook_key(dir: &Path) -> anyhow::Result<connect_pki_ra::mdm::WebhookKey> {
    let key = load_or_create_key_file(&dir.join(WEBHOOK_KEY_FILE), "the device-management webhook key")?;
    Ok(connect_pki_ra::mdm::WebhookKey::new(key))
}

/// Writes a new random 32-byte HMAC key, hex, 0600 (refuses to replace one).
pub(crate) fn create_key_file(path: &Path) -> anyhow::Result<()> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    write_new(path, format!("{}\n", hex::encode(bytes)).as_bytes(), 0o600)
}

/// The HMAC-SHA256 key in `path` (`what` names it in errors).
pub(crate) fn load_key_file(path: &Path, what: &str) -> anyhow::Result<aws_lc_rs::hmac::Key> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let bytes = hex::decode(text.trim()).map_err(|e| anyhow::anyhow!("{} is not a hex key: {e}", path.display()))?;
    if bytes.len() < 32 {
        anyhow::bail!("{} holds {} bytes, fewer than 32", path.display(), bytes.len());
    }
    Ok(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes))
}

/// The key in `path`, made first if there is none (data directories
/// initialised before the key existed).
pub(crate) fn load_or_create_key_file(path: &Path, what: &str) -> anyhow::Result<aws_lc_rs::hmac::Key> {
    if !path.exists() {
        create_key_file(path)?;
        tracing::info!(key = %path.display(), "{what} created");
    }
    load_key_file(path, what)
}
