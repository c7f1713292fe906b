//! Facilities, users and enrollment codes.

use connect_pki_domain::{
    Action, DeviceId, FacilityId, FacilityStatus, Role, Target, UserId, UserStatus, authorize, validate,
};
use connect_pki_store::{
    DeviceRecord, FacilityChange, FacilityCounts, FacilityRecord, NewUser, UserRecord, UserWithDevices,
};

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;
use crate::secrets::new_code;

/// Facilities the caller may see: all for the city, their own for a manager.
pub async fn facilities(ra: &Ra, caller: &Requester) -> Result<Vec<FacilityRecord>, ServiceError> {
    if authorize(&caller.actor, Action::ListAllFacilities).is_ok() {
        return Ok(ra.store.facilities().await?);
    }
    authorize(&caller.actor, Action::ReadFacility(caller.actor.facility))?;
    Ok(ra.store.facility(caller.actor.facility).await?.into_iter().collect())
}

/// Every facility with its counts of users, devices and certificates, for
/// the city.
pub async fn facilities_with_counts(
    ra: &Ra,
    caller: &Requester,
) -> Result<Vec<(FacilityRecord, FacilityCounts)>, ServiceError> {
    authorize(&caller.actor, Action::ListAllFacilities)?;
    let facilities = ra.store.facilities().await?;
    let counts = ra.store.facility_counts(ra.clock.now()).await?;
    Ok(facilities
        .into_iter()
        .map(|f| {
            let c = counts.iter().find(|c| c.facility == f.id).copied().unwrap_or(FacilityCounts::empty(f.id));
            (f, c)
        })
        .collect())
}

/// A facility whose status the caller may change (what a confirmation
/// page names before the change).
pub async fn changeable_facility(ra: &Ra, caller: &Requester, id: FacilityId) -> Result<FacilityRecord, ServiceError> {
    authorize(&caller.actor, Action::ChangeFacilityStatus(id))?;
    ra.store.facility(id).await?.ok_or(ServiceError::NotFound("facility"))
}

/// One facility.
pub async fn facility(ra: &Ra, caller: &Requester, id: FacilityId) -> Result<FacilityRecord, ServiceError> {
    authorize(&caller.actor, Action::ReadFacility(id))?;
    ra.store.facility(id).await?.ok_or(ServiceError::NotFound("facility"))
}

/// Suspends, resumes or closes a facility (`admin_division`), with what
/// that does to its certificates in force before the call returns.
pub async fn change_status(
    ra: &Ra,
    caller: &Requester,
    id: FacilityId,
    to: FacilityStatus,
) -> Result<FacilityChange, ServiceError> {
    authorize(&caller.actor, Action::ChangeFacilityStatus(id))?;
    let change = ra.store.change_facility_status(id, to, &caller.audit_name, ra.clock.now()).await?;
    crate::publish(ra).await?;
    Ok(change)
}

/// Holds the valid certificates of facilities suspended before suspensions
/// held anything (see `Store::hold_suspended_facilities`). Run at start.
pub async fn hold_suspended_facilities(ra: &Ra) -> Result<(), ServiceError> {
    let held = ra.store.hold_suspended_facilities(ra.clock.now()).await?;
    if !held.is_empty() {
        tracing::warn!(count = held.len(), "valid certificates of suspended facilities put on hold");
        crate::publish(ra).await?;
    }
    Ok(())
}

/// What a new user is registered with.
#[derive(Debug, Clone)]
pub struct Registration {
    pub display_name: String,
    pub login_id: String,
    pub email: String,
    pub role: Role,
}

/// Registers a user in `facility`. Managers register staff and managers of
/// their own facility; only `admin_division` grants the city's roles
/// (the policy's `ActOnUser`).
pub async fn register(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
    r: Registration,
) -> Result<UserRecord, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(facility))?;
    authorize(&caller.actor, Action::ActOnUser(Target { facility, role: r.role }))?;
    let target = ra.store.facility(facility).await?.ok_or(ServiceError::NotFound("facility"))?;
    if target.status != FacilityStatus::Approved {
        return Err(ServiceError::FacilityNotActive(target.status.as_str()));
    }
    let new = NewUser {
        display_name: validate::text("display_name", &r.display_name, 100)?,
        login_id: validate::login_id(&r.login_id)?,
        email: validate::email(&r.email)?,
        role: r.role,
    };
    Ok(ra.store.create_user(facility, &new, UserStatus::Invited, &caller.audit_name, ra.clock.now()).await?)
}

/// A facility whose users the caller manages (registers, lists).
pub async fn managed_facility(ra: &Ra, caller: &Requester, id: FacilityId) -> Result<FacilityRecord, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(id))?;
    ra.store.facility(id).await?.ok_or(ServiceError::NotFound("facility"))
}

/// Users of a facility with their devices and certificates.
pub async fn users(ra: &Ra, caller: &Requester, facility: FacilityId) -> Result<Vec<UserWithDevices>, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(facility))?;
    if ra.store.facility(facility).await?.is_none() {
        return Err(ServiceError::NotFound("facility"));
    }
    Ok(ra.store.users_with_devices(facility).await?)
}

/// A user the caller may act on (see `Action::ActOnUser`).
pub async fn managed_user(ra: &Ra, caller: &Requester, id: UserId) -> Result<UserRecord, ServiceError> {
    let user = ra.store.user(id).await?.ok_or(ServiceError::NotFound("user"))?;
    authorize(&caller.actor, Action::ActOnUser(user.target()))?;
    Ok(user)
}

/// A user the caller may act on, with their devices and certificates.
pub async fn managed_user_devices(ra: &Ra, caller: &Requester, id: UserId) -> Result<UserWithDevices, ServiceError> {
    let user = managed_user(ra, caller, id).await?;
    let devices = ra.store.devices_of(user.id).await?;
    Ok(UserWithDevices { user, devices })
}

/// The scheduled retirements of a facility's users: (user, when).
pub async fn scheduled_retirements(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
) -> Result<Vec<(UserId, time::OffsetDateTime)>, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(facility))?;
    Ok(ra.store.scheduled_retirements(facility).await?)
}

/// A device whose holder the caller may act on, with that holder.
pub async fn managed_device(
    ra: &Ra,
    caller: &Requester,
    id: DeviceId,
) -> Result<(DeviceRecord, UserRecord), ServiceError> {
    let device = ra.store.device(id).await?.ok_or(ServiceError::NotFound("device"))?;
    let holder = managed_user(ra, caller, device.user).await?;
    Ok((device, holder))
}

/// Issues an enrollment code for a new device of `user`; the code is returned
/// once and only its hash is kept.
pub async fn issue_code(
    ra: &Ra,
    caller: &Requester,
    user: UserId,
) -> Result<(String, time::OffsetDateTime), ServiceError> {
    let user = managed_user(ra, caller, user).await?;
    let now = ra.clock.now();
    let code = new_code(user.id, ra.settings.enrollment_code_ttl, now)?;
    let id = ra.store.create_enrollment_code(&code.stored, &caller.audit_name, now).await?;
    Ok((code.display(id), code.stored.expires_at))
}
