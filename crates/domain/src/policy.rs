//! The one authorization policy: who may do what to which facility
//! (DESIGN §2). Handlers never decide this themselves; they describe the
//! action and ask [`authorize`].

use crate::error::DomainError;
use crate::ids::{FacilityId, UserId};
use crate::model::Role;

/// The authenticated caller, as derived from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
    pub facility: FacilityId,
}

/// The user an action touches (their account, devices or certificates):
/// where they are placed and what they may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub facility: FacilityId,
    pub role: Role,
}

/// An operation, with the facility it touches where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read one's own identity.
    WhoAmI,
    /// List or decide facility applications.
    DecideApplications,
    /// Read one facility.
    ReadFacility(FacilityId),
    /// List every facility.
    ListAllFacilities,
    /// Suspend, resume or close a facility.
    ChangeFacilityStatus(FacilityId),
    /// Set how long a facility's device certificates live.
    SetFacilityLifetimes(FacilityId),
    /// List a facility's users, or register users in it.
    ManageUsers(FacilityId),
    /// Act on one user: register them with their role, issue them a code,
    /// retire or delete them, report their device lost, revoke, hold or
    /// release their certificates, report or resolve an emergency about
    /// their device.
    ActOnUser(Target),
    /// Read the devices and certificates of a facility.
    ManageCertificates(FacilityId),
    /// Read the certificates of every facility (the city's expiry list).
    ListAllCertificates,
    /// Work the emergency escalation queue of a facility.
    WorkEscalations(FacilityId),
    /// Read the audit log.
    ReadAudit,
    /// Read the audit records of one facility (its own trail, read only).
    ReadFacilityAudit(FacilityId),
    /// Read the service's operations figures (`/metrics`).
    ReadOperations,
    /// Move a person to another facility (異動): only the city sees both.
    TransferUser,
    /// Find anyone of any facility by name, login ID or device (a call taken at night).
    FindAnyone,
    /// Get a one-time enrollment challenge for a person (a device-management
    /// system enrolling their device), or report their device retired,
    /// wiped or lost.
    ManageDevicesFor(Target),
}

impl Action {
    /// A short English name for error messages and the audit log.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Action::WhoAmI => "read own identity",
            Action::DecideApplications => "decide facility applications",
            Action::ReadFacility(_) => "read this facility",
            Action::ListAllFacilities => "list all facilities",
            Action::ChangeFacilityStatus(_) => "change a facility's status",
            Action::SetFacilityLifetimes(_) => "set a facility's certificate lifetimes",
            Action::ManageUsers(_) => "manage users of this facility",
            Action::ActOnUser(t) if t.role.is_city() => "act on a city-role user",
            Action::ActOnUser(_) => "act on this user",
            Action::ManageCertificates(_) => "manage certificates of this facility",
            Action::ListAllCertificates => "list the certificates of every facility",
            Action::WorkEscalations(_) => "work escalations of this facility",
            Action::ReadAudit => "read the audit log",
            Action::ReadFacilityAudit(_) => "read the audit trail of this facility",
            Action::ReadOperations => "read the operations figures",
            Action::TransferUser => "move a person to another facility",
            Action::FindAnyone => "find people across facilities",
            Action::ManageDevicesFor(_) => "manage the devices of this person",
        }
    }
}

/// Whether `actor` may perform `action`.
pub fn authorize(actor: &Actor, action: Action) -> Result<(), DomainError> {
    let own = |f: FacilityId| actor.facility == f;
    let allowed = match (actor.role, action) {
        (_, Action::WhoAmI) => true,
        (Role::AdminDivision, _) => true,
        (Role::WelfareDivision, Action::DecideApplications)
        | (Role::WelfareDivision, Action::ReadAudit)
        | (Role::WelfareDivision, Action::ReadFacility(_))
        | (Role::WelfareDivision, Action::ListAllFacilities) => true,
        (Role::FacilityManager, Action::ReadFacility(f))
        | (Role::FacilityManager, Action::ManageUsers(f))
        | (Role::FacilityManager, Action::ManageCertificates(f))
        | (Role::FacilityManager, Action::WorkEscalations(f))
        | (Role::FacilityManager, Action::ReadFacilityAudit(f)) => own(f),
        // A city-role user placed in a facility still answers to 行政管理課
        // alone: their manager would otherwise hand out codes in their name
        // and enroll as them.
        (Role::FacilityManager, Action::ActOnUser(t)) => own(t.facility) && !t.role.is_city(),
        // A device-management system manages its own facility's people's
        // devices, and nothing else of anyone.
        (Role::DeviceManagement, Action::ManageDevicesFor(t)) => own(t.facility) && !t.role.is_city(),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(DomainError::NotPermitted { actor: format!("{} {}", actor.role, actor.user), action: action.name() })
    }
}

/// Which facilities' certificates a list shows the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every facility (行政管理課).
    All,
    /// One facility (its manager).
    Facility(FacilityId),
}

