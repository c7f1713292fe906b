//! The emergency sign-in's throttle (issue 10). Guessing a password must
//! stay hopeless, yet someone who knows only a login ID must not be able to
//! keep the owner out when the owner needs this sign-in (their device is
//! lost). So failures are counted per account *and source network*: a
//! source that keeps failing backs off on its own, and another source —
//! the owner's — keeps its own tries. A much higher ceiling per account
//! across all sources bounds what an attacker with many addresses gets.
//!
//! Every password check is counted before it runs, in the transaction that
//! decides whether it may run at all, so parallel guesses cannot get more
//! checks than the rules allow.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

/// Password checks a source gets for an account before it must wait.
pub const TRIES_PER_SOURCE: i64 = 5;
/// The first wait of a source after [`TRIES_PER_SOURCE`] failures; each
/// further failure doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::minutes(15);
/// The longest a source waits between two checks.
pub(crate) const MAX_BACKOFF: Duration = Duration::hours(24);
/// A source that failed nothing for this long starts afresh (a mistyped
/// password months ago does not count against the owner today).
pub const SOURCE_MEMORY: Duration = Duration::days(7);
/// Password checks per account and [`ACCOUNT_WINDOW`], over all sources.
pub(crate) const ACCOUNT_CEILING: i64 = 100;
/// The window of [`ACCOUNT_CEILING`], from the first check counted in it.
pub(crate) const ACCOUNT_WINDOW: Duration = Duration::hours(24);

/// The source network of an address: an IPv4 address itself, an IPv6
/// address's /64 (one customer's network; an attacker gets a whole /64 as
/// easily as one address in it). IPv4-mapped IPv6 addresses count as IPv4.
pub fn source_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// What the store knows about one source's and the account's past checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Failed checks of this source since it last succeeded (or was forgotten).
    pub source_failures: i64,
    pub source_blocked_until: Option<OffsetDateTime>,
    pub source_last_failure: Option<OffsetDateTime>,
    /// Checks of the account in its current window.
    pub account_checks: i64,
    pub account_window_start: Option<OffsetDateTime>,
}

/// Why a check may not run now. Never shown to the caller, who gets the same
/// answer as for a wrong password; it goes to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("refused: this source must wait after repeated failures")]
    SourceBackoff { until: OffsetDateTime },
    #[error("refused: the account reached its ceiling of checks")]
    AccountCeiling { until: OffsetDateTime },
}

/// The verdict on an attempt: refuse it, or run the check with the state
/// to store first (counting the attempt as failed until it succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Refuse(Refused),
    Check(Throttle),
}

/// The wait after the `failures`-th failure of a source (none before
/// [`TRIES_PER_SOURCE`]).
pub(crate) fn backoff(failures: i64) -> Option<Duration> {
    let over = failures.checked_sub(TRIES_PER_SOURCE)?;
    if over < 0 {
        return None;
    }
    // 2^7 × 15 min is past the cap already; clamping keeps the shift small.
    let doubled = FIRST_BACKOFF * (1i32 << over.min(7));
    Some(doubled.min(MAX_BACKOFF))
}

/// Whether an attempt at `now` may check the password, given `t`.
pub fn decide(t: &Throttle, now: OffsetDateTime) -> Decision {
    let (account_checks, window_start) = match t.account_window_start {
        Some(start) if now < start + ACCOUNT_WINDOW => (t.account_checks, start),
        _ => (0, now),
    };
    if account_checks >= ACCOUNT_CEILING {
        return Decision::Refuse(Refused::AccountCeiling { until: window_start + ACCOUNT_WINDOW });
    }
    let forgotten = t.source_last_failure.is_none_or(|at| now - at >= SOURCE_MEMORY);
    let (failures, blocked_until) = if forgotten { (0, None) } else { (t.source_failures, t.source_blocked_until) };
    if let Some(until) = blocked_until.filter(|until| *until > now) {
        return Decision::Refuse(Refused::SourceBackoff { until });
    }
    let failures = failures + 1;
    Decision::Check(Throttle {
        source_failures: failures,
        source_blocked_until: backoff(failures).map(|wait| now + wait),
        source_last_failure: Some(now),
        account_checks: account_checks + 1,
        account_window_start: Some(window_start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn checked(t: &Throttle, now: OffsetDateTime) -> Throttle {
        match decide(t, now) {
            Decision::Check(next) => next,
            Decision::Refuse(why) => panic!("refused: {why:?}"),
        }
    }

    #[test]
    fn a_source_gets_its_tries_then_backs_off_doubling() {
        let now = t0();
        let mut t = Throttle::default();
        for _ in 0..TRIES_PER_SOURCE {
            t = checked(&t, now);
        }
        assert_eq!(t.source_blocked_until, Some(now + FIRST_BACKOFF));
        assert!(matches!(decide(&t, now + Duration::minutes(14)), Decision::Refuse(Refused::SourceBackoff { .. })));
        let later = now + FIRST_BACKOFF;
        t = checked(&t, later);
        assert_eq!(t.source_blocked_until, Some(later + FIRST_BACKOFF * 2));
        assert_eq!(backoff(TRIES_PER_SOURCE + 40), Some(MAX_BACKOFF));
        assert_eq!(backoff(TRIES_PER_SOURCE - 1), None);
    }

    #[test]
    fn a_quiet_source_is_forgotten() {
        let now = t0();
        let t = Throttle {
            source_failures: 30,
            source_blocked_until: Some(now + Duration::hours(1)),
            source_last_failure: Some(now - SOURCE_MEMORY),
            ..Throttle::default()
        };
        assert_eq!(checked(&t, now).source_failures, 1);
    }

    #[test]
    fn the_account_ceiling_holds_across_sources_until_its_window_ends() {
        let start = t0();
        let full =
            Throttle { account_checks: ACCOUNT_CEILING, account_window_start: Some(start), ..Throttle::default() };
        let until = start + ACCOUNT_WINDOW;
        assert_eq!(decide(&full, start + Duration::hours(1)), Decision::Refuse(Refused::AccountCeiling { until }));
        let next = checked(&full, until);
        assert_eq!((next.account_checks, next.account_window_start), (1, Some(until)));
    }

    #[test]
    fn sources_are_addresses_or_ipv6_networks() {
        let v4: IpAddr = "203.0.113.7".parse().expect("ip");
        assert_eq!(source_of(v4), "203.0.113.7");
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().expect("ip");
        assert_eq!(source_of(mapped), "203.0.113.7");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(source_of(a), "2001:db8:1:2::/64");
        assert_eq!(source_of(a), source_of(b));
    }
}
