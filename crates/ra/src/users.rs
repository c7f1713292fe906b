//! Users of a facility: registration with its enrollment code, the list
//! with devices, retirement now or at a time (and its cancellation) and the
//! deletion of a person's data. Each change is authorized, committed in one
//! transaction, then published before the caller hears back.

use connect_pki_domain::user::Departure;
use connect_pki_domain::{
    Action, FacilityId, FacilityStatus, Role, Serial, Target, UserId, UserStatus, authorize, validate,
};
use connect_pki_store::{NewUser, UserChange, UserRecord, UserWithDevices};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::publish;
use crate::requester::Requester;
use crate::secrets::new_code;

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
    ra.store.create_enrollment_code(&code.stored, &caller.audit_name, now).await?;
    Ok((code.display(), code.stored.expires_at))
}

/// What a retire call did.
#[derive(Debug)]
pub enum Retirement {
    Done { revoked: Vec<Serial> },
    Scheduled { at: OffsetDateTime },
}

/// Whether the caller may take a facility's last active manager away:
/// 行政管理課 may (it appoints the successor); nobody else.
fn departure(caller: &Requester) -> Departure {
    if caller.actor.role == Role::AdminDivision { Departure::Allowed } else { Departure::Guarded }
}

/// Retires a user now, or schedules it (`at` in the future); with
/// `delete_account`, the account is deleted with the retirement (the login
/// ID free again).
pub async fn retire(
    ra: &Ra,
    caller: &Requester,
    user: UserId,
    at: Option<OffsetDateTime>,
    delete_account: bool,
) -> Result<Retirement, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    let now = ra.clock.now();
    let who = departure(caller);
    match at {
        Some(at) if at > now => {
            ra.store.schedule_retirement(u.id, at, delete_account, &caller.audit_name, who, now).await?;
            Ok(Retirement::Scheduled { at })
        }
        _ => {
            let revoked = ra.store.retire_user(u.id, &caller.audit_name, who, delete_account, now).await?;
            publish(ra).await?;
            Ok(Retirement::Done { revoked })
        }
    }
}

/// Cancels a scheduled retirement that has not run yet (allowed to whoever
/// may retire the user); returns the time it was scheduled for.
pub async fn cancel_retirement(ra: &Ra, caller: &Requester, user: UserId) -> Result<OffsetDateTime, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    Ok(ra.store.cancel_retirement(u.id, &caller.audit_name, ra.clock.now()).await?)
}

/// Deletes a retired user's personal data; returns what is left of the record.
pub async fn delete(ra: &Ra, caller: &Requester, user: UserId) -> Result<UserRecord, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    ra.store.delete_user(u.id, &caller.audit_name, ra.clock.now()).await?;
    ra.store.user(u.id).await?.ok_or(ServiceError::NotFound("user"))
}

/// What a person's record may be changed to; each field given is set.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// 職員 or 施設管理者 only: the city's roles are given at registration.
    pub role: Option<Role>,
}

/// Changes a person's name, e-mail address or role, by whoever may register
/// them (`ActOnUser` for the person as they are and as they would be).
pub async fn edit(ra: &Ra, caller: &Requester, user: UserId, e: Edit) -> Result<UserRecord, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    if let Some(role) = e.role {
        if !matches!(role, Role::Staff | Role::FacilityManager) || u.role.is_city() {
            return Err(connect_pki_domain::DomainError::Invalid {
                field: "role",
                why: "only staff and facility_manager are changed here; the city's roles are given at registration"
                    .into(),
            }
            .into());
        }
        authorize(&caller.actor, Action::ActOnUser(Target { facility: u.facility, role }))?;
    }
    let change = UserChange {
        display_name: e.display_name.map(|n| validate::text("display_name", &n, 100)).transpose()?,
        email: e.email.map(|m| validate::email(&m)).transpose()?,
        role: e.role,
    };
    Ok(ra.store.change_user(u.id, &change, &caller.audit_name, departure(caller), ra.clock.now()).await?)
}

/// 異動: moves a person to facility `to` (行政管理課 only). Their
/// certificates are revoked before this returns; the account stays.
pub async fn transfer(ra: &Ra, caller: &Requester, user: UserId, to: FacilityId) -> Result<Vec<Serial>, ServiceError> {
    authorize(&caller.actor, Action::TransferUser)?;
    let u = managed_user(ra, caller, user).await?;
    let revoked = ra.store.transfer_user(u.id, to, &caller.audit_name, departure(caller), ra.clock.now()).await?;
    publish(ra).await?;
    Ok(revoked)
}

/// People of any facility whose name, login ID or device label contains
/// `q`, with their devices (行政管理課 taking a call; at most 50).
pub async fn find(ra: &Ra, caller: &Requester, q: &str) -> Result<Vec<UserWithDevices>, ServiceError> {
    authorize(&caller.actor, Action::FindAnyone)?;
    let q = validate::text("q", q, 100)?;
    Ok(ra.store.search_people(&q, 50).await?)
}

/// Sets a new emergency-report password for a person (their manager, when
/// they forgot it): one made here, shown once, in the code alphabet so it
/// reads aloud and types on a phone. Their sign-in attempts are forgotten.
pub async fn reset_password(ra: &Ra, caller: &Requester, user: UserId) -> Result<String, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let password = connect_pki_domain::enrollment::format_secret(&random);
    let hash = crate::secrets::hash_password(password.clone()).await?;
    ra.store.reset_password(u.id, &hash, &caller.audit_name, ra.clock.now()).await?;
    Ok(password)
}

/// Carries out every scheduled retirement that is due (also those that fell
/// due while the service was down).
pub async fn run_due_retirements(ra: &Ra) -> Result<(), ServiceError> {
    let now = crate::due_now(ra).await?;
    let mut any = false;
    for user in ra.store.due_retirements(now).await? {
        // Another instance may have carried it out, or it was cancelled, since the list was read.
        if let Some(revoked) = ra.store.retire_if_due(user, now).await? {
            tracing::info!(user = user.0, revoked = revoked.len(), "scheduled retirement carried out");
            any = true;
        }
    }
    if any {
        publish(ra).await?;
    }
    Ok(())
}
