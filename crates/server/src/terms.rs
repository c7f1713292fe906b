//! The terms of use (利用規約) as the city wrote them: `<data-dir>/terms.toml`,
//! a version and the text, shown verbatim. `init` writes the default; an
//! older data directory without the file gets the default too.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The file, under the data directory.
pub const TERMS_FILE: &str = "terms.toml";

/// What `init` writes: the city's 運用ルール, until the operator puts the
/// city's 利用規約 in its place.
pub const DEFAULT: &str = include_str!("../assets/terms.toml");

/// One version of the terms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub version: String,
    pub text: String,
}

impl Terms {
    /// The terms in `data_dir`, or the default when the file is missing.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(TERMS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).with_context(|| format!("{}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::builtin()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The default terms, as `init` writes them.
    pub fn builtin() -> Self {
        // The unit tests parse DEFAULT; the fallback only keeps this total.
        Self::parse(DEFAULT).unwrap_or_else(|_| Self { version: "default".into(), text: DEFAULT.into() })
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut terms: Terms =
            toml::from_str(text).context("the terms of use must be `version = \"…\"` and `text = '''…'''`")?;
        terms.version = terms.version.trim().to_string();
        anyhow::ensure!(
            !terms.version.is_empty() && terms.version.len() <= 40 && !terms.version.chars().any(char::is_control),
            "the terms' version must be 1 to 40 characters on one line"
        );
        anyhow::ensure!(!terms.text.trim().is_empty(), "the terms' text is empty");
        Ok(terms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_citys_text_verbatim() {
        let t = Terms::parse(DEFAULT).expect("the default parses");
        assert_eq!(t.version, "2026-04-01");
        assert!(t.text.contains("電子連絡帳 CONNECT コネクト に係る運用ルールについて"));
        assert!(t.text.contains("第六十九条 行政機関の長等は"));
    }

    #[test]
    fn a_file_without_a_version_or_text_is_refused() {
        assert!(Terms::parse("text = 'x'").is_err());
        assert!(Terms::parse("version = ''\ntext = 'x'").is_err());
        assert!(Terms::parse("version = '2027-04-01'\ntext = '  '").is_err());
        assert!(Terms::parse("version = '2027-04-01'\ntext = 'x'\nextra = 1").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Terms::load(dir.path()).expect("default").version, "2026-04-01");
        std::fs::write(dir.path().join(TERMS_FILE), "version = '2027-04-01'\ntext = '新しい規約'").expect("write");
        assert_eq!(Terms::load(dir.path()).expect("file").text, "新しい規約");
    }
}
