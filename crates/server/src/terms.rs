//! The terms of use in the data directory: `<data-dir>/terms.toml`. `init`
//! writes the default; an older data directory without the file gets the
//! default too. What the terms are and who accepts them: `connect_pki_ra::terms`.

use std::path::Path;

use anyhow::Context;
use connect_pki_ra::terms::Terms;

/// The file, under the data directory.
pub(crate) const TERMS_FILE: &str = "terms.toml";

/// The terms in `data_dir`, or the default when the file is missing.
pub fn load(data_dir: &Path) -> anyhow::Result<Terms> {
    let path = data_dir.join(TERMS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Terms::parse(&text).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Terms::builtin()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_the_default_and_a_written_one_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("default").version, "2026-04-01");
        std::fs::write(dir.path().join(TERMS_FILE), "version = '2027-04-01'\ntext = '新しい規約'").expect("write");
        assert_eq!(load(dir.path()).expect("file").text, "新しい規約");
        std::fs::write(dir.path().join(TERMS_FILE), "version = ''").expect("write");
        assert!(load(dir.path()).is_err());
    }
}
