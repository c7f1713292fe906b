//! Reading the audit log (`admin_division`).

use connect_pki_domain::{Action, authorize};
use connect_pki_store::{AuditFilter, AuditRecord};

use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::state::AppState;

/// Audit records matching `filter`.
pub async fn list(state: &AppState, caller: &Caller, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ApiError> {
    authorize(&caller.actor, Action::ReadAudit)?;
    Ok(state.store.audit_page(filter).await?)
}
