//! The registration authority: what each operation does, independent of how
//! it was asked for (JSON API, page, CLI). A `Requester` comes in, a
//! `ServiceError` goes out; each function reads top to bottom: policy check
//! → one store operation → result. This crate knows no HTTP, pages or
//! listeners (its `Cargo.toml` has no axum, askama, utoipa or TLS server), and
//! no files: the server reads the data directory and hands over values.

pub mod applications;
pub mod audit;
pub mod certificates;
pub mod devices;
pub mod enrollment;
pub mod error;
pub mod escalations;
pub mod expiry;
pub mod facilities;
pub mod incident;
pub mod instances;
pub mod mdm;
pub mod notify;
pub mod pseudonym;
pub mod renewal;
pub mod requester;
pub mod review;
pub mod secrets;
pub mod settings;
pub mod sightings;
pub mod terms;
pub mod users;

use std::sync::Arc;

use connect_pki_ca::{CheckedCsr, IssuedCert, IssuingCa, PublicCerts};
use connect_pki_domain::Clock;
use connect_pki_responder::{Responder, Revocations};
use connect_pki_store::{DeviceRef, NewCertificate, Store};

pub use error::{Conflict, ServiceError, ServiceResult};
pub use requester::Requester;
pub use settings::Settings;

/// What every operation can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ra {
    pub store: Store,
    /// The newest issuing CA generation: the one that signs.
    pub ca: Arc<IssuingCa>,
    pub clock: Arc<dyn Clock>,
    pub certs: Arc<PublicCerts>,
    pub settings: Arc<Settings>,
    pub revocations: Arc<Revocations>,
    pub ocsp: Arc<Responder>,
    /// Keyed hashes of typed login IDs (failed sign-ins) for the audit log.
    pub pseudonyms: Arc<pseudonym::PseudonymKey>,
    /// Names this process as the holder of notification leases.
    pub instance_id: Arc<str>,
    /// Where every issuance is recorded before its answer leaves (`None`:
    /// nowhere, as in the in-process tests).
    pub journal: Option<Arc<dyn IssuanceJournal>>,
    /// Keys generated for devices (PKCS#12 enrollment): a bounded number at
    /// once, and only for the holder of a genuine code.
    pub key_generation: Arc<enrollment::KeyGeneration>,
    /// Refused requests counted before they reach the audit log.
    pub refusals: Arc<audit::Refusals>,
    /// What the webhook secrets of device-management systems derive from.
    pub webhook_key: Arc<mdm::WebhookKey>,
}

/// The issuance journal (kept by the server beside the kept CRLs): a
/// restore recreates from it the certificates issued after its backup, so
/// they can still be revoked and their ids are never handed out again.
pub trait IssuanceJournal: Send + Sync + std::fmt::Debug {
    /// Appends `issued` durably (synced) before returning.
    fn record(&self, issued: &connect_pki_store::Issued) -> anyhow::Result<()>;
}

/// Records an issuance in the journal, off the async threads; an issuance
/// that cannot be recorded is not answered (the device never gets the
/// certificate, which stays valid in the database and can be revoked).
pub(crate) async fn journal(ra: &Ra, issued: connect_pki_store::Issued) -> Result<(), ServiceError> {
    let Some(journal) = ra.journal.clone() else { return Ok(()) };
    tokio::task::spawn_blocking(move || journal.record(&issued))
        .await
        .map_err(|e| anyhow::anyhow!("the issuance journal: {e}"))?
        .map_err(|e| ServiceError::Internal(e.context("recording the issuance in the journal")))
}

/// Makes a change of certificate status visible everywhere in this
/// instance (the index, OCSP, the handshake, the CRL) before the caller
/// answers; with `every_instance` on, also waits for the other instances
/// (`instances`) and says where they were.
pub async fn publish(ra: &Ra) -> Result<Option<instances::Everywhere>, ServiceError> {
    ra.revocations.sync().await.map_err(|e| ServiceError::Internal(e.into()))?;
    instances::wait_for_every_instance(ra).await
}

/// Signs a device certificate for `device` from a checked CSR, refusing a CSR
/// that claims another user. Used inside store transactions.
pub(crate) fn sign_from_csr(ra: &Ra, csr: &CheckedCsr, device: &DeviceRef) -> Result<NewCertificate, ServiceError> {
    csr.check_claims(&device.login_id)?;
    let subject = subject_of(device);
    let cert = ra.ca.issue_device_for(&csr.spki_der, &subject, ra.clock.now(), lifetime(ra, device))?;
    Ok(stored(cert))
}

/// How long `device`'s next certificate lives: managed or by hand, by its
/// facility's lifetimes or the service's.
pub(crate) fn lifetime(ra: &Ra, device: &DeviceRef) -> time::Duration {
    ra.settings.lifetimes.of(device.lifetimes, device.managed)
}

/// The instant due work (escalations past their SLA, holds past their
/// limit, scheduled retirements, notification retries) is measured against:
/// on PostgreSQL the database's clock, so that instances with skewed clocks
/// agree on what is due; an injected clock (tests) is its own reference.
pub(crate) async fn due_now(ra: &Ra) -> ServiceResult<time::OffsetDateTime> {
    let now = ra.clock.now();
    if ra.clock.is_system() { Ok(ra.store.due_clock(now).await?) } else { Ok(now) }
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
