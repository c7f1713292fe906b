//! Enrollment codes (DESIGN §3): single use, expiring, bound to one user, and
//! locked after a handful of wrong tries.
//!
//! A code reads `{id}-XXXX-XXXX-XXXX-XXXX`: the id says which code is being
//! tried, so wrong guesses count against it; the 80-bit secret (Crockford
//! base32) is what proves possession and is stored only as a hash.

use time::{Duration, OffsetDateTime};

use crate::error::DomainError;
use crate::ids::Serial;
use crate::model::{CertStatus, FacilityStatus, UserStatus};
use crate::user;

/// Wrong secrets after which a code is locked for good.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;

/// Default lifetime of a code handed over in person (DESIGN §3).
pub const DEFAULT_LIFETIME: Duration = Duration::hours(72);

/// Default lifetime of a code that travels on a printed slip by post (a
/// facility manager's, from the city): long enough for the post to a
/// facility outside the city hall and a weekend on the desk.
pub const DEFAULT_MAILED_LIFETIME: Duration = Duration::days(14);

/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A code as typed by a person, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInput {
    /// The id written before the secret by codes handed out before issue 24
    /// (`12-ABCD-…`); `None` for a code that is its secret alone, found by it.
    pub id: Option<i64>,
    /// Normalised: uppercase, no separators, with O→0 and I/L→1.
    pub secret: String,
}

/// Symbols of a code's secret.
const SECRET_LEN: usize = 16;

impl CodeInput {
    /// Parses `ABCD-EFGH-JKMN-PQRS` (or the older `17-ABCD-EFGH-JKMN-PQRS`),
    /// tolerant of case, spaces and the letters Crockford maps onto digits.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::Invalid {
            field: "code",
            why: "must look like ABCD-EFGH-JKMN-PQRS, as it was handed out".into(),
        };
        let normalise = |s: &str| -> String {
            s.chars()
                .filter(|c| !matches!(c, '-' | ' '))
                .map(|c| match c.to_ascii_uppercase() {
                    'O' => '0',
                    'I' | 'L' => '1',
                    other => other,
                })
                .collect()
        };
        let valid = |secret: &str| secret.len() == SECRET_LEN && secret.bytes().all(|b| ALPHABET.contains(&b));
        let whole = normalise(input);
        if valid(&whole) {
            return Ok(Self { id: None, secret: whole });
        }
        // A secret is 16 symbols whatever the grouping: anything longer is
        // an id, then the secret.
        let (id, rest) = input.trim().split_once('-').ok_or_else(invalid)?;
        let id: i64 = id.trim().parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?;
        let secret = normalise(rest);
        if !valid(&secret) {
            return Err(invalid());
        }
        Ok(Self { id: Some(id), secret })
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
pub(crate) enum CodeState {
    Usable,
    Redeemed,
    Expired,
    Locked,
}

/// The state of a code from its stored facts.
pub(crate) fn code_state(
    expires_at: OffsetDateTime,
    redeemed: bool,
    failed_attempts: i64,
    now: OffsetDateTime,
) -> CodeState {
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
        let parsed = CodeInput::parse(&secret).expect("parses");
        assert_eq!(parsed.id, None);
        assert_eq!(parsed.secret, secret.replace('-', ""));
        let sloppy = format!(" {} ", secret.to_lowercase().replace('-', " "));
        assert_eq!(CodeInput::parse(&sloppy).expect("parses"), parsed);
        // Codes handed out with their id before still work.
        let older = CodeInput::parse(&format!("42-{secret}")).expect("parses");
        assert_eq!((older.id, older.secret), (Some(42), parsed.secret.clone()));
        let sloppy = format!(" 42 - {} ", secret.to_lowercase().replace('-', " "));
        assert_eq!(CodeInput::parse(&sloppy).expect("parses").id, Some(42));
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "42",
            "x-ABCD-EFGH-JKMN-PQRS",
            "0-ABCD-EFGH-JKMN-PQRS",
            "42-ABCD-EFGH-JKMN",
            "42-ABCD-EFGH-JKMN-PQRU",
            "ABCD-EFGH-JKMN-PQR",
            "ABCD-EFGH-JKMN-PQRU",
            "ABCD-EFGH-JKMN-PQRS-T",
        ] {
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
    /// A wrong secret, or an id no code has: the same answer either way, and
    /// whatever state the code is in, so a guesser learns nothing about it.
    #[error("this enrollment code is not valid; check it and try again (a code locks after a few wrong tries)")]
    WrongCode,
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

/// How a device came to its certificate: by hand (the enroll page or the
/// JSON API, a person holding the code), or by a protocol a device-management
/// system speaks for the device (EST, SCEP), with nobody there to choose
/// the account's emergency-report password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channel {
    #[default]
    ByHand,
    Est,
    Scep,
}

