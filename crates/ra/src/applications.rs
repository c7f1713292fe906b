//! Facility applications: submitted on the public form, decided by the city.

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::{Action, authorize};
use connect_pki_store::{ApplicationRecord, Approval};

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;
use crate::secrets::new_code;
use crate::secrets::random_secret;

/// Validates and records an application from `client`.
pub async fn submit(ra: &Ra, form: ApplicationForm, client: &str) -> Result<ApplicationRecord, ServiceError> {
    let form = form.validate(&ra.settings.terms.version)?;
    // With the city's list configured, the 担当課 is one of it: the pages
    // then name its contact, and nobody's question goes astray.
    if let Some(d) = form.department.as_deref()
        && !ra.settings.departments.is_empty()
        && ra.settings.department(d).is_none()
    {
        return Err(connect_pki_domain::DomainError::Invalid {
            field: "department",
            why: format!("{d:?} is not one of the city's departments; choose one from the list"),
        }
        .into());
    }
    let token = random_secret(18)?;
    Ok(ra.store.submit_application(&form, &token, client, ra.clock.now()).await?)
}

/// An application, by the token of its status URL (the applicant's view).
pub async fn by_token(ra: &Ra, token: &str) -> Result<ApplicationRecord, ServiceError> {
    ra.store.application_by_token(token).await?.ok_or(ServiceError::NotFound("application"))
}

/// Applications, for the city.
pub async fn list(ra: &Ra, caller: &Requester, status: Option<&str>) -> Result<Vec<ApplicationRecord>, ServiceError> {
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
    Ok(ra.store.applications(status).await?)
}

/// One application, for the city.
pub async fn one(ra: &Ra, caller: &Requester, id: i64) -> Result<ApplicationRecord, ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    ra.store.application(id).await?.ok_or(ServiceError::NotFound("application"))
}

/// Approves an application; returns what was created and the manager's
/// enrollment code (shown once).
pub async fn approve(
    ra: &Ra,
    caller: &Requester,
    id: i64,
) -> Result<(Approval, String, time::OffsetDateTime), ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    let now = ra.clock.now();
    // Generated before the transaction; bound to the manager created in it.
    // The manager's code goes out on a printed slip, often by post.
    let code = new_code(caller.actor.user, ra.settings.mailed_code_ttl, now)?;
    let approval = ra.store.approve_application(id, caller.actor.user, |manager| code.for_user(manager), now).await?;
    let shown = code.display();
    Ok((approval, shown, code.stored.expires_at))
}

/// Purges the rejected applications decided more than the retention period
/// ago (`--rejected-application-days`); returns their ids.
pub async fn purge_rejected(ra: &Ra) -> Result<Vec<i64>, ServiceError> {
    let now = ra.clock.now();
    let before = now - ra.settings.rejected_application_retention;
    Ok(ra.store.purge_rejected_applications(before, now).await?)
}

/// Rejects an application with a reason the applicant will see.
pub async fn reject(ra: &Ra, caller: &Requester, id: i64, reason: &str) -> Result<ApplicationRecord, ServiceError> {
    authorize(&caller.actor, Action::DecideApplications)?;
    let reason = connect_pki_domain::validate::text("reason", reason, 500)?;
    Ok(ra.store.reject_application(id, caller.actor.user, &reason, ra.clock.now()).await?)
}
