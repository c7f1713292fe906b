//! Private keys: generation, and the encrypted PKCS#8 form they take on disk.
//!
//! On disk a key is an `ENCRYPTED PRIVATE KEY` PEM (PBES2: scrypt + AES-256-CBC),
//! which `openssl pkey -passin` can also open. In memory it lives only inside
//! rcgen's `KeyPair`; `Debug` never prints key material.
//!
//! The CA's own keys (root, issuing CAs, OCSP signers, the TLS server key)
//! are [`CaKey`]s: either such a key in memory, or — with the `hsm` feature —
//! a handle on a key inside a PKCS#11 token that never leaves it
//! (`crate::token`). Everything that signs takes a `CaKey` and does not know
//! which. New CA keys come from a [`KeyGenerator`]: [`InMemory`], or a token.

use std::fmt;

use pkcs8::der::Decode;
use pkcs8::der::pem::LineEnding;
use rcgen::{KeyPair, RsaKeySize};

use crate::error::CaError;

/// The key algorithms the profile allows (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256: the default for devices and the issuing CA.
    P256,
    /// ECDSA on P-384 with SHA-384: the root CA.
    P384,
    /// RSA 2048 with SHA-256: for old devices that cannot use ECDSA.
    Rsa2048,
}

/// A private key able to sign certificates.
pub struct PrivateKey(pub(crate) KeyPair);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.0.algorithm())
    }
}

impl PrivateKey {
    /// A fresh key of the given kind from the operating system's RNG.
    pub fn generate(kind: KeyKind) -> Result<Self, CaError> {
        let pair = match kind {
            KeyKind::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyKind::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?,
        };
        Ok(Self(pair))
    }

    /// A second handle on the same key (rcgen's `KeyPair` is not `Clone`).
    pub(crate) fn clone_key(&self) -> Result<Self, CaError> {
        Ok(Self(KeyPair::try_from(self.0.serialized_der()).map_err(|e| CaError::malformed("private key", e))?))
    }

    /// The unencrypted PKCS#8 DER, for packaging into a PKCS#12 only.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.0.serialized_der()
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.0)
    }

    /// The key as an encrypted PKCS#8 PEM under `passphrase`.
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<String, CaError> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(self.0.serialized_der())
            .map_err(|e| CaError::malformed("private key", e))?;
        let doc = info.encrypt(passphrase.as_bytes()).map_err(|e| CaError::malformed("private key", e))?;
        let pem =
            doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).map_err(|e| CaError::malformed("private key", e))?;
        Ok(pem.to_string())
    }

    /// Opens an encrypted PKCS#8 PEM written by [`Self::to_encrypted_pem`] (or by
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc`). `what` names the key in errors.
    pub fn from_encrypted_pem(pem: &str, passphrase: &str, what: &str) -> Result<Self, CaError> {
        let (label, doc) = pkcs8::der::Document::from_pem(pem).map_err(|e| CaError::malformed(what.to_string(), e))?;
        if label != "ENCRYPTED PRIVATE KEY" {
            return Err(CaError::malformed(what.to_string(), format!("expected an encrypted key, found {label:?}")));
        }
        let enc = pkcs8::EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes())
            .map_err(|e| CaError::malformed(what.to_string(), e))?;
        let plain = enc.decrypt(passphrase.as_bytes()).map_err(|_| CaError::Decrypt { what: what.to_string() })?;
        let pair = KeyPair::try_from(plain.as_bytes()).map_err(|e| CaError::malformed(what.to_string(), e))?;
        Ok(Self(pair))
    }
}

/// A key the CA or the service signs with.
pub struct CaKey(Repr);

enum Repr {
    Memory(PrivateKey),
    External(Box<dyn ExternalKey>),
}

/// A key this process cannot read, only ask to sign: a key in a PKCS#11
/// token. Its module depends on this one, not the other way round.
pub trait ExternalKey: rcgen::SigningKey + fmt::Debug + Send + Sync {
    /// A second handle on the same key.
    fn clone_key(&self) -> Box<dyn ExternalKey>;
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Memory(k) => k.fmt(f),
            Repr::External(k) => k.fmt(f),
        }
    }
}

impl From<PrivateKey> for CaKey {
    fn from(key: PrivateKey) -> Self {
        Self(Repr::Memory(key))
    }
}

impl CaKey {
    /// A key held outside this process.
    pub fn external(key: Box<dyn ExternalKey>) -> Self {
        Self(Repr::External(key))
    }

    /// The key itself when it is held in memory; `None` for a key in a token.
    pub fn in_memory(&self) -> Option<&PrivateKey> {
        match &self.0 {
            Repr::Memory(k) => Some(k),
            Repr::External(_) => None,
        }
    }

    /// A second handle on the same key.
    pub fn clone_key(&self) -> Result<Self, CaError> {
        Ok(match &self.0 {
            Repr::Memory(k) => Self(Repr::Memory(k.clone_key()?)),
            Repr::External(k) => Self(Repr::External(k.clone_key())),
        })
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Memory(k) => k.0.der_bytes(),
            Repr::External(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match &self.0 {
            Repr::Memory(k) => k.0.algorithm(),
            Repr::External(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    /// The signature as X.509 carries it (for ECDSA, a DER ECDSA-Sig-Value).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match &self.0 {
            Repr::Memory(k) => k.0.sign(msg),
            Repr::External(k) => k.sign(msg),
        }
    }
}

/// Where new CA keys are made. `label` names the key for a person looking
/// into a token (`connect-pki ocsp-2`); keys in memory have no name.
pub trait KeyGenerator {
    fn generate(&self, kind: KeyKind, label: &str) -> Result<CaKey, CaError>;
}

/// Keys made in memory, to be stored encrypted.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemory;

impl KeyGenerator for InMemory {
    fn generate(&self, kind: KeyKind, _label: &str) -> Result<CaKey, CaError> {
        Ok(PrivateKey::generate(kind)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_pem_round_trips_and_refuses_the_wrong_passphrase() {
        let key = PrivateKey::generate(KeyKind::P256).expect("keygen");
        let pem = key.to_encrypted_pem("correct horse").expect("encrypt");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = PrivateKey::from_encrypted_pem(&pem, "correct horse", "test key").expect("decrypt");
        assert_eq!(back.public_key_der(), key.public_key_der());
        let err = PrivateKey::from_encrypted_pem(&pem, "wrong", "test key").expect_err("wrong passphrase");
        assert!(matches!(err, CaError::Decrypt { .. }), "{err}");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = PrivateKey::generate(KeyKind::P256).expect("keygen");
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", key.pkcs8_der())));
    }
}