impl Channel {
    /// Whether a device-management system enrolls for the person.
    pub fn managed(self) -> bool {
        !matches!(self, Channel::ByHand)
    }
}

/// What the store read about a code, its holder and the holder's facility,
/// under the writer lock, for [`judge_redemption`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedemptionFacts {
    pub expires_at: OffsetDateTime,
    pub redeemed: bool,
    pub failed_attempts: i64,
    /// The secret presented hashes to the stored hash.
    pub secret_matches: bool,
    pub user: UserStatus,
    pub facility: FacilityStatus,
    /// The account already has a password.
    pub has_password: bool,
    /// The caller chose a password with this attempt.
    pub password_given: bool,
    pub channel: Channel,
}

/// What to do with a redemption attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A wrong secret for a usable code: count it (and keep the count though
    /// the call fails), then refuse with [`Refusal::WrongCode`].
    WrongSecret { attempts_left: i64 },
    /// Refuse; nothing changes but the record of the refusal.
    Refuse(Refusal),
    /// Redeem: the device and its certificate may be issued.
    Redeem,
}

/// Whether a facility in `status` may have certificates issued to its users.
pub(crate) fn facility_may_enroll(status: FacilityStatus) -> bool {
    status == FacilityStatus::Approved
}

/// The verdict on a redemption attempt. A wrong secret is refused as
/// [`Refusal::WrongCode`] whatever the code's state (only the holder of the
/// secret learns that it is used, expired or locked) and counts only against
/// a usable code; then the code's own state refuses, then the account, then
/// the facility, then a first enrollment by hand without a password (a
/// managed device's person gets theirs from the manager).
pub fn judge_redemption(f: &RedemptionFacts, now: OffsetDateTime) -> Verdict {
    let state = code_state(f.expires_at, f.redeemed, f.failed_attempts, now);
    if !f.secret_matches {
        return match state {
            CodeState::Usable => Verdict::WrongSecret { attempts_left: MAX_FAILED_ATTEMPTS - f.failed_attempts - 1 },
            _ => Verdict::Refuse(Refusal::WrongCode),
        };
    }
    let refusal = match state {
        CodeState::Usable => None,
        CodeState::Redeemed => Some(Refusal::Redeemed),
        CodeState::Expired => Some(Refusal::Expired),
        CodeState::Locked => Some(Refusal::Locked),
    };
    let refusal = refusal
        .or((!user::may_receive_certificates(f.user)).then_some(Refusal::AccountClosed(f.user.as_str())))
        .or((!facility_may_enroll(f.facility)).then_some(Refusal::FacilityNotActive(f.facility.as_str())))
        .or((!f.has_password && !f.password_given && !f.channel.managed()).then_some(Refusal::PasswordRequired));
    refusal.map_or(Verdict::Redeem, Verdict::Refuse)
}

/// What the store read about a certificate presented for renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalFacts {
    pub certificate: CertStatus,
    /// Its notAfter has passed: an expired certificate is never renewed
    /// (its holder gets a new code), even where a handshake let it in.
    pub expired: bool,
    pub device_active: bool,
    pub user: UserStatus,
    pub facility: FacilityStatus,
}

