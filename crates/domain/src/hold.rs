//! Who keeps a certificate on hold, and who may lift it (issues 10 and 11).
//!
//! Besides whoever put it on directly, a hold can have keepers: the open or
//! claimed escalation whose report placed it (or took it over), the
//! suspension of the holder's facility, and 行政管理課 when it placed the
//! hold itself (issue 24: a manager does not lift the city's hold). A hold
//! comes off only when its last keeper lets go; a revocation never asks any
//! of them.
//!
//! A suspension keeps every certificate of the facility in force: it holds
//! the valid ones (and releases exactly those when the facility resumes) and
//! keeps the ones already on hold, so that nothing of a suspended facility
//! becomes valid before it resumes — not by a direct release, and not by an
//! escalation resolved as released meanwhile (that release then waits for the
//! resume).

use time::OffsetDateTime;

use crate::certificate::{BulkChange, Change};
use crate::ids::FacilityId;
use crate::model::CertStatus;

/// Something other than a direct hold that keeps a certificate on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeper {
    /// An open or claimed escalation, reported at `since`.
    Escalation { id: i64, since: OffsetDateTime },
    /// The suspension of the holder's facility.
    Suspension(FacilityId),
    /// 行政管理課, which held it directly.
    City,
}

/// Who asks for a hold to be lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifter {
    /// The release call on one certificate, by the facility's manager.
    Direct,
    /// The release call on one certificate, by 行政管理課 (a hold it
    /// places is kept for it, [`Keeper::City`]).
    City,
    /// Escalation `id`, resolved as released.
    Escalation(i64),
    /// The facility, resuming.
    Resume(FacilityId),
}

/// What becomes of one hold a lifter asks to lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lift {
    /// Nobody else keeps it: release it.
    Now,
    /// Another keeper has it and the lifter may not override it: the request
    /// is refused, naming the keeper.
    Refused(Keeper),
    /// Another keeper has it: it stays on hold for that keeper. When that is
    /// a suspension, the lifter's release is carried out when the facility
    /// `on_resume`s.
    Deferred { on_resume: Option<FacilityId> },
}

fn is_self(lifter: Lifter, keeper: &Keeper) -> bool {
    match (lifter, keeper) {
        (Lifter::Escalation(a), Keeper::Escalation { id, .. }) => a == *id,
        (Lifter::Resume(a), Keeper::Suspension(b)) => a == *b,
        (Lifter::City, Keeper::City) => true,
        _ => false,
    }
}

/// Whether `lifter` may lift a hold that `keepers` keep. A direct release
/// overrides nobody: it is refused while anyone else keeps the hold (a
/// manager's while 行政管理課 does). An escalation or a resume lets go of its
/// own part and leaves the rest.
pub fn lift(lifter: Lifter, keepers: &[Keeper]) -> Lift {
    let others: Vec<&Keeper> = keepers.iter().filter(|k| !is_self(lifter, k)).collect();
    let Some(first) = others.first() else { return Lift::Now };
    match lifter {
        Lifter::Direct | Lifter::City => Lift::Refused(**first),
        Lifter::Escalation(_) | Lifter::Resume(_) => Lift::Deferred {
            on_resume: others.iter().find_map(|k| match k {
                Keeper::Suspension(f) => Some(*f),
                Keeper::Escalation { .. } | Keeper::City => None,
            }),
        },
    }
}

/// A suspension holds its facility's valid certificates (a revoked one stays
/// revoked, a held one stays held and is kept, see [`suspension_keeps`]).
pub const SUSPENSION_HOLD: BulkChange = BulkChange { change: Change::Hold, only_from: Some(&[CertStatus::Valid]) };

/// A resume releases the holds it lifts; a certificate revoked during the
/// suspension stays revoked.
pub const SUSPENSION_RELEASE: BulkChange =
    BulkChange { change: Change::Release, only_from: Some(&[CertStatus::OnHold]) };

/// Whether a suspension keeps a certificate of its facility that is in
/// `status` once its holds are placed, and if so whether the resume releases
/// it: `Some(true)` for one the suspension put on hold itself, `Some(false)`
/// for one already on hold (a report's or a direct hold, left to its own
/// keeper after the resume), `None` for one no longer in force.
pub fn suspension_keeps(status: CertStatus, placed_by_suspension: bool) -> Option<bool> {
    match status {
        CertStatus::OnHold => Some(placed_by_suspension),
        CertStatus::Valid | CertStatus::Revoked | CertStatus::Superseded => None,
    }
}

/// Whether an emergency report takes over a hold of the device it is about:
/// one that only the facility's suspension keeps. Without that the resume
/// would release a lost device. A hold an escalation already keeps, or one
/// placed directly, is not taken over (the report is refused as today when
/// nothing else is left to hold).
pub fn report_takes_over(status: CertStatus, keepers: &[Keeper]) -> bool {
    status == CertStatus::OnHold
        && keepers.iter().any(|k| matches!(k, Keeper::Suspension(_)))
        && !keepers.iter().any(|k| matches!(k, Keeper::Escalation { .. }))
}

