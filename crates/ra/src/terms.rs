//! The terms of use (利用規約) as the city wrote them, a version and the
//! text shown verbatim, and their acceptance: a facility manager must have
//! accepted the version in force before working in the console, once per
//! version. Reading the file is the data directory's job (`server`).

use anyhow::Context;
use connect_pki_domain::Role;
use serde::Deserialize;

use crate::{Ra, Requester, ServiceError};

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
    /// The default terms, as `init` writes them.
    pub fn builtin() -> Self {
        // The unit tests parse DEFAULT; the fallback only keeps this total.
        Self::parse(DEFAULT).unwrap_or_else(|_| Self { version: "default".into(), text: DEFAULT.into() })
    }

    /// Terms written as `version = "…"` and `text = '''…'''`, checked.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
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

/// The terms `caller` has yet to accept, if any. Only facility managers
/// accept terms (for their facility); the city's roles wrote them.
pub async fn pending<'a>(ra: &'a Ra, caller: &Requester) -> Result<Option<&'a Terms>, ServiceError> {
    if caller.actor.role != Role::FacilityManager {
        return Ok(None);
    }
    let terms = &ra.settings.terms;
    let accepted = ra.store.accepted_terms(caller.actor.user, &terms.version).await?;
    Ok((!accepted).then_some(terms))
}

/// Records that `caller` accepted `version`, which must be the one in force
/// (the terms may have changed while the page was open).
pub async fn accept(ra: &Ra, caller: &Requester, version: &str) -> Result<(), ServiceError> {
    let terms = &ra.settings.terms;
    if caller.actor.role != Role::FacilityManager {
        let actor = format!("{} {}", caller.actor.role, caller.actor.user);
        return Err(ServiceError::NotAllowed { actor, action: "accept the terms of use" });
    }
    if version != terms.version {
        return Err(ServiceError::Invalid {
            field: "terms_version",
            why: format!("the terms in force are version {}; read them again and accept that version", terms.version),
        });
    }
    let (a, now) = (&caller.actor, ra.clock.now());
    ra.store.accept_terms(a.user, a.facility, &caller.audit_name, version, now).await?;
    Ok(())
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
    fn terms_without_a_version_or_text_are_refused() {
        assert!(Terms::parse("text = 'x'").is_err());
        assert!(Terms::parse("version = ''\ntext = 'x'").is_err());
        assert!(Terms::parse("version = '2027-04-01'\ntext = '  '").is_err());
        assert!(Terms::parse("version = '2027-04-01'\ntext = 'x'\nextra = 1").is_err());
        assert_eq!(Terms::parse("version = ' 2027-04-01 '\ntext = '新しい規約'").expect("valid").version, "2027-04-01");
    }
}
