//! Keyed hashes for what people type that may name someone: the login ID
//! given at a failed emergency sign-in is kept in the audit log only as
//! HMAC-SHA256 under a key of this installation (`<data-dir>/pseudonym.key`,
//! 0600). Attempts on one ID can still be told apart from attempts on
//! another, but the chain, which cannot forget, holds no name.

use std::path::Path;

use aws_lc_rs::hmac;

use crate::checkpoint::{create_key_file, load_or_create_key_file};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "pseudonym.key";

/// The pseudonym key.
pub struct PseudonymKey(hmac::Key);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

impl PseudonymKey {
    /// Writes a new key into `dir` (at `init`).
    pub fn create(dir: &Path) -> anyhow::Result<()> {
        create_key_file(&dir.join(KEY_FILE))
    }

    /// The key in `dir`, made first if the directory has none (data
    /// directories initialised before it existed).
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self(load_or_create_key_file(&dir.join(KEY_FILE), "the pseudonym key")?))
    }

    /// The keyed hash of `text` (hex, the first 16 bytes: enough to tell
    /// IDs apart, too short to be mistaken for anything else).
    pub fn of(&self, text: &str) -> String {
        hex::encode(&hmac::sign(&self.0, text.as_bytes()).as_ref()[..16])
    }
}
