//! How long a device's certificate lives (issue 26, item 4): a year when a
//! person installs it by hand, a week when a device-management system
//! renews it by itself at half-life (EST). A short life bounds what a
//! relying party that caches a CRL or an OCSP answer can miss after a
//! revocation; it never replaces revocation (the certificates keep their CRL
//! and OCSP pointers). The service has defaults; a facility may have its own.

use time::{Duration, OffsetDateTime};

use crate::DomainError;

/// The service's lifetimes (`device_lifetime_days`, `managed_lifetime_days`).
pub const DEFAULT_BY_HAND_DAYS: u32 = 365;
pub const DEFAULT_MANAGED_DAYS: u32 = 7;
/// Longer than a year and a month is refused: nothing here needs it, and
/// every extra day is a day a forgotten device keeps working.
pub const MAX_DAYS: u32 = 398;

/// The defaults, for devices installed by hand and for managed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub by_hand_days: u32,
    pub managed_days: u32,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self { by_hand_days: DEFAULT_BY_HAND_DAYS, managed_days: DEFAULT_MANAGED_DAYS }
    }
}

/// A facility's own lifetimes, where it has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FacilityLifetimes {
    pub by_hand_days: Option<u32>,
    pub managed_days: Option<u32>,
}

impl Lifetimes {
    /// The days a certificate of a device of a facility with `own` lives.
    pub fn days(&self, own: FacilityLifetimes, managed: bool) -> u32 {
        if managed {
            own.managed_days.unwrap_or(self.managed_days)
        } else {
            own.by_hand_days.unwrap_or(self.by_hand_days)
        }
    }

    /// [`Self::days`] as a duration.
    pub fn of(&self, own: FacilityLifetimes, managed: bool) -> Duration {
        Duration::days(i64::from(self.days(own, managed)))
    }
}

/// A lifetime given by a person, in days: 1 to [`MAX_DAYS`].
pub fn check_days(field: &'static str, days: i64) -> Result<u32, DomainError> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .ok_or_else(|| DomainError::Invalid { field, why: format!("must be 1 to {MAX_DAYS} days") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_facility_overrides_each_channel_on_its_own() {
        let service = Lifetimes::default();
        let none = FacilityLifetimes::default();
        assert_eq!((service.days(none, false), service.days(none, true)), (365, 7));
        let own = FacilityLifetimes { by_hand_days: None, managed_days: Some(2) };
        assert_eq!((service.days(own, false), service.days(own, true)), (365, 2));
        assert!(check_days("x", 0).is_err() && check_days("x", 399).is_err() && check_days("x", -1).is_err());
        assert_eq!(check_days("x", 398), Ok(398));
    }
}

/// What one relying party held when a certificate was revoked, and when it
/// first learnt of the revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    /// Its last OCSP answer `good` for the certificate, before the revocation.
    pub ocsp_good_at: Option<OffsetDateTime>,
    /// The thisUpdate of the newest CRL it had downloaded before the
    /// revocation (one that cannot list it).
    pub crl_this_update: Option<OffsetDateTime>,
    /// The first time it was told `revoked` or downloaded a CRL listing it.
    pub learnt_at: Option<OffsetDateTime>,
}

/// How long answers stay usable: OCSP's nextUpdate and the CRL's, after
/// they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub ocsp: Duration,
    pub crl: Duration,
}

impl Validity {
    /// The longest a caching relying party can go by an answer it holds:
    /// the longer-lived of the two.
    pub fn longest(self) -> Duration {
        self.ocsp.max(self.crl)
    }
}

/// The worst exposure a certificate lifetime implies, for the facility page:
/// a party that fetched its answer just before the revocation goes by it
/// for [`Validity::longest`], unless the certificate runs out first. The
/// same rule as [`exposed_until`], at its worst.
pub fn worst_exposure(lifetime: Duration, validity: Validity) -> Duration {
    lifetime.min(validity.longest())
}

/// Until when a relying party that held `held` could still have accepted a
/// certificate revoked at `revoked_at` that ran out at `not_after`: its
/// answers stay usable until their nextUpdate (the later of the two it
/// holds), but never past the certificate's own end, nor past the moment
/// the party learnt of the revocation. `None`: it held nothing that said
/// `good`, so it could not have accepted it from us after the revocation.
pub fn exposed_until(
    revoked_at: OffsetDateTime,
    not_after: OffsetDateTime,
    held: Held,
    validity: Validity,
) -> Option<OffsetDateTime> {
    let ocsp = held.ocsp_good_at.filter(|t| *t <= revoked_at).map(|t| t + validity.ocsp);
    let crl = held.crl_this_update.filter(|t| *t <= revoked_at).map(|t| t + validity.crl);
    let usable = ocsp.into_iter().chain(crl).max()?;
    let until = [Some(usable), Some(not_after), held.learnt_at].into_iter().flatten().min()?;
    Some(until.max(revoked_at))
}

#[cfg(test)]
mod exposure_tests {
    use super::*;

    fn t(hours: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::hours(hours)
    }

    const V: Validity = Validity { ocsp: Duration::hours(1), crl: Duration::hours(24) };

    #[test]
    fn the_later_answer_bounds_it_and_the_certificate_and_learning_cut_it_short() {
        let revoked = t(10);
        // A CRL from 2 h before: usable 22 h more; OCSP 30 min before: 30 min.
        let held =
            Held { ocsp_good_at: Some(t(10) - Duration::minutes(30)), crl_this_update: Some(t(8)), learnt_at: None };
        assert_eq!(exposed_until(revoked, t(1000), held, V), Some(t(32)));
        // The certificate ran out first.
        assert_eq!(exposed_until(revoked, t(12), held, V), Some(t(12)));
        // It was told `revoked` an hour after.
        let told = Held { learnt_at: Some(t(11)), ..held };
        assert_eq!(exposed_until(revoked, t(1000), told, V), Some(t(11)));
        // Only an OCSP answer, long expired at the revocation: nothing left.
        let stale = Held { ocsp_good_at: Some(t(2)), ..Held::default() };
        assert_eq!(exposed_until(revoked, t(1000), stale, V), Some(revoked));
        // Nothing that said good (an answer after the revocation is not one).
        assert_eq!(exposed_until(revoked, t(1000), Held::default(), V), None);
        let later = Held { ocsp_good_at: Some(t(11)), ..Held::default() };
        assert_eq!(exposed_until(revoked, t(1000), later, V), None);
    }

    #[test]
    fn the_worst_case_is_the_rule_with_fresh_answers_held() {
        let revoked = t(10);
        let fresh = Held { ocsp_good_at: Some(revoked), crl_this_update: Some(revoked), learnt_at: None };
        for days in [1, 7, 365] {
            let lifetime = Duration::days(days);
            let until = exposed_until(revoked, revoked + lifetime, fresh, V).expect("held good");
            assert_eq!(until - revoked, worst_exposure(lifetime, V), "{days} days");
        }
    }
}
