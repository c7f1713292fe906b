//! Certificates: reading one and its holder, those running out soon,
//! renewal by the device itself, and revoke, hold or release — published
//! with `Revocations::sync` before the caller hears back, so the handshake,
//! OCSP and the CRL already reflect it when the response leaves.

use connect_pki_ca::parse_csr;
use connect_pki_domain::certificate::Change;
use connect_pki_domain::hold::Lifter;
use connect_pki_domain::renewal;
use connect_pki_domain::{Action, DeviceId, FacilityId, Role, Serial, authorize};
use connect_pki_store::{CertificateRecord, ExpiringCertificate, Identity, NewCertificate, StatusChange};

use crate::Ra;
use crate::error::ServiceError;
use crate::instances::Everywhere;
use crate::publish;
use crate::requester::Requester;
use crate::sign_from_csr;

/// A certificate.
pub async fn certificate(ra: &Ra, caller: &Requester, serial: &Serial) -> Result<CertificateRecord, ServiceError> {
    Ok(holder(ra, caller, serial).await?.certificate)
}

/// A certificate with its device, user and facility, for whoever manages
/// that facility's certificates.
pub(crate) async fn holder(ra: &Ra, caller: &Requester, serial: &Serial) -> Result<Identity, ServiceError> {
    let holder = ra.store.identity_by_serial(serial).await?.ok_or(ServiceError::NotFound("certificate"))?;
    authorize(&caller.actor, Action::ManageCertificates(holder.facility.id))?;
    Ok(holder)
}

/// The certificates of a facility that are valid or on hold and run out
/// within `within` from now, soonest first.
pub async fn expiring(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
    within: time::Duration,
) -> Result<Vec<ExpiringCertificate>, ServiceError> {
    authorize(&caller.actor, Action::ManageCertificates(facility))?;
    let now = ra.clock.now();
    Ok(ra.store.expiring_certificates(Some(facility), now, now + within).await?)
}

/// Renews the caller's own certificate from a new CSR: a new certificate for
/// the same device; the presented one is superseded.
pub async fn renew(ra: &Ra, caller: &Requester, csr_pem: &str) -> Result<(DeviceId, NewCertificate), ServiceError> {
    let csr = parse_csr(csr_pem.as_bytes())?;
    let old = caller.certificate.clone();
    let (device, cert) = ra
        .store
        .renew_certificate::<ServiceError>(
            &old,
            renewal::Terms { per_hour: ra.settings.renewals_per_hour, handover: renewal::Handover::Now },
            &caller.audit_name,
            ra.clock.now(),
            |d| sign_from_csr(ra, &csr, d),
        )
        .await?;
    crate::journal(ra, connect_pki_store::Issued { device: device.clone(), label: String::new(), cert: cert.clone() })
        .await?;
    crate::publish(ra).await?;
    Ok((device.device, cert))
}

/// A change of status, and where the other instances were when it answered.
#[derive(Debug, Clone)]
pub struct Changed {
    pub outcome: StatusChange,
    /// With `every_instance` on: the instances that had not applied it.
    pub everywhere: Option<Everywhere>,
}

/// Revokes, holds or releases one certificate. Repeating a call reports the
/// state the certificate is in.
pub async fn change(ra: &Ra, caller: &Requester, serial: &Serial, change: Change) -> Result<Changed, ServiceError> {
    let allowed = |holder: &Identity| -> Result<(), ServiceError> {
        Ok(authorize(&caller.actor, Action::ActOnUser(holder.user.target()))?)
    };
    let on_behalf = match caller.actor.role {
        Role::AdminDivision => Lifter::City,
        _ => Lifter::Direct,
    };
    let outcome =
        ra.store.change_certificate_if(serial, change, &caller.audit_name, on_behalf, ra.clock.now(), allowed).await?;
    let everywhere = publish(ra).await?;
    Ok(Changed { outcome, everywhere })
}
