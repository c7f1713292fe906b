//! The user lifecycle (DESIGN §3): `invited → active → retired → deleted`.
//! The store carries these decisions out; it does not make them.

use time::OffsetDateTime;

use crate::error::DomainError;
use crate::model::{Role, UserStatus};

/// The status a retirement moves a user to, or `None` when there is nothing
/// to do (already retired or deleted: repeating is safe, and a scheduled
/// retirement never turns a deleted user back into a retired one).
pub fn retire(current: UserStatus) -> Option<UserStatus> {
    match current {
        UserStatus::Invited | UserStatus::Active => Some(UserStatus::Retired),
        UserStatus::Retired | UserStatus::Deleted => None,
    }
}

/// Whether a certificate may be issued to a user in `status` (enrollment,
/// renewal): never for a retired or deleted account.
pub(crate) fn may_receive_certificates(status: UserStatus) -> bool {
    matches!(status, UserStatus::Invited | UserStatus::Active)
}

/// The status enrollment leaves a user in: an invited user becomes active on
/// first enrollment; others keep theirs.
pub fn after_enrollment(current: UserStatus) -> UserStatus {
    match current {
        UserStatus::Invited => UserStatus::Active,
        other => other,
    }
}

/// Whether a retirement may be scheduled for a user in `status`: only for
/// one that a retirement would still change.
pub fn check_schedule_retirement(status: UserStatus) -> Result<(), DomainError> {
    match retire(status) {
        Some(_) => Ok(()),
        None => Err(DomainError::InvalidTransition { from: status.as_str(), to: "retired" }),
    }
}

/// Who asks for a change that takes a manager away from their facility
/// (retirement, a new role, a transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The facility's manager (or anyone but 行政管理課): refused if it
    /// leaves the facility with no active manager.
    Guarded,
    /// 行政管理課, who appoints the successor, or a retirement that comes due
    /// (its schedule was checked when it was made).
    Allowed,
}

/// A facility always keeps an active manager: taking `user` (in `role`,
/// `status`) away is refused while no other active manager remains
/// (`others`), unless 行政管理課 does it.
pub fn check_departure(
    user: i64,
    role: Role,
    status: UserStatus,
    others: i64,
    who: Departure,
) -> Result<(), DomainError> {
    let leaves_none = role == Role::FacilityManager && status == UserStatus::Active && others == 0;
    if leaves_none && who == Departure::Guarded {
        return Err(DomainError::LastManager { user });
    }
    Ok(())
}

/// Every quarter by default a facility's manager reviews its accounts (棚卸し).
pub const DEFAULT_REVIEW_PERIOD: time::Duration = time::Duration::days(91);

/// A device unused this long is listed for review.
pub const DEFAULT_UNUSED_AFTER: time::Duration = time::Duration::days(90);

/// Whether a facility's account review is due at `now`: never done, or
/// done a whole `period` ago.
pub fn review_due(last: Option<OffsetDateTime>, now: OffsetDateTime, period: time::Duration) -> bool {
    last.is_none_or(|t| now - t >= period)
}

/// Whether a scheduled retirement is to be carried out at `now`: still
/// scheduled, its time reached, and the user not retired already.
pub fn retirement_due(status: UserStatus, retire_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    retire_at.is_some_and(|at| at <= now) && retire(status).is_some()
}

/// Whether a scheduled retirement may be cancelled: only while it is still
/// scheduled and has not run (the worker clears the schedule as it retires,
/// so a retired user has nothing left to cancel). Returns the time it was
/// scheduled for.
pub fn check_cancel_retirement(
    status: UserStatus,
    retire_at: Option<OffsetDateTime>,
) -> Result<OffsetDateTime, DomainError> {
    match (retire(status), retire_at) {
        (Some(_), Some(at)) => Ok(at),
        (None, _) => Err(DomainError::InvalidTransition { from: status.as_str(), to: "retirement cancelled" }),
        (Some(_), None) => {
            Err(DomainError::InvalidTransition { from: "no retirement scheduled", to: "retirement cancelled" })
        }
    }
}

/// Whether an enrollment code may be handed to a user in `status`.
pub fn check_enrollment_code(status: UserStatus) -> Result<(), DomainError> {
    if may_receive_certificates(status) {
        Ok(())
    } else {
        Err(DomainError::InvalidTransition { from: status.as_str(), to: "enrollment" })
    }
}

