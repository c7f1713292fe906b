//! Field rules for what people type: login IDs, names, e-mail addresses,
//! phone numbers, passwords. Each returns the cleaned value or an error that
//! names the field, so the API and the pages can tell the person what to fix.

use crate::error::DomainError;

fn invalid(field: &'static str, why: impl Into<String>) -> DomainError {
    DomainError::Invalid { field, why: why.into() }
}

/// Trimmed text of 1 to `max` characters, without control characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if v.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(v.to_string())
}

/// Like [`text`], but empty is allowed.
pub fn optional_text(field: &'static str, value: Option<&str>, max: usize) -> Result<Option<String>, DomainError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// A login ID: 3–32 of `a-z 0-9 . _ -`, starting with a letter or digit.
/// Lowercase only, so that `Tanaka` and `tanaka` cannot both exist.
pub fn login_id(value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    let ok_len = (3..=32).contains(&v.len());
    let ok_first = v.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(v.to_string())
    } else {
        Err(invalid(
            "login_id",
            "must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// An e-mail address: one `@`, something on each side, a dot in the domain,
/// no spaces; at most 254 characters.
pub fn email(value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    let valid = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && match v.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid { Ok(v.to_string()) } else { Err(invalid("email", format!("{v:?} is not an e-mail address"))) }
}

/// A phone number: digits with optional `+`, `-`, spaces or parentheses; 6 to 20 digits.
pub(crate) fn phone(value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let chars_ok = v.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'));
    if chars_ok && (6..=20).contains(&digits) {
        Ok(v.to_string())
    } else {
        Err(invalid("phone", "must be a phone number of 6 to 20 digits"))
    }
}

/// Shortest password accepted.
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;

/// An account password: 10 to 128 characters. Length is what makes a
/// password strong; no composition rules.
pub fn password(value: &str) -> Result<(), DomainError> {
    let n = value.chars().count();
    if (MIN_PASSWORD_CHARS..=128).contains(&n) {
        Ok(())
    } else {
        Err(invalid("password", format!("must be {MIN_PASSWORD_CHARS} to 128 characters")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_ids() {
        for ok in ["tanaka", "h.sato", "staff_01", "a-b", "007"] {
            assert_eq!(login_id(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "ab", "Tanaka", "_x", "田中", "a b", &"x".repeat(33)] {
            assert!(login_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_and_phones() {
        assert!(email("k.tanaka@city.chitose.example").is_ok());
        for bad in ["", "x", "x@y", "@y.jp", "a b@c.jp", "a@b@c.jp", "a@.jp"] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(phone("0123-24-0000").is_ok());
        assert!(phone("+81 123 24 0000").is_ok());
        assert!(phone("12345").is_err());
        assert!(phone("0123-24-000x").is_err());
    }

    #[test]
    fn texts_are_trimmed_bounded_and_required() {
        assert_eq!(text("name", "  デイケア南  ", 10).as_deref(), Ok("デイケア南"));
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "あいうえおかきくけこさ", 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert_eq!(optional_text("department", Some(" "), 10), Ok(None));
    }

    #[test]
    fn passwords_need_length_only() {
        assert!(password("correct horse").is_ok());
        assert!(password("short").is_err());
        assert!(password(&"x".repeat(129)).is_err());
    }
}
