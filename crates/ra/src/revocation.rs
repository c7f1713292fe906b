//! Revoke, hold, release, lost device, retirement (and its cancellation)
//! and deletion. Each one is authorized, committed in one transaction, then
//! published with `Revocations::sync` before the caller hears back — so the
//! handshake, OCSP and the CRL already reflect it when the response leaves.

use connect_pki_domain::certificate::Change;
use connect_pki_domain::{Action, DeviceId, Serial, UserId, authorize};
use connect_pki_store::{Identity, StatusChange, UserRecord};
use time::OffsetDateTime;

use crate::Ra;
use crate::directory::{managed_device, managed_user};
use crate::error::ServiceError;
use crate::publish;
use crate::requester::Requester;

/// Revokes, holds or releases one certificate. Repeating a call reports the
/// state the certificate is in.
pub async fn change(
    ra: &Ra,
    caller: &Requester,
    serial: &Serial,
    change: Change,
) -> Result<StatusChange, ServiceError> {
    let allowed = |holder: &Identity| -> Result<(), ServiceError> {
        Ok(authorize(&caller.actor, Action::ActOnUser(holder.user.target()))?)
    };
    let outcome = ra.store.change_certificate_if(serial, change, &caller.audit_name, ra.clock.now(), allowed).await?;
    publish(ra).await?;
    Ok(outcome)
}

/// Reports a device lost: all its certificates revoked (keyCompromise).
pub async fn lost(ra: &Ra, caller: &Requester, device: DeviceId) -> Result<Vec<Serial>, ServiceError> {
    managed_device(ra, caller, device).await?;
    let revoked = ra.store.device_lost(device, &caller.audit_name, ra.clock.now()).await?;
    publish(ra).await?;
    Ok(revoked)
}

/// What a retire call did.
#[derive(Debug)]
pub enum Retirement {
    Done { revoked: Vec<Serial> },
    Scheduled { at: OffsetDateTime },
}

/// Retires a user now, or schedules it (`at` in the future).
pub async fn retire(
    ra: &Ra,
    caller: &Requester,
    user: UserId,
    at: Option<OffsetDateTime>,
) -> Result<Retirement, ServiceError> {
    let u = managed_user(ra, caller, user).await?;
    let now = ra.clock.now();
    match at {
        Some(at) if at > now => {
            ra.store.schedule_retirement(u.id, at, &caller.audit_name, now).await?;
            Ok(Retirement::Scheduled { at })
        }
        _ => {
            let revoked = ra.store.retire_user(u.id, &caller.audit_name, now).await?;
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
