//! How long a device's certificate lives (issue 26, item 4): a year when a
//! person installs it by hand, a week when a device-management system
//! renews it by itself at half-life (EST). A short life bounds what a
//! relying party that caches a CRL or an OCSP answer can miss after a
//! revocation; it never replaces revocation (the certificates keep their CRL
//! and OCSP pointers). The service has defaults; a facility may have its own.

use time::Duration;

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
