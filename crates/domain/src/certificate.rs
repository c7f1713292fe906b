//! Certificate lifecycle rules (DESIGN §3): `valid → revoked`,
//! `valid → on_hold → valid | revoked`. A revoked certificate never comes
//! back; only a hold can be released.

use crate::error::DomainError;
use crate::model::{CertStatus, FacilityStatus, Reason, UserStatus};

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
pub(crate) fn check_revocation_reason(reason: Reason) -> Result<(), DomainError> {
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

/// The certificate to revoke instead, when a revoke names one certificate
/// that `decide` would call done already: a superseded certificate whose
/// device still has one in force (`device_in_force`, newest first). A 200
/// there would read as "this device is cut off" while its newer certificate
/// keeps working, so the store refuses with 409 naming that one.
///
/// We refuse rather than revoke the newer certificate too: the caller may
/// have picked an old serial from a log, and cutting off a device that is
/// working is a decision to take on purpose, on its current serial (or with
/// a loss report, which revokes all of them). Bulk changes (loss,
/// retirement, closure) select every certificate and never ask this.
pub fn revoke_instead(
    status: CertStatus,
    change: Change,
    device_in_force: &[crate::ids::Serial],
) -> Option<&crate::ids::Serial> {
    match (status, change) {
        (CertStatus::Superseded, Change::Revoke(_)) => device_in_force.first(),
        _ => None,
    }
}

/// A change applied to every certificate a statement selects, touching only
/// the certificates in one of `only_from` (`None`: any state `decide` allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkChange {
    pub change: Change,
    pub only_from: Option<&'static [CertStatus]>,
}

impl BulkChange {
    /// `change` for every certificate selected, in whatever state.
    pub const fn any(change: Change) -> Self {
        Self { change, only_from: None }
    }

    /// Whether a certificate in `status` is touched at all (whether it
    /// changes is then `decide`'s answer).
    pub fn touches(&self, status: CertStatus) -> bool {
        self.only_from.is_none_or(|from| from.contains(&status))
    }
}

/// The hold limit: a hold left alone becomes a revocation (keyCompromise);
/// a certificate released since it was listed stays valid.
pub const HOLD_LIMIT: BulkChange =
    BulkChange { change: Change::Revoke(Reason::KeyCompromise), only_from: Some(&[CertStatus::OnHold]) };

/// An emergency report holds a device's valid certificates (a revoked one
/// stays revoked, a held one stays held).
pub const EMERGENCY_HOLD: BulkChange = BulkChange { change: Change::Hold, only_from: Some(&[CertStatus::Valid]) };

/// Re-applying a revocation that a CRL we published lists, to a database
/// restored from before it: the same step, taken only from a state the CRL
/// overrides — a revoked certificate stays as it is, a held one becomes
/// revoked if the CRL says so. A hold on the CRL holds (the CRL was newer
/// than the database, so the hold was still there when it was published).
pub fn reapply_listed(listed: Reason) -> BulkChange {
    const FROM_VALID: &[CertStatus] = &[CertStatus::Valid];
    const IN_FORCE: &[CertStatus] = &[CertStatus::Valid, CertStatus::OnHold];
    match listed {
        Reason::CertificateHold => BulkChange { change: Change::Hold, only_from: Some(FROM_VALID) },
        Reason::Superseded => BulkChange { change: Change::Supersede, only_from: Some(FROM_VALID) },
        // Reasons a revoke call cannot give (CA compromise, removeFromCRL)
        // never appear on our CRLs; if one does, it still revokes.
        r if check_revocation_reason(r).is_ok() => BulkChange { change: Change::Revoke(r), only_from: Some(IN_FORCE) },
        _ => BulkChange { change: Change::Revoke(Reason::Unspecified), only_from: Some(IN_FORCE) },
    }
}

/// Whether a certificate in `status` still counts for its holder: valid, or
/// on hold and so able to come back.
pub fn in_force(status: CertStatus) -> bool {
    matches!(status, CertStatus::Valid | CertStatus::OnHold)
}

/// Why a certificate in force should not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    FacilityClosed,
    DeviceLost,
    /// The holder can no longer receive certificates (retired, deleted).
    HolderGone(UserStatus),
    /// Valid while the facility is suspended (a suspension holds them all).
    FacilitySuspended,
}

