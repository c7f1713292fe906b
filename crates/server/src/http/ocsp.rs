//! The OCSP responder (`POST /ocsp`, `GET /ocsp/{base64}`) and the CRL
//! (`/crl/issuing.crl`, `/crl/issuing.pem`) on the public listener.
//!
//! Answers come from the in-memory index. A single-certificate request
//! without a nonce — what browsers, nginx and OpenSSL's stapling send — is
//! answered from a cache of signed responses; an entry is re-signed when the
//! certificate's status changes (its feed position differs) or when it is
//! half-way through its validity. Requests with a nonce, or about several
//! certificates, are signed live. Every failure is an OCSP error response,
//! never an HTTP error.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use connect_pki_ca::ocsp::{
    OcspSigner, Refusal, Status, internal_error_response, refusal_response, try_later_response,
};
use connect_pki_domain::{CertStatus, Reason};
use parking_lot::RwLock;
use std::collections::HashMap;
use time::OffsetDateTime;

use crate::revocation::Revocations;
use crate::revocation::index::{Entry, key};
use crate::state::AppState;

/// Largest OCSP request read (a request for 64 certificates with a nonce is
/// under 6 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

struct Cached {
    der: Bytes,
    event: i64,
    this_update: OffsetDateTime,
}

/// Signer, cache and validity of OCSP answers.
pub struct Responder {
    signer: OcspSigner,
    /// (serial key, CertID uses SHA-256) → signed response.
    cache: RwLock<HashMap<(u128, bool), Cached>>,
    /// How long a response is valid (nextUpdate − thisUpdate) and may be
    /// cached by HTTP caches and clients: the longest a relying party can go
    /// on seeing `good` after a revocation.
    pub validity: time::Duration,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("validity", &self.validity).finish_non_exhaustive()
    }
}

impl Responder {
    pub fn new(signer: OcspSigner, validity: time::Duration) -> Self {
        Self { signer, cache: RwLock::new(HashMap::new()), validity }
    }

    /// The DER response to a DER request, and the seconds it may be cached.
    pub fn answer(&self, revocations: &Revocations, request: &[u8]) -> (Bytes, i64) {
        metrics::counter!("connect_pki_ocsp_requests_total").increment(1);
        let req = match self.signer.parse(request) {
            Ok(r) => r,
            Err(refusal) => {
                metrics_refusal(refusal);
                return (Bytes::from(refusal_response(refusal)), 0);
            }
        };
        if revocations.is_stale() {
            // The index may be missing revocations made elsewhere: no answer
            // from it can be vouched for until the feed is read again.
            metrics::counter!("connect_pki_ocsp_refused_total", "status" => "try_later").increment(1);
            return (Bytes::from(try_later_response()), 0);
        }
        let now = OffsetDateTime::now_utc();
        let lookups: Vec<(Option<u128>, Option<Entry>)> =
            req.items.iter().map(|i| (key(&i.serial), revocations.index.get(&i.serial))).collect();
        // The cacheable case: one certificate we know, no nonce.
        if let ([(Some(k), Some(entry))], None) = (lookups.as_slice(), &req.nonce) {
            let sha256 = req.items[0].sha256;
            if let Some(hit) = self.cached(*k, sha256, entry.event, now) {
                return hit;
            }
            let this_update = now;
            match self.signer.respond(
                &[(req.items[0].id.clone(), status(Some(*entry)))],
                None,
                this_update,
                this_update + self.validity,
            ) {
                Ok(der) => {
                    let der = Bytes::from(der);
                    let mut cache = self.cache.write();
                    cache.insert((*k, sha256), Cached { der: der.clone(), event: entry.event, this_update });
                    return (der, self.validity.whole_seconds());
                }
                Err(e) => return internal_error(e),
            }
        }
        let items: Vec<_> = req.items.iter().zip(&lookups).map(|(i, (_, e))| (i.id.clone(), status(*e))).collect();
        match self.signer.respond(&items, req.nonce.as_ref(), now, now + self.validity) {
            // A response to a nonce is for that requester alone.
            Ok(der) => (Bytes::from(der), if req.nonce.is_some() { 0 } else { self.validity.whole_seconds() }),
            Err(e) => internal_error(e),
        }
    }

    fn cached(&self, k: u128, sha256: bool, event: i64, now: OffsetDateTime) -> Option<(Bytes, i64)> {
        let cache = self.cache.read();
        let c = cache.get(&(k, sha256))?;
        let age = now - c.this_update;
        // Re-signed half-way, so a cache downstream never holds one past nextUpdate.
        (c.event == event && age < self.validity / 2)
            .then(|| (c.der.clone(), (self.validity - age).whole_seconds().max(0)))
    }
}

fn internal_error(e: connect_pki_ca::CaError) -> (Bytes, i64) {
    tracing::error!(error = %e, "OCSP signing failed");
    (Bytes::from(internal_error_response()), 0)
}

fn metrics_refusal(r: Refusal) {
    let kind = match r {
        Refusal::Malformed => "malformed_request",
        Refusal::Unauthorized => "unauthorized",
    };
    metrics::counter!("connect_pki_ocsp_refused_total", "status" => kind).increment(1);
    tracing::debug!(?r, "OCSP request refused");
}

fn status(e: Option<Entry>) -> Status {
    match e {
        None => Status::Unknown,
        Some(e) => match e.status {
            CertStatus::Valid => Status::Good,
            CertStatus::OnHold => Status::Revoked {
                at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: Reason::CertificateHold,
            },
            CertStatus::Revoked | CertStatus::Superseded => Status::Revoked {
                at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: e.reason.unwrap_or(Reason::Unspecified),
            },
        },
    }
}

/// Routes of the responder and the CRL.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/crl/issuing.crl", get(crl_der))
        .route("/crl/issuing.pem", get(crl_pem))
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
    // RFC 6960 appendix A: base64 of the DER, URL-encoded (axum already
    // decoded the %xx); some clients send base64url instead.
    let trimmed = encoded.trim_end_matches('=');
    let decoded = if encoded.len() > MAX_REQUEST * 4 / 3 + 4 {
        None
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
            .ok()
    };
    let Some(request) = decoded else {
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

async fn crl_der(State(state): State<AppState>) -> Response {
    let crl = state.revocations.crl();
    (crl_headers("application/pkix-crl"), crl.der.clone()).into_response()
}

async fn crl_pem(State(state): State<AppState>) -> Response {
    let crl = state.revocations.crl();
    (crl_headers("application/x-pem-file"), crl.pem.clone()).into_response()
}
