//! After-hours emergencies (運用ルール 5): where a lost-device report goes,
//! and who may do what with it.
//!
//! Routing: during business hours the facility's manager gets it, and if they
//! have not claimed it within the SLA it moves to 行政管理課; outside business
//! hours it goes straight to 行政管理課 and the manager is informed.
//! Lifecycle: `open → claimed → resolved(revoked | released | rejected)`.

use time::{Date, Duration, OffsetDateTime, Time};

use crate::calendar::BusinessHours;
use crate::certificate::{BulkChange, Change};
use crate::error::DomainError;
use crate::model::{CertStatus, Reason, Role};

/// Default time the manager has to claim a report in business hours.
pub const DEFAULT_SLA: Duration = Duration::minutes(30);
/// Default time after which an unresolved hold becomes a revocation.
pub const DEFAULT_HOLD_LIMIT: Duration = Duration::hours(72);

pub use crate::model::Queue;

/// Where a new report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    pub queue: Queue,
    /// When it moves to 行政管理課 if still unclaimed (business hours only).
    pub escalate_at: Option<OffsetDateTime>,
    /// Whether the manager is told even though 行政管理課 handles it.
    pub(crate) inform_manager: bool,
}

/// Routes a report opened at `now` (UTC) whose local Asia/Tokyo date and
/// time are `local`.
pub(crate) fn route(now: OffsetDateTime, local: (Date, Time), hours: &BusinessHours, sla: Duration) -> Routing {
    if hours.is_open(local.0, local.1) {
        Routing { queue: Queue::Manager, escalate_at: Some(now + sla), inform_manager: false }
    } else {
        Routing { queue: Queue::AdminDivision, escalate_at: None, inform_manager: true }
    }
}

/// Routes a report about a device of a user whose role is `holder`: one of
/// a city role goes to 行政管理課 at any hour, since no facility manager may
/// act on that user (`policy::Action::ActOnUser`); so does a facility
/// manager's own device, whose hold they may not lift themselves (the
/// facility's other managers are informed); others as [`route`].
pub fn route_for(
    holder: Role,
    now: OffsetDateTime,
    local: (Date, Time),
    hours: &BusinessHours,
    sla: Duration,
) -> Routing {
    if holder.is_city() {
        Routing { queue: Queue::AdminDivision, escalate_at: None, inform_manager: false }
    } else if holder == Role::FacilityManager {
        Routing { queue: Queue::AdminDivision, escalate_at: None, inform_manager: true }
    } else {
        route(now, local, hours, sla)
    }
}

/// How an escalation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The device is lost: its certificates are revoked (keyCompromise).
    Revoked,
    /// The device was found: the hold is lifted.
    Released,
    /// Not a real emergency (a mistake, a report someone else made with the
    /// holder's password): the escalation closes and the holds it placed are
    /// lifted, as for [`Outcome::Released`] and under the same rules — the
    /// device was never lost, so nothing may run out into a revocation.
    Rejected,
}

impl Outcome {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "revoked" => Ok(Outcome::Revoked),
            "released" => Ok(Outcome::Released),
            "rejected" => Ok(Outcome::Rejected),
            other => Err(DomainError::Invalid {
                field: "outcome",
                why: format!("{other:?} is not one of revoked, released, rejected"),
            }),
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::Released => "released",
            Outcome::Rejected => "rejected",
        }
    }

    /// What the outcome does to the device's certificates: a revocation
    /// revokes held and valid ones alike (and the device counts as lost); a
    /// release or a rejection lifts holds only, so a certificate revoked
    /// meanwhile stays revoked.
    pub const fn certificates(self) -> Option<BulkChange> {
        match self {
            Outcome::Revoked => Some(BulkChange::any(Change::Revoke(Reason::KeyCompromise))),
            Outcome::Released | Outcome::Rejected => {
                Some(BulkChange { change: Change::Release, only_from: Some(&[CertStatus::OnHold]) })
            }
        }
    }

    /// Whether the outcome lifts the report's holds (the risky direction).
    pub(crate) const fn lifts_holds(self) -> bool {
        matches!(self, Outcome::Released | Outcome::Rejected)
    }

    /// Whether the outcome marks the device lost.
    pub const fn device_lost(self) -> bool {
        matches!(self, Outcome::Revoked)
    }
}

/// Who is resolving, as far as the rules care.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    pub role: Role,
    /// The resolver reported the loss, or holds the device.
    pub is_reporter: bool,
    /// The resolver claimed this escalation.
    pub is_claimer: bool,
}

