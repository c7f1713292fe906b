//! PKCS#12 packaging of a server-generated key with its certificate chain.
//!
//! Written by `p12-keystore` with its modern defaults: PBES2 (PBKDF2-HMAC-SHA256,
//! AES-256-CBC) and an HMAC-SHA256 MAC, which OpenSSL 3 reads without `-legacy`
//! and Windows 10 1709+, macOS/iOS 14+ and Android import.

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};

use crate::error::CaError;
use crate::keys::PrivateKey;

/// A PKCS#12 file holding `key`, its certificate `leaf` and the CA `chain`
/// (issuing CA first), under `password`. `alias` becomes the friendly name.
pub fn build(key: &PrivateKey, leaf: &[u8], chain: &[&[u8]], password: &str, alias: &str) -> Result<Vec<u8>, CaError> {
    let p12_err = |e: p12_keystore::error::Error| CaError::malformed("PKCS#12", e);
    let mut certs = vec![Certificate::from_der(leaf).map_err(p12_err)?];
    for c in chain {
        certs.push(Certificate::from_der(c).map_err(p12_err)?);
    }
    let key = p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(p12_err)?;
    // The local key id ties the key bag to its certificate bag; a hash of the
    // certificate is what OpenSSL and Windows themselves use.
    let key_id = <sha2::Sha256 as sha2::Digest>::digest(leaf).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, key, certs)));
    store.writer(password).write().map_err(p12_err)
}
