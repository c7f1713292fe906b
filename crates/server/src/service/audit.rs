//! Reading the audit log (`admin_division`).

use connect_pki_domain::{Action, authorize};
use connect_pki_store::{AuditFilter, AuditRecord};

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
