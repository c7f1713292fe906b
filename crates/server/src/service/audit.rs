//! Reading the audit log (`admin_division`), and recording refusals.

use connect_pki_domain::{Action, Serial, authorize};
use connect_pki_store::{AuditEntry, AuditFilter, AuditRecord};

use crate::service::error::ServiceError;
use crate::service::requester::Requester;
use crate::state::AppState;

/// Audit records matching `filter`.
pub async fn list(
    state: &AppState,
    caller: &Requester,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadAudit)?;
    Ok(state.store.audit_page(filter).await?)
}

/// Records a refused (403) request made with one of our certificates: who
/// tried what is part of the record of an incident, like what was done.
pub async fn record_refusal(state: &AppState, serial: &Serial, method: &str, path: &str) -> Result<(), ServiceError> {
    let holder = state.store.identity_by_serial(serial).await?;
    let entry = AuditEntry {
        actor: holder.as_ref().map_or_else(|| format!("certificate:{serial}"), |h| format!("user:{}", h.user.id)),
        action: "request.refused".into(),
        target: format!("{method} {path}"),
        outcome: "forbidden".into(),
        detail: serde_json::json!({"certificate": serial.to_hex()}),
        facility: holder.as_ref().map(|h| h.facility.id),
        user: holder.as_ref().map(|h| h.user.id),
    };
    Ok(state.store.audit(state.clock.now(), &entry).await?)
}
