//! The pseudonym key's file, `<data-dir>/pseudonym.key` (0600): what the
//! key is for is `connect_pki_ra::pseudonym`.

use std::path::Path;

use connect_pki_ra::pseudonym::PseudonymKey;

use crate::datadir::{create_key_file, load_or_create_key_file};

/// The key file's name in the data directory.
pub(crate) const KEY_FILE: &str = "pseudonym.key";

/// Writes a new key into `dir` (at `init`).
pub(crate) fn create(dir: &Path) -> anyhow::Result<()> {
    create_key_file(&dir.join(KEY_FILE))
}

/// The key in `dir`, made first if the directory has none (data
/// directories initialised before it existed).
pub(crate) fn load_or_create(dir: &Path) -> anyhow::Result<PseudonymKey> {
    Ok(PseudonymKey::new(load_or_create_key_file(&dir.join(KEY_FILE), "the pseudonym key")?))
}
