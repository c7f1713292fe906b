//! The terms of use (利用規約) a facility manager must have accepted before
//! working in the console: the version in force, once per version.

use connect_pki_domain::Role;

use crate::service::{Requester, ServiceError};
use crate::state::AppState;
use crate::terms::Terms;

/// The terms `caller` has yet to accept, if any. Only facility managers
/// accept terms (for their facility); the city's roles wrote them.
pub async fn pending<'a>(state: &'a AppState, caller: &Requester) -> Result<Option<&'a Terms>, ServiceError> {
    if caller.actor.role != Role::FacilityManager {
        return Ok(None);
    }
    let terms = &state.settings.terms;
    let accepted = state.store.accepted_terms(caller.actor.user, &terms.version).await?;
    Ok((!accepted).then_some(terms))
}

/// Records that `caller` accepted `version`, which must be the one in force
/// (the terms may have changed while the page was open).
pub async fn accept(state: &AppState, caller: &Requester, version: &str) -> Result<(), ServiceError> {
    let terms = &state.settings.terms;
    if caller.actor.role != Role::FacilityManager {
        let actor = format!("{} {}", caller.actor.role, caller.actor.user);
        return Err(ServiceError::NotAllowed { actor, action: "accept the terms of use" });
    }
    if version != terms.version {
        return Err(ServiceError::Invalid {
            field: "terms_version",
            why: format!("the terms in force are version {}; read them again and accept that version", terms.version),
        });
    }
    let (a, now) = (&caller.actor, state.clock.now());
    state.store.accept_terms(a.user, a.facility, &caller.audit_name, version, now).await?;
    Ok(())
}
