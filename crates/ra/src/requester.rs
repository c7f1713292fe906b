//! Who asks: the requester every operation of the registration authority is
//! authorized for and recorded under, however the request arrived.

use connect_pki_domain::{Actor, DeviceStatus, FacilityStatus, Serial, UserStatus};
use connect_pki_store::Identity;

use crate::Ra;
use crate::error::{NotAuthenticated, ServiceError, ServiceResult};

/// An authenticated person acting through one of their certificates.
#[derive(Debug, Clone)]
pub struct Requester {
    pub actor: Actor,
    /// The actor name recorded in the audit log.
    pub(crate) audit_name: String,
    /// The certificate the request was made with (renewal supersedes it).
    pub certificate: Serial,
}

/// The requester behind a client certificate, with its record; refused
/// unless the certificate, its device, the account and the facility are all
/// in good standing.
pub async fn authenticate(ra: &Ra, serial: &Serial, der: &[u8]) -> ServiceResult<(Requester, Identity)> {
    let unknown = || ServiceError::NotAuthenticated(NotAuthenticated::UnknownCertificate(serial.clone()));
    let identity =
        ra.store.identity_by_serial(serial).await?.filter(|id| *id.certificate.der == *der).ok_or_else(unknown)?;
    let not_usable = |status| {
        ServiceError::NotAuthenticated(NotAuthenticated::CertificateNotUsable { serial: serial.clone(), status })
    };
    if !identity.certificate.status.is_usable() {
        return Err(not_usable(identity.certificate.status.as_str()));
    }
    // The handshake checked the validity when the connection opened; a
    // connection kept open past notAfter must not go on working, nor renew
    // a certificate that has run out (issue 24).
    if identity.certificate.not_after <= ra.clock.now() {
        return Err(not_usable("expired"));
    }
    // A lost device's certificates are revoked in the same transaction
    // that marks it lost; this holds even if one were not.
    if identity.device_status != DeviceStatus::Active {
        return Err(not_usable(if identity.device_status == DeviceStatus::Lost {
            "of a device reported lost"
        } else {
            "of a retired device"
        }));
    }
    if identity.user.status != UserStatus::Active {
        return Err(ServiceError::AccountDisabled(identity.user.status.as_str()));
    }
    if identity.facility.status != FacilityStatus::Approved {
        return Err(ServiceError::FacilityNotActive(identity.facility.status.as_str()));
    }
    let actor = Actor { user: identity.user.id, role: identity.user.role, facility: identity.facility.id };
    let requester = Requester { audit_name: format!("user:{}", actor.user), actor, certificate: serial.clone() };
    Ok((requester, identity))
}
