//! Enrollment codes (DESIGN §3): single use, expiring, bound to one user, and
//! locked after a handful of wrong tries.
//!
//! A code reads `{id}-XXXX-XXXX-XXXX-XXXX`: the id says which code is being
//! tried, so wrong guesses count against it; the 80-bit secret (Crockford
//! base32) is what proves possession and is stored only as a hash.

use time::{Duration, OffsetDateTime};

use crate::error::DomainError;

/// Wrong secrets after which a code is locked for good.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;

/// Default lifetime of a code (DESIGN §3).
pub const DEFAULT_LIFETIME: Duration = Duration::hours(72);

/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A code as typed by a person, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInput {
    pub id: i64,
    /// Normalised: uppercase, no separators, with O→0 and I/L→1.
    pub secret: String,
}

impl CodeInput {
    /// Parses `17-ABCD-EFGH-JKMN-PQRS`, tolerant of case, spaces and the
    /// letters Crockford maps onto digits.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::Invalid {
            field: "code",
            why: "must look like 12-ABCD-EFGH-JKMN-PQRS, as it was handed out".into(),
        };
        let (id, rest) = input.trim().split_once('-').ok_or_else(invalid)?;
        let id: i64 = id.trim().parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?;
        let secret: String = rest
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            })
            .collect();
        if secret.len() != 16 || !secret.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(invalid());
        }
        Ok(Self { id, secret })
    }
}

/// The secret part of a new code from 10 random bytes, grouped for reading aloud.
pub fn format_secret(random: &[u8; 10]) -> String {
    // 80 bits → 16 symbols of 5 bits.
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(*b);
    }
    let symbols: Vec<char> = (0..16).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect();
    symbols.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// Where a code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    Usable,
    Redeemed,
    Expired,
    Locked,
}

/// The state of a code from its stored facts.
pub fn code_state(expires_at: OffsetDateTime, redeemed: bool, failed_attempts: i64, now: OffsetDateTime) -> CodeState {
    if redeemed {
        CodeState::Redeemed
    } else if failed_attempts >= MAX_FAILED_ATTEMPTS {
        CodeState::Locked
    } else if now >= expires_at {
        CodeState::Expired
    } else {
        CodeState::Usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_codes_parse_back_and_tolerate_typing() {
        let secret = format_secret(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 0xff]);
        assert_eq!(secret.len(), 19);
        let code = format!("42-{secret}");
        let parsed = CodeInput::parse(&code).expect("parses");
        assert_eq!(parsed.id, 42);
        assert_eq!(parsed.secret, secret.replace('-', ""));
        let sloppy = format!(" 42 - {} ", secret.to_lowercase().replace('-', " "));
        assert_eq!(CodeInput::parse(&sloppy).expect("parses"), parsed);
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in
            ["", "42", "x-ABCD-EFGH-JKMN-PQRS", "0-ABCD-EFGH-JKMN-PQRS", "42-ABCD-EFGH-JKMN", "42-ABCD-EFGH-JKMN-PQRU"]
        {
            assert!(CodeInput::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn states_follow_redeemed_then_locked_then_expired() {
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let exp = t + Duration::hours(1);
        assert_eq!(code_state(exp, false, 0, t), CodeState::Usable);
        assert_eq!(code_state(exp, false, 4, t), CodeState::Usable);
        assert_eq!(code_state(exp, false, 5, t), CodeState::Locked);
        assert_eq!(code_state(exp, false, 0, exp), CodeState::Expired);
        assert_eq!(code_state(exp, true, 9, exp), CodeState::Redeemed);
    }
}

/// Why a code could not be redeemed. Wrong secrets are counted before this
/// is returned, so the count survives the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this enrollment code is not valid; check it and try again ({attempts_left} tries left before it is locked)"
    )]
    WrongCode { attempts_left: i64 },
    #[error("this enrollment code has already been used; ask your facility manager for a new one")]
    Redeemed,
    #[error("this enrollment code has expired; ask your facility manager for a new one")]
    Expired,
    #[error("this enrollment code is locked after too many wrong tries; ask your facility manager for a new one")]
    Locked,
    #[error("the account this code belongs to is {0}; it cannot enroll devices")]
    AccountClosed(&'static str),
    #[error("the facility of this account is {0}; it cannot enroll devices")]
    FacilityNotActive(&'static str),
    #[error("first enrollment: choose an account password (\"password\", at least 10 characters)")]
    PasswordRequired,
}
