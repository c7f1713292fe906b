//! The CA certificates as relying parties and devices fetch them (`/ca/*`):
//! the root, every issuing CA generation and the trust bundle, PEM or DER.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::state::AppState;

const PEM: &str = "application/x-pem-file";
const DER_CERT: &str = "application/pkix-cert";

/// The CA files' routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new().route("/ca/{file}", get(ca_file)).with_state(state)
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
            _ => crate::http::error::no_route(uri).await.into_response(),
        },
        None => crate::http::error::no_route(uri).await.into_response(),
    }
}

fn body(content_type: &'static str, bytes: impl Into<axum::body::Body>) -> Response {
    // CA certificates change only on re-keying; a day of caching is safe.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], bytes.into())
        .into_response()
}
