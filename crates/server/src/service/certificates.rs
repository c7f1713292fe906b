//! Reading devices and certificates; renewal by the device itself.

use connect_pki_ca::parse_csr;
use connect_pki_domain::{Action, DeviceId, Serial, authorize};
use connect_pki_store::{CertificateRecord, DeviceRecord, NewCertificate};

use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::service::sign_from_csr;
use crate::state::AppState;

/// A device and its certificates.
pub async fn device(state: &AppState, caller: &Caller, id: DeviceId) -> Result<DeviceRecord, ApiError> {
    let device = state.store.device(id).await?.ok_or(ApiError::NotFound("device"))?;
    authorize(&caller.actor, Action::ManageCertificates(device.facility))?;
    Ok(device)
}

/// A certificate with the facility it belongs to.
pub async fn certificate(state: &AppState, caller: &Caller, serial: &Serial) -> Result<CertificateRecord, ApiError> {
    let holder = state.store.identity_by_serial(serial).await?.ok_or(ApiError::NotFound("certificate"))?;
    authorize(&caller.actor, Action::ManageCertificates(holder.facility.id))?;
    Ok(holder.certificate)
}

/// Renews the caller's own certificate from a new CSR: a new certificate for
/// the same device; the presented one is superseded.
pub async fn renew(state: &AppState, caller: &Caller, csr_pem: &str) -> Result<(DeviceId, NewCertificate), ApiError> {
    let csr = parse_csr(csr_pem.as_bytes())?;
    let old = caller.identity.certificate.serial.clone();
    let (device, cert) = state
        .store
        .renew_certificate::<ApiError, _>(&old, &caller.audit_name(), state.clock.now(), |d| {
            sign_from_csr(state, &csr, d)
        })
        .await?;
    crate::service::revocation::publish(state).await?;
    Ok((device.device, cert))
}
