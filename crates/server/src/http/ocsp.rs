//! The OCSP responder (`POST /ocsp`, `GET /ocsp/{base64}`) and the CRL
//! (`/crl/{ca}.crl`, `/crl/{ca}.pem`, one for each issuing CA) on the public listener: HTTP
//! around `connect_pki_responder`. Every failure is an OCSP error response,
//! never an HTTP error.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connect_pki_ca::ocsp::{Refusal, refusal_response};
use connect_pki_responder::MAX_REQUEST;

use crate::state::AppState;

/// Routes of the responder and the CRL.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/crl/{file}", get(crl_file))
        .with_state(state)
}

fn ocsp_response(der: Bytes, max_age: i64) -> Response {
    let cache = if max_age > 0 {
        format!("public, max-age={max_age}, no-transform, must-revalidate")
    } else {
        "no-store".to_string()
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response")),
            (header::CACHE_CONTROL, HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("no-store"))),
        ],
        der,
    )
        .into_response()
}

async fn ocsp_post(State(state): State<AppState>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => return ocsp_response(Bytes::from(refusal_response(Refusal::Malformed)), 0),
    };
    let (der, max_age) = state.ocsp.answer(&state.revocations, &bytes);
    ocsp_response(der, max_age)
}

async fn ocsp_get(State(state): State<AppState>, Path(encoded): Path<String>) -> Response {
    let Some(request) = connect_pki_ca::ocsp::decode_get_path(&encoded) else {
        return ocsp_response(Bytes::from(refusal_response(Refusal::Malformed)), 0);
    };
    let (der, max_age) = state.ocsp.answer(&state.revocations, &request);
    ocsp_response(der, max_age)
}

/// Caches may keep a CRL only briefly: it is rebuilt on every revocation.
fn crl_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60, must-revalidate")),
    ]
}

/// The CRL of the issuing CA named in the file (`issuing.crl`,
/// `issuing-2.pem`: the URL in the certificates it issued), DER or PEM.
async fn crl_file(State(state): State<AppState>, Path(file): Path<String>, uri: axum::http::Uri) -> Response {
    let crl = file.rsplit_once('.').and_then(|(name, ext)| Some((state.revocations.crl_of(name)?, ext)));
    match crl {
        Some((crl, "crl")) => (crl_headers("application/pkix-crl"), crl.der.clone()).into_response(),
        Some((crl, "pem")) => (crl_headers("application/x-pem-file"), crl.pem.clone()).into_response(),
        _ => crate::http::error::no_route(uri).await.into_response(),
    }
}
