//! Where a data directory's CA keys are kept, chosen at `init` and written
//! into `config.toml`:
//!
//! * by default, encrypted PKCS#8 files beside their certificates
//!   (`ca/<name>.key.pem`), opened with the CA key passphrase;
//! * with `[pkcs11]` (the `hsm` feature), inside a PKCS#11 token: every
//!   issuing CA, every OCSP signer and the TLS server key, and the root key
//!   too unless `root_token` names a second token for it alone, under a PIN
//!   of its own, which `serve` never opens (only `init` and `ca rollover`).
//!   The data directory then holds certificates only; each key is found in
//!   its token by the public key of its certificate.

use std::path::Path;
use std::sync::Arc;

use super::DataDir;
use crate::config::Pkcs11Config;
use anyhow::{Context, anyhow};
use connect_pki_ca::{CaKey, InMemory, KeyGenerator, PrivateKey};

/// Environment variable holding the token's user PIN.
pub(crate) const PIN_ENV: &str = "CONNECT_PKI_PKCS11_PIN";

/// Environment variable holding the root token's user PIN.
pub(crate) const ROOT_PIN_ENV: &str = "CONNECT_PKI_PKCS11_ROOT_PIN";

/// A PIN from `env`, or else from `file` (`key` names the setting).
#[cfg_attr(not(feature = "hsm"), allow(dead_code))]
fn pin_from(env: &str, file: Option<&Path>, token: &str, key: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Ok(p);
    }
    let path = file.ok_or_else(|| anyhow!("no PIN for PKCS#11 token {token:?}: set {env} or {key} under [pkcs11]"))?;
    let pin = std::fs::read_to_string(path).with_context(|| format!("cannot read the PIN file {}", path.display()))?;
    Ok(pin.trim_end().to_string())
}

/// The CA key store of one data directory.
#[derive(Clone)]
pub enum Keys {
    Files {
        passphrase: Arc<str>,
    },
    #[cfg(feature = "hsm")]
    Token(connect_pki_ca::token::Token),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Files { .. } => f.write_str("Keys::Files(<passphrase redacted>)"),
            #[cfg(feature = "hsm")]
            Keys::Token(t) => write!(f, "Keys::Token({:?})", t.label()),
        }
    }
}

impl Keys {
    /// The store `dir` was initialised with.
    pub(crate) fn of(dir: &DataDir) -> anyhow::Result<Self> {
        match crate::config::FileConfig::load(dir.path())?.pkcs11 {
            Some(p) => Self::token(&p),
            None => Ok(Keys::Files { passphrase: dir.passphrase()?.into() }),
        }
    }

    /// Encrypted files under `passphrase`.
    pub fn files(passphrase: &str) -> Self {
        Keys::Files { passphrase: passphrase.into() }
    }

    /// The token `config` names, logged in.
    pub fn token(config: &Pkcs11Config) -> anyhow::Result<Self> {
        Self::open_token(config, &config.token, PIN_ENV, config.pin_file.as_deref(), "pin_file")
    }

    /// The store of the root key: the root token when `[pkcs11]` names one,
    /// else the one of every other key. Only `init` and `ca rollover` ask.
    pub(crate) fn root_of(dir: &DataDir, keys: &Keys) -> anyhow::Result<Self> {
        match crate::config::FileConfig::load(dir.path())?.pkcs11 {
            Some(p) => Self::root_token(&p).map(|root| root.unwrap_or_else(|| keys.clone())),
            None => Ok(keys.clone()),
        }
    }

    /// The root token `config` names, logged in with its own PIN.
    pub(crate) fn root_token(config: &Pkcs11Config) -> anyhow::Result<Option<Self>> {
        let Some(label) = &config.root_token else { return Ok(None) };
        Self::open_token(config, label, ROOT_PIN_ENV, config.root_pin_file.as_deref(), "root_pin_file").map(Some)
    }

    #[cfg_attr(not(feature = "hsm"), allow(unused_variables))]
    fn open_token(
        config: &Pkcs11Config,
        label: &str,
        env: &str,
        file: Option<&Path>,
        key: &str,
    ) -> anyhow::Result<Self> {
        #[cfg(feature = "hsm")]
        {
            let pin = pin_from(env, file, label, key).with_context(|| format!("PKCS#11 token {label:?}"))?;
            let token = connect_pki_ca::token::Token::open(&config.module, label, &pin)?;
            Ok(Keys::Token(token))
        }
        #[cfg(not(feature = "hsm"))]
        {
            anyhow::bail!(
                "the CA keys are in PKCS#11 token {label:?}, but this build has no PKCS#11 support \
                 (build connect-pki with its default features)"
            )
        }
    }

    /// Where new keys are made.
    pub(crate) fn generator(&self) -> &dyn KeyGenerator {
        match self {
            Keys::Files { .. } => &InMemory,
            #[cfg(feature = "hsm")]
            Keys::Token(t) => t,
        }
    }

    /// The key of the certificate `ca/<name>.pem`.
    pub fn load(&self, dir: &DataDir, name: &str) -> anyhow::Result<CaKey> {
        match self {
            Keys::Files { passphrase } => {
                let path = dir.ca(&format!("{name}.key.pem"));
                let pem = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                Ok(PrivateKey::from_encrypted_pem(&pem, passphrase, &path.display().to_string())?.into())
            }
            #[cfg(feature = "hsm")]
            Keys::Token(t) => {
                let der = dir.cert_der(&format!("{name}.pem"))?;
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|e| anyhow!("{}: {e}", dir.ca(&format!("{name}.pem")).display()))?;
                Ok(t.find(cert.public_key().raw, name)?.into())
            }
        }
    }

    /// What goes into the key file `ca/<name>.key.pem`: the key encrypted,
    /// or nothing when the token holds it.
    pub fn key_file(&self, key: &CaKey) -> anyhow::Result<Option<String>> {
        match self {
            Keys::Files { passphrase } => {
                let key = key.in_memory().ok_or_else(|| anyhow!("a key from a token cannot be written to a file"))?;
                Ok(Some(key.to_encrypted_pem(passphrase)?))
            }
            #[cfg(feature = "hsm")]
            Keys::Token(_) => Ok(None),
        }
    }

    /// A reference to a key that has no certificate yet (a rollover's
    /// pending key): the key encrypted, or its public key when the token
    /// holds it. [`Self::open_reference`] reads it back.
    pub(crate) fn reference(&self, key: &CaKey) -> anyhow::Result<String> {
        match self.key_file(key)? {
            Some(pem) => Ok(pem),
            None => Ok(connect_pki_ca::issue::to_pem("PUBLIC KEY", &key.public_key_der())),
        }
    }

    /// The key a [`Self::reference`] written to `path` refers to.
    pub(crate) fn open_reference(&self, pem: &str, path: &Path) -> anyhow::Result<CaKey> {
        let what = path.display().to_string();
        match self {
            Keys::Files { passphrase } => Ok(PrivateKey::from_encrypted_pem(pem, passphrase, &what)?.into()),
            #[cfg(feature = "hsm")]
            Keys::Token(t) => {
                let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                    .map_err(|e| anyhow!("{what} is not a PEM public key: {e}"))?;
                anyhow::ensure!(
                    pem.label == "PUBLIC KEY",
                    "{what} holds a {}, not a token key's public key",
                    pem.label
                );
                Ok(t.find(&pem.contents, &what)?.into())
            }
        }
    }
}
