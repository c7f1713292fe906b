//! The public listener: CA certificates and health. No authentication.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::http::state::AppState;

const PEM: &str = "application/x-pem-file";
const DER_CERT: &str = "application/pkix-cert";

/// Routes of the public listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ca/{file}", get(ca_file))
        .route("/healthz", get(healthz))
        .fallback(super::error::no_route)
        .with_state(state)
}

/// `root`, `chain` (every issuing CA and the root: the relying parties'
/// trust bundle) or an issuing CA by name (`issuing`, `issuing-2`), as
/// `.pem` or DER `.crt`.
async fn ca_file(State(s): State<AppState>, Path(file): Path<String>, uri: axum::http::Uri) -> Response {
    let certs = &s.certs;
    match file.rsplit_once('.') {
        Some(("root", "pem")) => body(PEM, certs.root_pem.clone()),
        Some(("root", "crt")) => body(DER_CERT, certs.root_der.clone()),
        Some(("chain", "pem")) => body(PEM, certs.bundle_pem.clone()),
        Some((name, ext)) => match (certs.issuing_ca(name), ext) {
            (Some((_, pem)), "pem") => body(PEM, pem.to_string()),
            (Some((der, _)), "crt") => body(DER_CERT, der.to_vec()),
            _ => super::error::no_route(uri).await.into_response(),
        },
        None => super::error::no_route(uri).await.into_response(),
    }
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
