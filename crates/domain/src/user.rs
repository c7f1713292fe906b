//! The user lifecycle (DESIGN §3): `invited → active → retired → deleted`.
//! The store carries these decisions out; it does not make them.

use crate::model::UserStatus;

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
pub fn may_receive_certificates(status: UserStatus) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
