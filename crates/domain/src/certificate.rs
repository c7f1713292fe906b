//! Certificate lifecycle rules (DESIGN §3): `valid → revoked`,
//! `valid → on_hold → valid | revoked`. A revoked certificate never comes
//! back; only a hold can be released.

use crate::error::DomainError;
use crate::model::{CertStatus, Reason};

/// What a status change request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Revoke(Reason),
    Hold,
    Release,
    /// Renewal replaces a valid certificate with a new one.
    Supersede,
}

/// What to do about a request, given the certificate's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to `status` with `reason` (None for valid).
    Apply { status: CertStatus, reason: Option<Reason> },
    /// Already in the requested state: report it as it is (repeating a call is safe).
    AlreadyDone,
}

/// Reasons a revoke call may give. `certificateHold` goes through `hold`,
/// `removeFromCRL` only appears in delta CRLs, and the CA/AA compromise
/// reasons are for CA certificates.
pub fn check_revocation_reason(reason: Reason) -> Result<(), DomainError> {
    match reason {
        Reason::Unspecified
        | Reason::KeyCompromise
        | Reason::AffiliationChanged
        | Reason::Superseded
        | Reason::CessationOfOperation
        | Reason::PrivilegeWithdrawn => Ok(()),
        Reason::CertificateHold => Err(DomainError::Invalid {
            field: "reason",
            why: "certificateHold is set with the hold call, which can be released".into(),
        }),
        other => Err(DomainError::Invalid {
            field: "reason",
            why: format!(
                "{other} cannot be used for a device certificate; use keyCompromise, affiliationChanged, \
                          superseded, cessationOfOperation, privilegeWithdrawn or unspecified"
            ),
        }),
    }
}

/// The lifecycle step for `change` from `current`.
pub fn decide(current: CertStatus, change: Change) -> Result<Decision, DomainError> {
    use CertStatus::*;
    let refuse = |to: &'static str| Err(DomainError::InvalidTransition { from: current.as_str(), to });
    // A reason that is never allowed is refused whatever the state.
    if let Change::Revoke(reason) = change {
        check_revocation_reason(reason)?;
    }
    match (current, change) {
        (Valid | OnHold, Change::Revoke(reason)) => Ok(Decision::Apply { status: Revoked, reason: Some(reason) }),
        (Revoked | Superseded, Change::Revoke(_)) => Ok(Decision::AlreadyDone),
        (Valid, Change::Hold) => Ok(Decision::Apply { status: OnHold, reason: Some(Reason::CertificateHold) }),
        (OnHold, Change::Hold) => Ok(Decision::AlreadyDone),
        (Revoked | Superseded, Change::Hold) => refuse("on_hold"),
        (OnHold, Change::Release) => Ok(Decision::Apply { status: Valid, reason: None }),
        (Valid, Change::Release) => Ok(Decision::AlreadyDone),
        (Revoked | Superseded, Change::Release) => refuse("valid"),
        (Valid, Change::Supersede) => Ok(Decision::Apply { status: Superseded, reason: Some(Reason::Superseded) }),
        // Renewing twice, or renewing a held or revoked certificate, is refused:
        // only a valid certificate can be replaced.
        (OnHold | Revoked | Superseded, Change::Supersede) => refuse("superseded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CertStatus::*;

    #[test]
    fn lifecycle_table() {
        let kc = Change::Revoke(Reason::KeyCompromise);
        let apply = |status, reason| Ok(Decision::Apply { status, reason });
        assert_eq!(decide(Valid, kc), apply(Revoked, Some(Reason::KeyCompromise)));
        assert_eq!(decide(OnHold, kc), apply(Revoked, Some(Reason::KeyCompromise)));
        assert_eq!(decide(Revoked, kc), Ok(Decision::AlreadyDone));
        assert_eq!(decide(Superseded, kc), Ok(Decision::AlreadyDone));
        assert_eq!(decide(Valid, Change::Hold), apply(OnHold, Some(Reason::CertificateHold)));
        assert_eq!(decide(OnHold, Change::Hold), Ok(Decision::AlreadyDone));
        assert!(decide(Revoked, Change::Hold).is_err());
        assert_eq!(decide(OnHold, Change::Release), apply(Valid, None));
        assert_eq!(decide(Valid, Change::Release), Ok(Decision::AlreadyDone));
        assert!(matches!(decide(Revoked, Change::Release), Err(DomainError::InvalidTransition { .. })));
        assert_eq!(decide(Valid, Change::Supersede), apply(Superseded, Some(Reason::Superseded)));
        for s in [OnHold, Revoked, Superseded] {
            assert!(decide(s, Change::Supersede).is_err(), "{s:?}");
        }
    }

    #[test]
    fn only_end_entity_reasons_are_accepted() {
        for ok in [Reason::KeyCompromise, Reason::AffiliationChanged, Reason::CessationOfOperation, Reason::Unspecified]
        {
            assert!(check_revocation_reason(ok).is_ok());
        }
        for bad in [Reason::CertificateHold, Reason::RemoveFromCrl, Reason::CaCompromise, Reason::AaCompromise] {
            assert!(check_revocation_reason(bad).is_err(), "{bad}");
        }
    }
}
