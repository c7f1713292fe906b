//! Facility applications: submitted on the public form, decided by the city.

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::{Action, authorize};
use connect_pki_store::{ApplicationRecord, Approval};

use crate::service::error::ServiceError;
use crate::service::requester::Requester;
use crate::service::secrets::new_code;
use crate::service::secrets::random_secret;
use crate::state::AppState;

/// Validates and records an application from `client`.
pub async fn submit(state: &AppState, form: ApplicationForm, client: &str) -> Result<ApplicationRecord, ServiceError> {
    let form = form.validate(&state.settings.terms.version)?;
    let token = random_secret(18)?;
    Ok(state.store.submit_application(&form, &token, client, state.clock.now()).await?)
}

/// An application, by the token of its status URL (the applicant's view).
pub async fn by_token(state: &AppState, token: &str) -> Result<ApplicationRecord, ServiceError> {
    state.store.application_by_token(token).await?.ok_or(ServiceError::NotFound("application"))
}

/// Applications, for the city.
pub async fn list(
    state: &AppState,
    caller: &Requester,
    status: Option<&str>,
) -> Result<Vec<ApplicationRecord>, ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    if let Some(s) = status
        && !matches!(s, "pending" | "approved" | "rejected")
    {
        return Err(connect_pki_domain::DomainError::Invalid {
            field: "status",
            why: format!("{s:?} is not one of pending, approved, rejected"),
        }
        .into());
    }
    Ok(state.store.applications(status).await?)
}

/// One application, for the city.
pub async fn one(state: &AppState, caller: &Requester, id: i64) -> Result<ApplicationRecord, ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    state.store.application(id).await?.ok_or(ServiceError::NotFound("application"))
}

/// Approves an application; returns what was created and the manager's
/// enrollment code (shown once).
pub async fn approve(
    state: &AppState,
    caller: &Requester,
    id: i64,
) -> Result<(Approval, String, time::OffsetDateTime), ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    let now = state.clock.now();
    // Generated before the transaction; bound to the manager created in it.
    let code = new_code(caller.actor.user, state.settings.enrollment_code_ttl, now)?;
    let approval =
        state.store.approve_application(id, caller.actor.user, |manager| code.for_user(manager), now).await?;
    let shown = code.display(approval.code_id);
    Ok((approval, shown, code.stored.expires_at))
}

/// Purges the rejected applications decided more than the retention period
/// ago (`--rejected-application-days`); returns their ids.
pub async fn purge_rejected(state: &AppState) -> Result<Vec<i64>, ServiceError> {
    let now = state.clock.now();
    let before = now - state.settings.rejected_application_retention;
    Ok(state.store.purge_rejected_applications(before, now).await?)
}

/// Rejects an application with a reason the applicant will see.
pub async fn reject(
    state: &AppState,
    caller: &Requester,
    id: i64,
    reason: &str,
) -> Result<ApplicationRecord, ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    let reason = connect_pki_domain::validate::text("reason", reason, 500)?;
    Ok(state.store.reject_application(id, caller.actor.user, &reason, state.clock.now()).await?)
}