/// Renewals a device may make within [`RENEWAL_WINDOW`] unless configured
/// otherwise: far above what a device that renews near expiry needs, far
/// below what a stolen key renewing in a loop would want.
pub const DEFAULT_RENEWALS_PER_HOUR: u32 = 10;

/// The sliding window over which renewals are counted.
pub const RENEWAL_WINDOW: Duration = Duration::hours(1);

/// A renewal refused because the device renewed too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this device has renewed its certificate {limit} times within the last hour; try again in {retry_after} seconds"
)]
pub struct TooManyRenewals {
    pub(crate) limit: u32,
    /// Seconds until the oldest counted renewal leaves the window.
    pub retry_after: u64,
}

/// Whether a device may renew once more at `now`, given its renewals inside
/// the window before `now` (`recent`, the oldest at `oldest`) and the limit
/// `per_hour`.
pub fn check_renewal_rate(
    recent: i64,
    oldest: Option<OffsetDateTime>,
    per_hour: u32,
    now: OffsetDateTime,
) -> Result<(), TooManyRenewals> {
    if recent < i64::from(per_hour) {
        return Ok(());
    }
    let frees_at = oldest.map_or(now + RENEWAL_WINDOW, |t| t + RENEWAL_WINDOW);
    // Rounded up: a client that waits exactly this long is let through.
    let left = frees_at - now;
    let wait = (left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0)).max(1);
    Err(TooManyRenewals { limit: per_hour, retry_after: u64::try_from(wait).unwrap_or(1) })
}

/// Whether the certificate `serial` may be renewed: only a valid certificate
/// of an active device, of a user who may receive certificates, in a
/// facility that may enroll. The refusal names the first reason found.
pub fn check_renewal(serial: &Serial, f: &RenewalFacts) -> Result<(), DomainError> {
    let status = if f.certificate != CertStatus::Valid {
        f.certificate.as_str()
    } else if f.expired {
        "expired"
    } else if !f.device_active {
        "of a device that is no longer active"
    } else if !facility_may_enroll(f.facility) {
        "of a facility that is not active"
    } else if !user::may_receive_certificates(f.user) {
        "of a retired user"
    } else {
        return Ok(());
    };
    Err(DomainError::CertificateNotUsable { serial: serial.clone(), status })
}

#[cfg(test)]
mod verdicts {
    use super::*;

    fn usable(now: OffsetDateTime) -> RedemptionFacts {
        RedemptionFacts {
            expires_at: now + Duration::hours(1),
            redeemed: false,
            failed_attempts: 0,
            secret_matches: true,
            user: UserStatus::Invited,
            facility: FacilityStatus::Approved,
            has_password: false,
            password_given: true,
            channel: Channel::ByHand,
        }
    }

