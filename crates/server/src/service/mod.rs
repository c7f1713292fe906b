//! The registration authority: what each operation does, independent of how
//! it was asked for (JSON API, page, CLI). Each function reads top to bottom:
//! policy check → one store operation → result.

pub mod applications;
pub mod audit;
pub mod certificates;
pub mod directory;
pub mod emergency;
pub mod enrollment;
pub mod error;
pub mod expiry;
pub mod incident;
pub mod notify;
pub mod requester;
pub mod revocation;
pub mod secrets;
pub mod sightings;
pub mod terms;

use connect_pki_ca::{CheckedCsr, IssuedCert};
use connect_pki_store::{DeviceRef, NewCertificate};

pub use error::{Conflict, ServiceError, ServiceResult};
pub use requester::Requester;

use crate::state::AppState;

/// Makes a change of certificate status visible everywhere in this
/// instance (the index, OCSP, the handshake, the CRL) before the caller
/// answers.
pub async fn publish(state: &AppState) -> Result<(), ServiceError> {
    state.revocations.sync().await.map_err(|e| ServiceError::Internal(e.into()))
}

/// Signs a device certificate for `device` from a checked CSR, refusing a CSR
/// that claims another user. Used inside store transactions.
pub(crate) fn sign_from_csr(
    state: &AppState,
    csr: &CheckedCsr,
    device: &DeviceRef,
) -> Result<NewCertificate, ServiceError> {
    csr.check_claims(&device.login_id)?;
    let subject = subject_of(device);
    let cert = state.ca.issue_device(&csr.spki_der, &subject, state.clock.now())?;
    Ok(stored(cert))
}

/// The instant due work (escalations past their SLA, holds past their
/// limit, scheduled retirements, notification retries) is measured against:
/// on PostgreSQL the database's clock, so that instances with skewed clocks
/// agree on what is due; an injected clock (tests) is its own reference.
pub(crate) async fn due_now(state: &AppState) -> ServiceResult<time::OffsetDateTime> {
    let now = state.clock.now();
    if state.clock.is_system() { Ok(state.store.due_clock(now).await?) } else { Ok(now) }
}

pub(crate) fn subject_of(device: &DeviceRef) -> connect_pki_ca::DeviceSubject {
    connect_pki_ca::DeviceSubject {
        facility: device.facility,
        user: device.user,
        device: device.device,
        login_id: device.login_id.clone(),
    }
}

/// What the store keeps of a certificate just signed.
pub fn stored(cert: IssuedCert) -> NewCertificate {
    NewCertificate {
        serial: cert.serial,
        der: cert.der,
        not_before: cert.not_before,
        not_after: cert.not_after,
        ca_generation: i64::from(cert.ca_generation),
    }
}
