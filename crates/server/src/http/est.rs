//! EST (RFC 7030, with the clarifications of RFC 8951) under
//! `/.well-known/est/`, on the HTTPS listener only: what device-management
//! systems and their agents speak to enroll and renew by themselves.
//!
//! A protocol adapter and nothing more: `simpleenroll` is the JSON
//! enrollment with the one-time code as the HTTP Basic password (its user
//! name becomes the device's label), and `simplereenroll` is the JSON
//! renewal with the presented client certificate, so both keep the same
//! refusals (user, device, facility, code state), audit and limits. No
//! tls-unique channel binding: TLS 1.3 has none, and the code is single use.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connect_pki_ca::est;
use connect_pki_ca::issue::to_pem;
use connect_pki_domain::enrollment::Channel;
use connect_pki_ra::enrollment::{EnrollRequest, Enrolled};
use connect_pki_ra::{certificates, enrollment};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::http::error::ApiError;
use crate::http::forwarded::Client;
use crate::http::identity::Caller;
use crate::http::state::AppState;
use crate::http::strangers;

/// Where every EST operation lives (no CA label: this service has one CA).
pub(crate) const PREFIX: &str = "/.well-known/est/";

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route("/.well-known/est/serverkeygen", post(serverkeygen))
        .with_state(state)
}

/// A base64 body of `content_type` (RFC 8951: base64, no MIME transfer
/// encoding needed, but the header is what older clients look for).
fn base64_answer(content_type: &'static str, der: &[u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::HeaderName::from_static("content-transfer-encoding"), "base64"),
        ],
        STANDARD.encode(der),
    )
        .into_response()
}

fn certs_only(certs: &[&[u8]]) -> Result<Response, ApiError> {
    let der = est::certs_only(certs).map_err(|e| ApiError::Service(connect_pki_ra::ServiceError::from(e)))?;
    Ok(base64_answer("application/pkcs7-mime; smime-type=certs-only", &der))
}

/// The CA certificates: every issuing CA generation in use, and the root.
async fn cacerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let certs = &state.certs;
    let mut ders: Vec<&[u8]> = certs.issuing.iter().rev().map(|(_, der, _)| der.as_slice()).collect();
    ders.push(&certs.root_der);
    certs_only(&ders)
}

async fn csrattrs() -> Result<Response, ApiError> {
    let der = est::csr_attributes().map_err(|e| ApiError::Service(connect_pki_ra::ServiceError::from(e)))?;
    Ok(base64_answer("application/csrattrs", &der))
}

/// The PKCS#10 request of an EST body (base64, line breaks allowed), as PEM
/// for the registration authority.
pub fn request(body: &[u8]) -> Result<String, ApiError> {
    let text: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(&text)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a base64-encoded PKCS#10 request ({e})")))?;
    Ok(to_pem("CERTIFICATE REQUEST", &der))
}

/// The label and the code of an HTTP Basic `Authorization` header.
fn basic(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::EstCodeRequired)?;
    credentials(value)
}

/// The label and the code of an HTTP Basic `Authorization` value.
pub fn credentials(value: &str) -> Result<(String, String), ApiError> {
    let (scheme, encoded) = value.split_once(' ').ok_or(ApiError::EstCodeRequired)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::EstCodeRequired);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ApiError::EstCodeRequired)?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::EstCodeRequired)?;
    let (label, code) = text.split_once(':').ok_or(ApiError::EstCodeRequired)?;
    Ok((label.trim().to_string(), code.to_string()))
}

/// The certificate of a PEM the registration authority returned, as DER.
fn der_of(pem: &str) -> Result<Vec<u8>, ApiError> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| ApiError::Service(connect_pki_ra::ServiceError::Internal(anyhow::anyhow!("issued PEM: {e}"))))?;
    Ok(cert.to_vec())
}

/// A first enrollment with the one-time code of the HTTP Basic password:
/// from the device's own CSR, or (`server_key`) with a key made here, the
/// CSR then only saying that the device asks (its key is not used).
async fn enroll_with_code(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
    server_key: bool,
) -> Result<Enrolled, ApiError> {
    let (label, code) = basic(headers)?;
    let csr = request(body)?;
    if server_key {
        // Its key is not used, but the request must still be a PKCS#10
        // (the RA checks the one it signs from itself).
        connect_pki_ca::parse_csr(csr.as_bytes()).map_err(|e| ApiError::Service(e.into()))?;
    }
    let req = EnrollRequest {
        code,
        csr: (!server_key).then_some(csr),
        generate_key: server_key,
        key_type: None,
        password: None,
        device_label: Some(label).filter(|l| !l.is_empty()),
        channel: Channel::Est,
    };
    let addr = client.addr;
    strangers::serve(state, Some((&state.limits.enroll, addr)), move |state| async move {
        Ok(enrollment::enroll(&state, req, &addr.to_string()).await?)
    })
    .await
}

fn unexpected(what: &str) -> ApiError {
    ApiError::from(anyhow::anyhow!("an EST enrollment returned {what}"))
}

async fn simpleenroll(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match enroll_with_code(&state, &client, &headers, &body, false).await? {
        Enrolled::Certificate { certificate_pem, .. } => certs_only(&[&der_of(&certificate_pem)?]),
        Enrolled::Pkcs12 { .. } | Enrolled::Key { .. } => Err(unexpected("a key")),
    }
}

/// Enrollment with a key made here (RFC 7030, 4.4): a multipart/mixed
/// answer of the key (PKCS#8, base64; TLS protects it, as the RFC allows)
/// and the certificate (certs-only).
async fn serverkeygen(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Enrolled::Key { pkcs8, certificate, .. } = enroll_with_code(&state, &client, &headers, &body, true).await?
    else {
        return Err(unexpected("no key"));
    };
    let certs = est::certs_only(&[&certificate]).map_err(|e| ApiError::Service(e.into()))?;
    let boundary = format!("est-{}", hex::encode(random_bytes()?));
    let part = |kind: &str, der: &[u8]| {
        format!(
            "--{boundary}\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            STANDARD.encode(der)
        )
    };
    let text = format!(
        "{}{}--{boundary}--\r\n",
        part("application/pkcs8", &pkcs8),
        part("application/pkcs7-mime; smime-type=certs-only", &certs)
    );
    let content_type = format!("multipart/mixed; boundary={boundary}");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Sixteen random bytes, for a multipart boundary no base64 line can contain.
fn random_bytes() -> Result<[u8; 16], ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::from(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(b)
}

/// Renewal with the presented certificate: superseded once the new one is
/// issued, exactly as `POST /api/v1/certificates/renew`.
async fn simplereenroll(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    let pem = request(&body)?;
    let (_, cert) = certificates::renew(&state, &caller.requester, &pem).await?;
    certs_only(&[&cert.der])
}