    #[test]
    fn wrong_secrets_count_down_to_a_lock() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let wrong = RedemptionFacts { secret_matches: false, ..usable(now) };
        assert_eq!(judge_redemption(&wrong, now), Verdict::WrongSecret { attempts_left: 4 });
        let last = RedemptionFacts { failed_attempts: 4, ..wrong };
        assert_eq!(judge_redemption(&last, now), Verdict::WrongSecret { attempts_left: 0 });
        // A wrong secret for a code that is not usable is neither counted nor
        // told what the code is; the right secret is.
        let used = RedemptionFacts { redeemed: true, ..wrong };
        assert_eq!(judge_redemption(&used, now), Verdict::Refuse(Refusal::WrongCode));
        assert_eq!(
            judge_redemption(&RedemptionFacts { secret_matches: true, ..used }, now),
            Verdict::Refuse(Refusal::Redeemed)
        );
        let locked = RedemptionFacts { failed_attempts: MAX_FAILED_ATTEMPTS, ..wrong };
        assert_eq!(judge_redemption(&locked, now), Verdict::Refuse(Refusal::WrongCode));
        let right = RedemptionFacts { secret_matches: true, ..locked };
        assert_eq!(judge_redemption(&right, now), Verdict::Refuse(Refusal::Locked));
    }

    #[test]
    fn refusals_come_in_order_code_account_facility_password() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        assert_eq!(judge_redemption(&usable(now), now), Verdict::Redeem);
        let all_wrong = RedemptionFacts {
            expires_at: now,
            user: UserStatus::Retired,
            facility: FacilityStatus::Suspended,
            password_given: false,
            ..usable(now)
        };
        assert_eq!(judge_redemption(&all_wrong, now), Verdict::Refuse(Refusal::Expired));
        let account = RedemptionFacts { expires_at: now + Duration::hours(1), ..all_wrong };
        assert_eq!(judge_redemption(&account, now), Verdict::Refuse(Refusal::AccountClosed("retired")));
        let facility = RedemptionFacts { user: UserStatus::Active, ..account };
        assert_eq!(judge_redemption(&facility, now), Verdict::Refuse(Refusal::FacilityNotActive("suspended")));
        let password = RedemptionFacts { facility: FacilityStatus::Approved, ..facility };
        assert_eq!(judge_redemption(&password, now), Verdict::Refuse(Refusal::PasswordRequired));
        let has_one = RedemptionFacts { has_password: true, ..password };
        assert_eq!(judge_redemption(&has_one, now), Verdict::Redeem);
        // A device-management system enrolls with no one to choose it.
        let managed = RedemptionFacts { channel: Channel::Est, ..password };
        assert_eq!(judge_redemption(&managed, now), Verdict::Redeem);
    }

    #[test]
    fn renewals_are_limited_per_window() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert_eq!(check_renewal_rate(0, None, 3, now), Ok(()));
        assert_eq!(check_renewal_rate(2, Some(now - Duration::minutes(59)), 3, now), Ok(()));
        assert_eq!(
            check_renewal_rate(3, Some(now - Duration::minutes(50)), 3, now),
            Err(TooManyRenewals { limit: 3, retry_after: 600 })
        );
        // A limit of zero refuses every renewal, with the whole window to wait.
        assert_eq!(check_renewal_rate(0, None, 0, now), Err(TooManyRenewals { limit: 0, retry_after: 3600 }));
        let later = now + Duration::milliseconds(300);
        assert_eq!(
            check_renewal_rate(3, Some(now), 3, later).map_err(|e| e.retry_after),
            Err(3600),
            "rounded up, not down"
        );
        // Never a wait of zero seconds.
        let edge = check_renewal_rate(3, Some(now - RENEWAL_WINDOW), 3, now);
        assert_eq!(edge.map_err(|e| e.retry_after), Err(1));
    }

    #[test]
    fn renewal_names_the_first_reason_it_refuses() {
        let serial = Serial::from_bytes(&[1, 2, 3]).expect("serial");
        let ok = RenewalFacts {
            certificate: CertStatus::Valid,
            expired: false,
            device_active: true,
            user: UserStatus::Active,
            facility: FacilityStatus::Approved,
        };
        assert_eq!(check_renewal(&serial, &ok), Ok(()));
        let refused = |f: RenewalFacts, status| {
            assert_eq!(
                check_renewal(&serial, &f),
                Err(DomainError::CertificateNotUsable { serial: serial.clone(), status })
            )
        };
        let all_wrong = RenewalFacts {
            certificate: CertStatus::OnHold,
            expired: true,
            device_active: false,
            user: UserStatus::Retired,
            facility: FacilityStatus::Closed,
        };
        refused(all_wrong, "on_hold");
        refused(RenewalFacts { certificate: CertStatus::Valid, ..all_wrong }, "expired");
        refused(
            RenewalFacts { certificate: CertStatus::Valid, expired: false, ..all_wrong },
            "of a device that is no longer active",
        );
        refused(
            RenewalFacts { certificate: CertStatus::Valid, expired: false, device_active: true, ..all_wrong },
            "of a facility that is not active",
        );
        refused(RenewalFacts { user: UserStatus::Retired, ..ok }, "of a retired user");
        refused(RenewalFacts { user: UserStatus::Deleted, ..ok }, "of a retired user");
    }
}
