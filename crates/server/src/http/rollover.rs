//! An instance behind a rollover changes nothing.
//!
//! After `ca rollover` on one instance, the others keep running with the
//! older issuing CAs until they are restarted with the new one. Until then
//! they could not publish the new CA's CRL, and anything they issued would
//! come from a CA the rest of the service has moved on from; a revocation
//! they answered 200 to would be one they never published. So while
//! [`Revocations::behind_rollover`](connect_pki_responder::Revocations::behind_rollover)
//! says so, every state change is refused with 503 (JSON on the API, a
//! Japanese page elsewhere), `/readyz` is 503 so the load balancer sends
//! callers to an instance that has it, and OCSP answers `tryLater` for the
//! CA it lacks.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Refuses every state change while this instance lacks the newest issuing CA.
pub(crate) async fn refuse_changes_when_behind(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let Some(newest) = state.revocations.behind_rollover().filter(|_| !safe) else {
        return next.run(req).await;
    };
    tracing::warn!(
        generation = newest,
        method = %req.method(),
        path = %req.uri().path(),
        "a change refused: this instance has not loaded the newest issuing CA (restart it with it)"
    );
    let refusal = ApiError::BehindRollover(newest);
    if req.uri().path().starts_with("/api/") {
        refusal.into_response()
    } else {
        crate::http::console::kit::refuse(refusal)
    }
}
