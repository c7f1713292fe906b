//! Who relies on us and what a certificate was used and checked for
//! (`connect_pki_responder::sightings`, `crate::relying`).

use connect_pki_domain::{Action, Serial, authorize};
use connect_pki_store::{CertificateSightings, Identity, RelyingParty};

use crate::service::error::ServiceError;
use crate::service::requester::Requester;
use crate::state::AppState;

/// Writes this instance's counts first, so that what is read includes the
/// questions answered a moment ago.
async fn flushed(state: &AppState) {
    if let Err(e) = crate::relying::flush(state).await {
        tracing::warn!(error = %e, "the relying parties' record could not be written before reading it");
    }
}

/// Every relying party seen: 行政管理課 only (it runs the service).
pub async fn relying_parties(state: &AppState, caller: &Requester) -> Result<Vec<RelyingParty>, ServiceError> {
    authorize(&caller.actor, Action::ListAllCertificates)?;
    flushed(state).await;
    Ok(state.store.relying_parties().await?)
}

/// A certificate and its holder, with its use on our listener, every
/// relying party's OCSP questions about it and, once it is revoked, the CRL
/// downloads that list it: for whoever manages its facility's certificates.
pub async fn certificate_use(
    state: &AppState,
    caller: &Requester,
    serial: &Serial,
) -> Result<(Identity, CertificateSightings), ServiceError> {
    let holder = crate::service::certificates::holder(state, caller, serial).await?;
    flushed(state).await;
    let sightings = state.store.certificate_sightings(&serial.to_hex(), holder.certificate.revoked_at).await?;
    Ok((holder, sightings))
}