/// Checks a resolution. Lifting a hold is the risky direction: only a
/// facility manager or 行政管理課, never the reporter alone, and outside
/// business hours only 行政管理課. Resolving needs the claim, unless
/// 行政管理課 takes over.
pub fn check_resolution(r: Resolver, outcome: Outcome, business_hours: bool) -> Result<(), DomainError> {
    let refuse = |action: &'static str| Err(DomainError::NotPermitted { actor: r.role.as_str().to_string(), action });
    if !r.is_claimer && r.role != Role::AdminDivision {
        return refuse("resolve an escalation someone else claimed");
    }
    if outcome.lifts_holds() {
        if r.is_reporter {
            return refuse("lift the hold on a device they hold or reported lost themselves");
        }
        match r.role {
            Role::AdminDivision => {}
            Role::FacilityManager if business_hours => {}
            Role::FacilityManager => return refuse("lift a hold outside business hours (行政管理課 only)"),
            _ => return refuse("lift a hold"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime, time};

    fn at(d: Date, t: Time) -> Routing {
        let utc = datetime!(2026-01-01 0:00 UTC);
        route(utc, (d, t), &BusinessHours::default(), DEFAULT_SLA)
    }

    #[test]
    fn routing_table() {
        // Saturday 22:00 → 行政管理課, manager informed.
        let r = at(date!(2026 - 11 - 28), time!(22:00));
        assert_eq!((r.queue, r.inform_manager, r.escalate_at), (Queue::AdminDivision, true, None));
        // Tuesday 10:00 → manager, to 行政管理課 after the SLA.
        let r = at(date!(2026 - 11 - 24), time!(10:00));
        assert_eq!(r.queue, Queue::Manager);
        assert_eq!(r.escalate_at, Some(datetime!(2026-01-01 0:30 UTC)));
        // A national holiday Monday (スポーツの日 2026-10-12) → 行政管理課.
        assert_eq!(at(date!(2026 - 10 - 12), time!(10:00)).queue, Queue::AdminDivision);
        // A weekday evening → 行政管理課.
        assert_eq!(at(date!(2026 - 11 - 24), time!(17:16)).queue, Queue::AdminDivision);
    }

    #[test]
    fn reports_about_city_role_and_manager_devices_skip_the_manager_queue() {
        let utc = datetime!(2026-01-01 0:00 UTC);
        let tuesday_ten = (date!(2026 - 11 - 24), time!(10:00));
        let hours = BusinessHours::default();
        for holder in [Role::AdminDivision, Role::WelfareDivision, Role::FacilityManager] {
            let r = route_for(holder, utc, tuesday_ten, &hours, DEFAULT_SLA);
            assert_eq!((r.queue, r.escalate_at), (Queue::AdminDivision, None), "{holder}");
        }
        assert_eq!(route_for(Role::Staff, utc, tuesday_ten, &hours, DEFAULT_SLA), at(tuesday_ten.0, tuesday_ten.1));
    }

    #[test]
    fn who_may_lift_a_hold() {
        let r = |role, is_reporter, is_claimer| Resolver { role, is_reporter, is_claimer };
        use Role::*;
        assert!(check_resolution(r(FacilityManager, false, true), Outcome::Released, true).is_ok());
        assert!(check_resolution(r(FacilityManager, false, true), Outcome::Released, false).is_err(), "after hours");
        assert!(check_resolution(r(AdminDivision, false, false), Outcome::Released, false).is_ok());
        assert!(check_resolution(r(FacilityManager, true, true), Outcome::Released, true).is_err(), "reporter alone");
        assert!(check_resolution(r(Staff, false, true), Outcome::Released, true).is_err());
        assert!(check_resolution(r(FacilityManager, false, true), Outcome::Revoked, false).is_ok());
        assert!(check_resolution(r(FacilityManager, false, false), Outcome::Revoked, true).is_err(), "not the claimer");
        // Rejecting lifts the holds too: the same rules.
        assert!(check_resolution(r(FacilityManager, false, true), Outcome::Rejected, false).is_err(), "after hours");
        assert!(check_resolution(r(FacilityManager, true, true), Outcome::Rejected, true).is_err(), "reporter alone");
        assert!(check_resolution(r(FacilityManager, false, true), Outcome::Rejected, true).is_ok());
    }

    #[test]
    fn outcomes_say_which_certificates_change() {
        use CertStatus::*;
        let revoke = Outcome::Revoked.certificates().expect("a revocation changes certificates");
        assert_eq!(revoke.change, Change::Revoke(Reason::KeyCompromise));
        assert!(revoke.touches(Valid) && revoke.touches(OnHold));
        assert!(Outcome::Revoked.device_lost());
        let release = Outcome::Released.certificates().expect("a release changes certificates");
        assert_eq!(release.change, Change::Release);
        assert!(release.touches(OnHold));
        for s in [Valid, Revoked, Superseded] {
            assert!(!release.touches(s), "{s:?}");
        }
        assert!(!Outcome::Released.device_lost());
        assert_eq!(Outcome::Rejected.certificates(), Outcome::Released.certificates(), "a rejection lifts the holds");
        assert!(!Outcome::Rejected.device_lost());
        assert!(Outcome::Rejected.lifts_holds() && Outcome::Released.lifts_holds() && !Outcome::Revoked.lifts_holds());
    }
}