/// Whether a certificate in `status` offends the lifecycle, given the facts
/// about its holder; the first reason found, in this order: facility closed,
/// device lost, holder gone, facility suspended (only a valid certificate
/// offends there: a hold is what a suspension leaves). `None` for a
/// certificate no longer in force.
pub fn offence(status: CertStatus, facility: FacilityStatus, device_lost: bool, user: UserStatus) -> Option<Offence> {
    if !in_force(status) {
        None
    } else if facility == FacilityStatus::Closed {
        Some(Offence::FacilityClosed)
    } else if device_lost {
        Some(Offence::DeviceLost)
    } else if !crate::user::may_receive_certificates(user) {
        Some(Offence::HolderGone(user))
    } else if facility == FacilityStatus::Suspended && status == CertStatus::Valid {
        Some(Offence::FacilitySuspended)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CertStatus::*;

    /// What a restored database makes of each entry of a newer CRL: never a
    /// step back (no release, nothing un-revoked), and never a refusal that
    /// would stop the service from starting.
    #[test]
    fn a_listed_revocation_is_reapplied_only_forward() {
        for code in 0..=10u8 {
            let Some(listed) = Reason::from_code(code) else { continue };
            let step = reapply_listed(listed);
            for status in [Valid, OnHold, Revoked, Superseded] {
                if !step.touches(status) {
                    continue;
                }
                let decided = decide(status, step.change).expect("a touched state is never refused");
                if let Decision::Apply { status: to, .. } = decided {
                    assert_ne!(to, Valid, "{listed:?} from {status:?} releases");
                    assert!(!matches!(status, Revoked | Superseded), "{listed:?} changes a revoked certificate");
                }
            }
        }
        assert_eq!(Reason::from_code(7), None);
        let held = reapply_listed(Reason::CertificateHold);
        assert_eq!(
            decide(Valid, held.change),
            Ok(Decision::Apply { status: OnHold, reason: Some(Reason::CertificateHold) })
        );
        let kc = reapply_listed(Reason::KeyCompromise);
        assert!(kc.touches(OnHold) && kc.touches(Valid) && !kc.touches(Revoked));
        assert_eq!(reapply_listed(Reason::CaCompromise).change, Change::Revoke(Reason::Unspecified));
    }

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
    fn revoking_a_superseded_certificate_names_the_one_in_force() {
        let newer: crate::ids::Serial = "0b".parse().expect("serial");
        let newest: crate::ids::Serial = "0c".parse().expect("serial");
        let in_force = [newest.clone(), newer];
        let kc = Change::Revoke(Reason::KeyCompromise);
        assert_eq!(revoke_instead(Superseded, kc, &in_force), Some(&newest));
        // Nothing of the device works any more: repeating is safe, as before.
        assert_eq!(revoke_instead(Superseded, kc, &[]), None);
        for s in [Valid, OnHold, Revoked] {
            assert_eq!(revoke_instead(s, kc, &in_force), None, "{s:?}");
        }
        // Hold and release of a superseded certificate are refused by `decide`.
        assert_eq!(revoke_instead(Superseded, Change::Hold, &in_force), None);
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

    #[test]
    fn bulk_changes_touch_only_their_states() {
        assert!(HOLD_LIMIT.touches(OnHold));
        for s in [Valid, Revoked, Superseded] {
            assert!(!HOLD_LIMIT.touches(s), "{s:?}");
        }
        assert!(EMERGENCY_HOLD.touches(Valid));
        for s in [OnHold, Revoked, Superseded] {
            assert!(!EMERGENCY_HOLD.touches(s), "{s:?}");
        }
        let any = BulkChange::any(Change::Revoke(Reason::AffiliationChanged));
        assert!(CertStatus::ALL.iter().all(|s| any.touches(*s)));
        assert_eq!(HOLD_LIMIT.change, Change::Revoke(Reason::KeyCompromise));
        assert_eq!(EMERGENCY_HOLD.change, Change::Hold);
    }

    #[test]
    fn offences_are_named_in_order_and_only_for_certificates_in_force() {
        use FacilityStatus::{Approved, Closed, Suspended};
        use UserStatus::{Active, Deleted, Invited, Retired};
        assert_eq!(offence(Valid, Closed, true, Retired), Some(Offence::FacilityClosed));
        assert_eq!(offence(OnHold, Approved, true, Retired), Some(Offence::DeviceLost));
        assert_eq!(offence(Valid, Suspended, false, Retired), Some(Offence::HolderGone(Retired)));
        assert_eq!(offence(Valid, Approved, false, Deleted), Some(Offence::HolderGone(Deleted)));
        assert_eq!(offence(Valid, Suspended, false, Active), Some(Offence::FacilitySuspended));
        assert_eq!(offence(OnHold, Suspended, false, Active), None);
        assert_eq!(offence(Valid, Approved, false, Active), None);
        assert_eq!(offence(OnHold, Approved, false, Invited), None);
        for s in [Revoked, Superseded] {
            assert!(!in_force(s));
            assert_eq!(offence(s, Closed, true, Deleted), None, "{s:?}");
        }
    }
}
