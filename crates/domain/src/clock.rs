//! Time is injected so that lifecycle and routing rules can be tested at any
//! instant (a Saturday night, the day before a holiday) without waiting for it.

use std::sync::Mutex;

use time::OffsetDateTime;

/// An instant as RFC 3339 UTC, the form every time takes at the API and in
/// signed records.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Source of the current time for every rule that depends on it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, UTC.
    fn now(&self) -> OffsetDateTime;

    /// Whether this is the machine's own clock. Only then may a shared
    /// reference (the database server's clock, for work that falls due on
    /// several instances) stand in for it; a clock a test sets is its own
    /// reference.
    fn is_system(&self) -> bool {
        false
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn is_system(&self) -> bool {
        true
    }
}

/// A clock that stays where a test puts it.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    /// A clock standing at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the clock forward by `by` (backward when negative).
    pub fn advance(&self, by: time::Duration) {
        let mut at = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *at = at.saturating_add(by);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-12-01 01:00 UTC);
        let clock = FixedClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(time::Duration::minutes(31));
        assert_eq!(clock.now(), start + time::Duration::minutes(31));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
