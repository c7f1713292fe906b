//! Reading the audit log (`admin_division`; a manager their facility's
//! trail), and recording refusals.

use connect_pki_domain::{Action, AuditAction, FacilityId, Serial, authorize};
use connect_pki_store::{AuditEntry, AuditFilter, AuditRecord};

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// Audit records matching `filter`.
pub async fn list(ra: &Ra, caller: &Requester, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadAudit)?;
    Ok(ra.store.audit_page(filter).await?)
}

/// The audit trail of one facility (its manager reads their own): the
/// records that name it, read only.
pub async fn facility_trail(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadFacilityAudit(facility))?;
    let filter = AuditFilter { facility: Some(facility), ..filter.clone() };
    Ok(ra.store.audit_page(&filter).await?)
}

/// Records a refused (403) request made with one of our certificates: who
/// tried what is part of the record of an incident, like what was done.
pub async fn record_refusal(ra: &Ra, serial: &Serial, method: &str, path: &str) -> Result<(), ServiceError> {
    let holder = ra.store.identity_by_serial(serial).await?;
    let entry = AuditEntry {
        actor: holder.as_ref().map_or_else(|| format!("certificate:{serial}"), |h| format!("user:{}", h.user.id)),
        action: AuditAction::RequestRefused,
        target: format!("{method} {path}"),
        outcome: "forbidden".into(),
        detail: serde_json::json!({"certificate": serial.to_hex()}),
        facility: holder.as_ref().map(|h| h.facility.id),
        user: holder.as_ref().map(|h| h.user.id),
    };
    Ok(ra.store.audit(ra.clock.now(), &entry).await?)
}
