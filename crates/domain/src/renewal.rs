//! Renewal from the device's browser: a new key and certificate handed over
//! as a file the person still has to install, so the certificate it replaces
//! keeps working until the new one is first used, or until a grace period
//! ends, whichever comes first. A renewal by the API (the device sent its
//! own CSR and holds the new certificate already) hands over at once.

use time::{Duration, OffsetDateTime};

use crate::certificate::{BulkChange, Change};
use crate::model::CertStatus;

/// How long the replaced certificate keeps working after a browser renewal
/// when the new one is never used (`renewal_grace_days`).
pub const DEFAULT_GRACE: Duration = Duration::days(7);

/// Longest grace a configuration may give: a replaced certificate must not
/// outlive the renewal window by much.
pub const MAX_GRACE_DAYS: u32 = 30;

/// When the certificate a renewal replaces stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// At once, in the renewal's transaction (the API: the device has the
    /// new certificate in hand when the call returns).
    Now,
    /// When the new certificate is first used, and at the latest `by`.
    OnFirstUse { by: OffsetDateTime },
}

/// How a renewal goes: at most `per_hour` renewals of a device within the
/// hour, and when the replaced certificate stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub per_hour: u32,
    pub handover: Handover,
}

/// The handover's own change: only a valid certificate is superseded; a held
/// one waits for its hold to end, a revoked one stays revoked.
pub const HANDOVER: BulkChange = BulkChange { change: Change::Supersede, only_from: Some(&[CertStatus::Valid]) };

/// Whether a certificate ending at `not_after` may be renewed from the
/// browser at `now`: inside the renewal window (the days before expiry in
/// which the service first announces it), and not yet expired. Earlier, the
/// page says when it can; later, only a new code helps.
pub fn in_window(not_after: OffsetDateTime, now: OffsetDateTime, window_days: u32) -> bool {
    not_after > now && not_after - now <= Duration::days(i64::from(window_days))
}

/// What becomes of a waiting handover, given the states of the replaced
/// (`old`) and the new certificate, whether the new one was used and
/// whether the grace period is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Supersede the old certificate now.
    HandOver,
    /// Nothing yet: unused within the grace period, or one of the two held.
    Wait,
    /// Forget it: the old certificate is no longer valid (superseded by
    /// another renewal, revoked), or the new one was revoked before it took
    /// over — the device keeps what it has rather than be left with nothing.
    Forget,
}

pub fn pending(old: CertStatus, new: CertStatus, used: bool, grace_over: bool) -> Pending {
    match (old, new) {
        (CertStatus::Valid, CertStatus::Valid) if used || grace_over => Pending::HandOver,
        (CertStatus::Valid | CertStatus::OnHold, CertStatus::Valid | CertStatus::OnHold) => Pending::Wait,
        _ => Pending::Forget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CertStatus::*;

    #[test]
    fn the_window_is_the_days_before_expiry_and_ends_at_expiry() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        assert!(in_window(now + Duration::days(30), now, 30));
        assert!(!in_window(now + Duration::days(30) + Duration::seconds(1), now, 30));
        assert!(in_window(now + Duration::seconds(1), now, 30));
        assert!(!in_window(now, now, 30), "expired: a new code, not a renewal");
    }

    #[test]
    fn the_old_certificate_goes_when_the_new_one_is_used_or_the_grace_ends() {
        assert_eq!(pending(Valid, Valid, false, false), Pending::Wait);
        assert_eq!(pending(Valid, Valid, true, false), Pending::HandOver);
        assert_eq!(pending(Valid, Valid, false, true), Pending::HandOver);
        // A hold on either waits for its end, whatever the clock says.
        assert_eq!(pending(OnHold, Valid, true, true), Pending::Wait);
        assert_eq!(pending(Valid, OnHold, true, true), Pending::Wait);
        // A revoked new certificate never takes over; a gone old one needs nothing.
        assert_eq!(pending(Valid, Revoked, true, true), Pending::Forget);
        assert_eq!(pending(Revoked, Valid, true, true), Pending::Forget);
        assert_eq!(pending(Superseded, Valid, false, false), Pending::Forget);
        assert!(HANDOVER.touches(Valid) && !HANDOVER.touches(OnHold));
    }
}
