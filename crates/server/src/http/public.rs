//! The public listener: CA certificates and health. No authentication.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

const PEM: &str = "application/x-pem-file";
const DER_CERT: &str = "application/pkix-cert";

/// Routes of the public listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ca/root.pem", get(|State(s): State<AppState>| async move { body(PEM, s.certs.root_pem.clone()) }))
        .route(
            "/ca/issuing.pem",
            get(|State(s): State<AppState>| async move { body(PEM, s.certs.issuing_pem.clone()) }),
        )
        .route("/ca/chain.pem", get(|State(s): State<AppState>| async move { body(PEM, s.certs.chain_pem.clone()) }))
        .route("/ca/root.crt", get(|State(s): State<AppState>| async move { body(DER_CERT, s.certs.root_der.clone()) }))
        .route(
            "/ca/issuing.crt",
            get(|State(s): State<AppState>| async move { body(DER_CERT, s.certs.issuing_der.clone()) }),
        )
        .route("/healthz", get(healthz))
        .fallback(super::error::no_route)
        .with_state(state)
}

fn body(content_type: &'static str, bytes: impl Into<axum::body::Body>) -> Response {
    // CA certificates change only on re-keying; a day of caching is safe.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], bytes.into())
        .into_response()
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

struct Json200(serde_json::Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        ([(header::CACHE_CONTROL, "no-store")], axum::Json(self.0)).into_response()
    }
}