/// The widest certificate list `actor` may read: every facility's, else
/// their own facility's, else none.
pub fn certificate_scope(actor: &Actor) -> Result<Scope, DomainError> {
    if authorize(actor, Action::ListAllCertificates).is_ok() {
        return Ok(Scope::All);
    }
    authorize(actor, Action::ManageCertificates(actor.facility)).map(|()| Scope::Facility(actor.facility))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: FacilityId = FacilityId(1);
    const OTHER: FacilityId = FacilityId(2);

    fn actor(role: Role) -> Actor {
        Actor { user: UserId(7), role, facility: OWN }
    }

    /// Every action × every role × own/other facility, against the table of
    /// DESIGN §2 written out by hand.
    #[test]
    fn the_whole_matrix_matches_design() {
        use Role::*;
        let cases: &[(Action, &[Role])] = &[
            (Action::WhoAmI, &[AdminDivision, WelfareDivision, FacilityManager, Staff, DeviceManagement]),
            (Action::DecideApplications, &[AdminDivision, WelfareDivision]),
            (Action::ListAllFacilities, &[AdminDivision, WelfareDivision]),
            (Action::ReadAudit, &[AdminDivision, WelfareDivision]),
            (Action::ReadFacility(OWN), &[AdminDivision, WelfareDivision, FacilityManager]),
            (Action::ReadFacility(OTHER), &[AdminDivision, WelfareDivision]),
            (Action::ChangeFacilityStatus(OWN), &[AdminDivision]),
            (Action::ChangeFacilityStatus(OTHER), &[AdminDivision]),
            (Action::ManageUsers(OWN), &[AdminDivision, FacilityManager]),
            (Action::ManageUsers(OTHER), &[AdminDivision]),
            (Action::ActOnUser(Target { facility: OWN, role: Staff }), &[AdminDivision, FacilityManager]),
            (Action::ActOnUser(Target { facility: OWN, role: FacilityManager }), &[AdminDivision, FacilityManager]),
            (Action::ActOnUser(Target { facility: OWN, role: AdminDivision }), &[AdminDivision]),
            (Action::ActOnUser(Target { facility: OWN, role: WelfareDivision }), &[AdminDivision]),
            (Action::ActOnUser(Target { facility: OTHER, role: Staff }), &[AdminDivision]),
            (Action::ActOnUser(Target { facility: OTHER, role: AdminDivision }), &[AdminDivision]),
            (Action::ManageCertificates(OWN), &[AdminDivision, FacilityManager]),
            (Action::ManageCertificates(OTHER), &[AdminDivision]),
            (Action::ListAllCertificates, &[AdminDivision]),
            (Action::ReadOperations, &[AdminDivision]),
            (Action::TransferUser, &[AdminDivision]),
            (Action::FindAnyone, &[AdminDivision]),
            (Action::WorkEscalations(OWN), &[AdminDivision, FacilityManager]),
            (Action::WorkEscalations(OTHER), &[AdminDivision]),
            (Action::ReadFacilityAudit(OWN), &[AdminDivision, FacilityManager]),
            (Action::ReadFacilityAudit(OTHER), &[AdminDivision]),
            (Action::SetFacilityLifetimes(OWN), &[AdminDivision]),
            (Action::SetFacilityLifetimes(OTHER), &[AdminDivision]),
            (Action::ActOnUser(Target { facility: OWN, role: DeviceManagement }), &[AdminDivision]),
            (Action::ManageDevicesFor(Target { facility: OWN, role: Staff }), &[AdminDivision, DeviceManagement]),
            (
                Action::ManageDevicesFor(Target { facility: OWN, role: FacilityManager }),
                &[AdminDivision, DeviceManagement],
            ),
            (Action::ManageDevicesFor(Target { facility: OWN, role: WelfareDivision }), &[AdminDivision]),
            (Action::ManageDevicesFor(Target { facility: OWN, role: DeviceManagement }), &[AdminDivision]),
            (Action::ManageDevicesFor(Target { facility: OTHER, role: Staff }), &[AdminDivision]),
        ];
        for (action, allowed) in cases {
            for role in Role::ALL {
                let got = authorize(&actor(*role), *action).is_ok();
                assert_eq!(got, allowed.contains(role), "{role} / {action:?}");
            }
        }
    }

    #[test]
    fn certificate_lists_are_the_city_s_or_the_manager_s_own() {
        assert_eq!(certificate_scope(&actor(Role::AdminDivision)), Ok(Scope::All));
        assert_eq!(certificate_scope(&actor(Role::FacilityManager)), Ok(Scope::Facility(OWN)));
        assert!(certificate_scope(&actor(Role::WelfareDivision)).is_err());
        assert!(certificate_scope(&actor(Role::Staff)).is_err());
    }

    #[test]
    fn refusal_names_actor_and_action() {
        let err = authorize(&actor(Role::Staff), Action::ReadAudit).expect_err("refused");
        assert_eq!(err.to_string(), "staff 7 may not read the audit log");
        let city = Action::ActOnUser(Target { facility: OWN, role: Role::AdminDivision });
        let err = authorize(&actor(Role::FacilityManager), city).expect_err("refused");
        assert_eq!(err.to_string(), "facility_manager 7 may not act on a city-role user");
    }
}
