//! The JSON API on the mTLS listener.

use axum::routing::get;
use axum::{Json, Router};
use connect_pki_domain::{Action, authorize};
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::state::AppState;

/// An instant as RFC 3339 UTC, the form every time takes at the API.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Routes under `/api/v1`.
pub fn router(state: AppState) -> Router {
    Router::new().route("/api/v1/whoami", get(whoami)).fallback(super::error::no_route).with_state(state)
}

/// The caller's identity as the service sees it.
async fn whoami(caller: Caller) -> Result<Json<Value>, ApiError> {
    authorize(&caller.actor, Action::WhoAmI)?;
    let id = &caller.identity;
    Ok(Json(json!({
        "user_id": id.user.id,
        "login_id": id.user.login_id,
        "display_name": id.user.display_name,
        "role": id.user.role,
        "facility_id": id.facility.id,
        "facility_name": id.facility.name,
        "device_id": id.device,
        "serial": id.certificate.serial,
        "not_after": rfc3339(id.certificate.not_after),
    })))
}