/// The status deleting a user's personal data moves them to: `Some(Deleted)`
/// from retired, `None` when already deleted (repeating is safe); anyone
/// else must be retired first.
pub fn delete(current: UserStatus) -> Result<Option<UserStatus>, DomainError> {
    match current {
        UserStatus::Retired => Ok(Some(UserStatus::Deleted)),
        UserStatus::Deleted => Ok(None),
        other => Err(DomainError::InvalidTransition { from: other.as_str(), to: "deleted (retire first)" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_is_due_each_period() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let q = DEFAULT_REVIEW_PERIOD;
        assert!(review_due(None, now, q));
        assert!(!review_due(Some(now - q + time::Duration::seconds(1)), now, q));
        assert!(review_due(Some(now - q), now, q));
    }

    #[test]
    fn the_last_active_manager_leaves_only_by_the_city() {
        use Departure::*;
        let (m, s) = (Role::FacilityManager, Role::Staff);
        assert_eq!(check_departure(7, m, UserStatus::Active, 0, Guarded), Err(DomainError::LastManager { user: 7 }));
        assert_eq!(check_departure(7, m, UserStatus::Active, 0, Allowed), Ok(()));
        assert_eq!(check_departure(7, m, UserStatus::Active, 1, Guarded), Ok(()));
        assert_eq!(check_departure(7, s, UserStatus::Active, 0, Guarded), Ok(()));
        // An invited manager who never enrolled keeps nothing running.
        assert_eq!(check_departure(7, m, UserStatus::Invited, 0, Guarded), Ok(()));
    }

    #[test]
    fn retirement_never_revives_or_repeats() {
        assert_eq!(retire(UserStatus::Invited), Some(UserStatus::Retired));
        assert_eq!(retire(UserStatus::Active), Some(UserStatus::Retired));
        assert_eq!(retire(UserStatus::Retired), None);
        assert_eq!(retire(UserStatus::Deleted), None);
        assert!(!may_receive_certificates(UserStatus::Retired));
        assert!(!may_receive_certificates(UserStatus::Deleted));
        assert_eq!(after_enrollment(UserStatus::Retired), UserStatus::Retired);
        assert_eq!(after_enrollment(UserStatus::Invited), UserStatus::Active);
    }

    #[test]
    fn retirement_is_scheduled_and_due_only_for_users_it_would_change() {
        use UserStatus::*;
        assert!(check_schedule_retirement(Invited).is_ok());
        assert!(check_schedule_retirement(Active).is_ok());
        for s in [Retired, Deleted] {
            assert_eq!(
                check_schedule_retirement(s),
                Err(DomainError::InvalidTransition { from: s.as_str(), to: "retired" })
            );
        }
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let past = Some(now - time::Duration::seconds(1));
        assert!(retirement_due(Active, past, now));
        assert!(retirement_due(Invited, Some(now), now));
        assert!(!retirement_due(Active, Some(now + time::Duration::seconds(1)), now));
        assert!(!retirement_due(Active, None, now));
        assert!(!retirement_due(Retired, past, now));
        assert!(!retirement_due(Deleted, past, now));
    }

    #[test]
    fn only_a_retirement_still_to_run_is_cancelled() {
        use UserStatus::*;
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        assert_eq!(check_cancel_retirement(Active, Some(at)), Ok(at));
        assert_eq!(check_cancel_retirement(Invited, Some(at)), Ok(at));
        assert!(check_cancel_retirement(Active, None).is_err());
        for s in [Retired, Deleted] {
            assert_eq!(
                check_cancel_retirement(s, Some(at)),
                Err(DomainError::InvalidTransition { from: s.as_str(), to: "retirement cancelled" })
            );
        }
    }

    #[test]
    fn codes_go_only_to_open_accounts_and_deletion_needs_retirement() {
        use UserStatus::*;
        assert!(check_enrollment_code(Invited).is_ok());
        assert!(check_enrollment_code(Active).is_ok());
        assert_eq!(
            check_enrollment_code(Retired),
            Err(DomainError::InvalidTransition { from: "retired", to: "enrollment" })
        );
        assert!(check_enrollment_code(Deleted).is_err());
        assert_eq!(delete(Retired), Ok(Some(Deleted)));
        assert_eq!(delete(Deleted), Ok(None));
        for s in [Invited, Active] {
            assert_eq!(
                delete(s),
                Err(DomainError::InvalidTransition { from: s.as_str(), to: "deleted (retire first)" })
            );
        }
    }
}
