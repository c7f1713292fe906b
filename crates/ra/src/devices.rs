//! Devices: the caller's own, one device, and a device reported lost (every
//! certificate of it revoked, published before the caller hears back).

use connect_pki_domain::{Action, DeviceId, Serial, authorize};
use connect_pki_store::{DeviceRecord, UserRecord};

use crate::Ra;
use crate::error::ServiceError;
use crate::publish;
use crate::requester::Requester;
use crate::users::managed_user;

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

/// Reports a device lost: all its certificates revoked (keyCompromise).
pub async fn lost(ra: &Ra, caller: &Requester, device: DeviceId) -> Result<Lost, ServiceError> {
    managed_device(ra, caller, device).await?;
    let revoked = ra.store.device_lost(device, &caller.audit_name, ra.clock.now()).await?;
    let everywhere = publish(ra).await?;
    Ok(Lost { revoked, everywhere })
}

/// A device reported lost: the certificates revoked, and where the other
/// instances were when the call answered.
#[derive(Debug, Clone)]
pub struct Lost {
    pub revoked: Vec<Serial>,
    /// With `every_instance` on: the instances that had not applied it.
    pub everywhere: Option<crate::instances::Everywhere>,
}

/// The caller's own devices with their certificates.
pub async fn own_devices(ra: &Ra, caller: &Requester) -> Result<Vec<DeviceRecord>, ServiceError> {
    authorize(&caller.actor, Action::WhoAmI)?;
    Ok(ra.store.devices_of(caller.actor.user).await?)
}

/// A device and its certificates.
pub async fn device(ra: &Ra, caller: &Requester, id: DeviceId) -> Result<DeviceRecord, ServiceError> {
    let device = ra.store.device(id).await?.ok_or(ServiceError::NotFound("device"))?;
    authorize(&caller.actor, Action::ManageCertificates(device.facility))?;
    Ok(device)
}
