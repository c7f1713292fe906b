//! Keyed hashes for what people type that may name someone: the login ID
//! given at a failed emergency sign-in is kept in the audit log only as
//! HMAC-SHA256 under a key of this installation. Attempts on one ID can
//! still be told apart from attempts on another, but the chain, which
//! cannot forget, holds no name. The key's file is the data directory's
//! job (`server`).

use aws_lc_rs::hmac;

/// The pseudonym key.
pub struct PseudonymKey(hmac::Key);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

impl PseudonymKey {
    pub fn new(key: hmac::Key) -> Self {
        Self(key)
    }

    /// The keyed hash of `text` (hex, the first 16 bytes: enough to tell
    /// IDs apart, too short to be mistaken for anything else).
    pub(crate) fn of(&self, text: &str) -> String {
        hex::encode(&hmac::sign(&self.0, text.as_bytes()).as_ref()[..16])
    }
}
