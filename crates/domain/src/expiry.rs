//! Expiry notices (issue 12): which certificates count as running out, and
//! which notice, if any, is due for one of them.
//!
//! A certificate gets at most one notice per threshold: at the configured
//! window (30 days by default) and at [`FINAL_NOTICE_DAYS`]. Only the most
//! urgent threshold it has reached is ever due, so a certificate first seen
//! inside the last week gets the final notice alone, and a notice is never
//! followed by a less urgent one.

use time::{Duration, OffsetDateTime};

use crate::certificate::in_force;
use crate::error::DomainError;
use crate::model::CertStatus;

/// The last notice before a certificate runs out.
pub const FINAL_NOTICE_DAYS: u32 = 7;
/// How far ahead lists look and when the first notice goes, by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;
/// The widest window a list may ask for: past a year every device
/// certificate (1 year) would be listed, which is no longer a warning.
pub(crate) const MAX_WINDOW_DAYS: u32 = 400;

/// A window of days asked for (`?days=`, `--expiry-notice-days`), refused
/// outside 1..=[`MAX_WINDOW_DAYS`].
pub fn window(days: u32) -> Result<Duration, DomainError> {
    if (1..=MAX_WINDOW_DAYS).contains(&days) {
        Ok(Duration::days(i64::from(days)))
    } else {
        Err(DomainError::Invalid { field: "days", why: format!("{days} is not between 1 and {MAX_WINDOW_DAYS}") })
    }
}

/// The notice thresholds for a window of `window_days`, most urgent last.
pub fn thresholds(window_days: u32) -> Vec<u32> {
    let mut t = vec![window_days, FINAL_NOTICE_DAYS];
    t.sort_unstable_by(|a, b| b.cmp(a));
    t.dedup();
    t
}

/// The notice due now for a certificate in `status` running out at
/// `not_after`, given the thresholds already `sent` for it: the most urgent
/// threshold reached, unless it (or, impossibly, a more urgent one) was sent.
/// `None` for a certificate no longer in force or already expired.
pub fn due_notice(
    status: CertStatus,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    thresholds: &[u32],
    sent: &[u32],
) -> Option<u32> {
    if !in_force(status) || not_after <= now {
        return None;
    }
    let left = not_after - now;
    let reached = thresholds.iter().copied().filter(|t| left <= Duration::days(i64::from(*t))).min()?;
    if sent.iter().any(|s| *s <= reached) { None } else { Some(reached) }
}

/// Whole days left before `not_after`, as lists show them (0 on the last day).
pub fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_days().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CertStatus::*;

    const T: [u32; 2] = [30, 7];

    fn at(days_before: f64) -> (OffsetDateTime, OffsetDateTime) {
        let not_after = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        (not_after, not_after - Duration::seconds_f64(days_before * 86_400.0))
    }

    fn due(status: CertStatus, days_before: f64, sent: &[u32]) -> Option<u32> {
        let (not_after, now) = at(days_before);
        due_notice(status, not_after, now, &T, sent)
    }

    #[test]
    fn thresholds_are_the_window_and_the_final_week() {
        assert_eq!(thresholds(30), vec![30, 7]);
        assert_eq!(thresholds(7), vec![7]);
        assert_eq!(thresholds(3), vec![7, 3]);
        assert_eq!(thresholds(400), vec![400, 7]);
    }

    #[test]
    fn windows_outside_the_bounds_are_refused() {
        assert!(window(0).is_err());
        assert!(window(401).is_err());
        assert_eq!(window(1), Ok(Duration::days(1)));
        assert_eq!(window(400), Ok(Duration::days(400)));
    }

    #[test]
    fn nothing_is_due_before_the_window() {
        assert_eq!(due(Valid, 30.01, &[]), None);
        assert_eq!(due(Valid, 100.0, &[]), None);
    }

    #[test]
    fn the_window_notice_then_the_final_one_once_each() {
        assert_eq!(due(Valid, 30.0, &[]), Some(30));
        assert_eq!(due(Valid, 29.0, &[]), Some(30));
        assert_eq!(due(Valid, 29.0, &[30]), None);
        assert_eq!(due(Valid, 7.5, &[30]), None);
        assert_eq!(due(Valid, 7.0, &[30]), Some(7));
        assert_eq!(due(Valid, 6.0, &[30]), Some(7));
        assert_eq!(due(Valid, 1.0, &[30, 7]), None);
    }

    #[test]
    fn first_seen_in_the_last_week_gets_the_final_notice_alone() {
        assert_eq!(due(Valid, 5.0, &[]), Some(7));
        assert_eq!(due(Valid, 5.0, &[7]), None);
        // A window notice never follows the final one.
        assert_eq!(due(Valid, 5.0, &[7]), None);
    }

    #[test]
    fn held_certificates_count_and_ended_ones_do_not() {
        assert_eq!(due(OnHold, 20.0, &[]), Some(30));
        assert_eq!(due(Revoked, 20.0, &[]), None);
        assert_eq!(due(Superseded, 6.0, &[]), None);
        assert_eq!(due(Valid, 0.0, &[]), None, "already expired");
        assert_eq!(due(Valid, -3.0, &[]), None);
    }

    #[test]
    fn days_left_count_whole_days_and_never_go_below_zero() {
        let (not_after, now) = at(10.0);
        assert_eq!(days_left(not_after, now), 10);
        assert_eq!(days_left(not_after, not_after + Duration::days(1)), 0);
    }
}
