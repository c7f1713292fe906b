//! `/healthz` and `/readyz` on the public listener, for load balancers and
//! monitoring: whether the database answers, and whether this instance may
//! take traffic — not while it fails closed because it cannot read the
//! revocation feed. No authentication, nothing cached.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::http::state::AppState;

/// The health route.
pub(crate) fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state)
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => Json200(json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable", "database": "unreachable"})))
                .into_response()
        }
    }
}

/// 200 when the database answers and the revocation index is current; 503
/// while the instance fails closed (OCSP `tryLater`, handshakes refused) —
/// a load balancer sends the traffic to another instance meanwhile.
async fn readyz(State(s): State<AppState>) -> Response {
    let stale = s.revocations.is_stale();
    let behind = s.revocations.behind_rollover();
    let database = s.store.ping().await;
    if !stale && behind.is_none() && database.is_ok() {
        return Json200(json!({"status": "ready", "database": "ok", "revocation_feed": "current"})).into_response();
    }
    tracing::warn!(stale, ?behind, database = ?database.as_ref().err().map(ToString::to_string), "not ready");
    let body = json!({
        "status": if stale || database.is_err() { "failing_closed" } else { "behind_rollover" },
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "revocation_feed": if stale { "stale" } else { "current" },
        "missing_issuing_ca": behind.map(connect_pki_ca::issue::name_of_generation),
    });
    ([(header::CACHE_CONTROL, "no-store")], (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body))).into_response()
}

struct Json200(serde_json::Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        ([(header::CACHE_CONTROL, "no-store")], axum::Json(self.0)).into_response()
    }
}
