//! Facilities: the list each role may see, one facility, its status
//! (suspend, resume, close) and the holds a suspension keeps.

use connect_pki_domain::lifetime::{FacilityLifetimes, check_days};
use connect_pki_domain::{Action, FacilityId, FacilityStatus, authorize};
use connect_pki_store::{FacilityChange, FacilityCounts, FacilityRecord};

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

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

/// A facility's own certificate lifetimes (none: the service's apply).
pub async fn lifetimes(ra: &Ra, caller: &Requester, id: FacilityId) -> Result<FacilityLifetimes, ServiceError> {
    authorize(&caller.actor, Action::ReadFacility(id))?;
    Ok(ra.store.facility_lifetimes(id).await?)
}

/// Sets a facility's own certificate lifetimes (行政管理課): each 1 to
/// [`MAX_DAYS`](connect_pki_domain::lifetime::MAX_DAYS) days, or none for
/// the service's. Applies to the next certificate each device gets.
pub async fn set_lifetimes(
    ra: &Ra,
    caller: &Requester,
    id: FacilityId,
    by_hand_days: Option<i64>,
    managed_days: Option<i64>,
) -> Result<FacilityLifetimes, ServiceError> {
    authorize(&caller.actor, Action::SetFacilityLifetimes(id))?;
    let to = FacilityLifetimes {
        by_hand_days: by_hand_days.map(|d| check_days("by_hand_days", d)).transpose()?,
        managed_days: managed_days.map(|d| check_days("managed_days", d)).transpose()?,
    };
    ra.store.set_facility_lifetimes(id, to, &caller.audit_name, ra.clock.now()).await?;
    Ok(to)
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

/// A facility whose users the caller manages (registers, lists).
pub async fn managed_facility(ra: &Ra, caller: &Requester, id: FacilityId) -> Result<FacilityRecord, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(id))?;
    ra.store.facility(id).await?.ok_or(ServiceError::NotFound("facility"))
}

/// The people of a facility as the city sees them on its facility page:
/// everyone for 行政管理課 (who acts on them), the managers for 福祉課 (who
/// approved the facility and reissues their codes).
pub async fn people(
    ra: &Ra,
    caller: &Requester,
    id: FacilityId,
) -> Result<Vec<connect_pki_store::UserWithDevices>, ServiceError> {
    authorize(&caller.actor, Action::ReadFacility(id))?;
    authorize(&caller.actor, Action::DecideApplications)?;
    let all = ra.store.users_with_devices(id).await?;
    if authorize(&caller.actor, Action::ManageUsers(id)).is_ok() {
        return Ok(all);
    }
    Ok(all.into_iter().filter(|u| u.user.role == connect_pki_domain::Role::FacilityManager).collect())
}

/// A new code for a manager of facility `id`, by the city that approved it
/// (福祉課 or 行政管理課): for a slip that expired in the post or was lost.
/// It lasts as long as a mailed code.
pub async fn reissue_manager_code(
    ra: &Ra,
    caller: &Requester,
    id: FacilityId,
    manager: connect_pki_domain::UserId,
) -> Result<(String, time::OffsetDateTime), ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    let u = ra.store.user(manager).await?.ok_or(ServiceError::NotFound("user"))?;
    if u.facility != id || u.role != connect_pki_domain::Role::FacilityManager {
        return Err(ServiceError::NotFound("user"));
    }
    let f = facility(ra, caller, id).await?;
    if f.status != connect_pki_domain::FacilityStatus::Approved {
        return Err(ServiceError::FacilityNotActive(f.status.as_str()));
    }
    let now = ra.clock.now();
    let code = crate::secrets::new_code(u.id, ra.settings.mailed_code_ttl, now)?;
    ra.store.create_enrollment_code(&code.stored, &caller.audit_name, now).await?;
    Ok((code.display(), code.stored.expires_at))
}