/// Whether the hold limit revokes a hold placed at `held_since` and kept by
/// `keepers`, for the cut-off `held_before`. A suspended facility's holds wait
/// for its resume: the suspension is the decision about them. An escalation's
/// hold counts from its report, also when the report took over an older
/// hold.
pub fn hold_limit_reaches(held_since: OffsetDateTime, keepers: &[Keeper], held_before: OffsetDateTime) -> bool {
    if keepers.iter().any(|k| matches!(k, Keeper::Suspension(_))) {
        return false;
    }
    let since = keepers
        .iter()
        .filter_map(|k| match k {
            Keeper::Escalation { since, .. } => Some(*since),
            Keeper::Suspension(_) | Keeper::City => None,
        })
        .fold(held_since, OffsetDateTime::max);
    since <= held_before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    const F: FacilityId = FacilityId(3);

    fn esc(id: i64) -> Keeper {
        Keeper::Escalation { id, since: at(0) }
    }

    #[test]
    fn a_hold_comes_off_when_its_last_keeper_lets_go() {
        let suspension = Keeper::Suspension(F);
        assert_eq!(lift(Lifter::Direct, &[]), Lift::Now);
        assert_eq!(lift(Lifter::Direct, &[esc(7), suspension]), Lift::Refused(esc(7)));
        assert_eq!(lift(Lifter::Direct, &[suspension]), Lift::Refused(suspension));
        assert_eq!(lift(Lifter::Escalation(7), &[esc(7)]), Lift::Now);
        assert_eq!(lift(Lifter::Escalation(7), &[esc(7), suspension]), Lift::Deferred { on_resume: Some(F) });
        assert_eq!(lift(Lifter::Escalation(7), &[esc(8)]), Lift::Deferred { on_resume: None });
        assert_eq!(lift(Lifter::Resume(F), &[suspension]), Lift::Now);
        assert_eq!(lift(Lifter::Resume(F), &[]), Lift::Now);
        assert_eq!(lift(Lifter::Resume(F), &[esc(7)]), Lift::Deferred { on_resume: None });
        assert_eq!(lift(Lifter::Resume(F), &[suspension, esc(7)]), Lift::Deferred { on_resume: None });
    }

    #[test]
    fn a_hold_the_city_placed_is_the_citys_to_lift() {
        let city = Keeper::City;
        assert_eq!(lift(Lifter::Direct, &[city]), Lift::Refused(city));
        assert_eq!(lift(Lifter::City, &[city]), Lift::Now);
        assert_eq!(lift(Lifter::City, &[]), Lift::Now);
        assert_eq!(lift(Lifter::City, &[city, esc(7)]), Lift::Refused(esc(7)));
        assert_eq!(lift(Lifter::Escalation(7), &[esc(7), city]), Lift::Deferred { on_resume: None });
        assert_eq!(lift(Lifter::Resume(F), &[Keeper::Suspension(F), city]), Lift::Deferred { on_resume: None });
    }

    #[test]
    fn a_suspension_holds_the_valid_and_keeps_the_held() {
        assert_eq!(SUSPENSION_HOLD.change, Change::Hold);
        assert!(SUSPENSION_HOLD.touches(CertStatus::Valid));
        assert_eq!(SUSPENSION_RELEASE.change, Change::Release);
        for s in [CertStatus::OnHold, CertStatus::Revoked, CertStatus::Superseded] {
            assert!(!SUSPENSION_HOLD.touches(s), "{s:?}");
        }
        for s in [CertStatus::Valid, CertStatus::Revoked, CertStatus::Superseded] {
            assert!(!SUSPENSION_RELEASE.touches(s), "{s:?}");
        }
        assert_eq!(suspension_keeps(CertStatus::OnHold, true), Some(true));
        assert_eq!(suspension_keeps(CertStatus::OnHold, false), Some(false));
        assert_eq!(suspension_keeps(CertStatus::Revoked, false), None);
    }

    #[test]
    fn a_report_takes_over_only_a_suspensions_hold() {
        let suspension = Keeper::Suspension(F);
        assert!(report_takes_over(CertStatus::OnHold, &[suspension]));
        assert!(!report_takes_over(CertStatus::OnHold, &[suspension, esc(7)]));
        assert!(!report_takes_over(CertStatus::OnHold, &[]), "a direct hold");
        assert!(!report_takes_over(CertStatus::Revoked, &[suspension]));
    }

    #[test]
    fn the_hold_limit_waits_for_the_resume_and_counts_from_the_report() {
        let cut = at(100);
        assert!(hold_limit_reaches(at(50), &[], cut));
        assert!(!hold_limit_reaches(at(150), &[], cut));
        assert!(!hold_limit_reaches(at(50), &[Keeper::Suspension(F)], cut));
        assert!(!hold_limit_reaches(at(50), &[esc(7), Keeper::Suspension(F)], cut));
        let late = Keeper::Escalation { id: 7, since: at(120) };
        assert!(!hold_limit_reaches(at(50), &[late], cut), "a report that took over an old hold");
        assert!(hold_limit_reaches(at(50), &[esc(7)], cut));
    }
}
