//! SCEP (RFC 8894) at `/scep` (and `/scep/pkiclient.exe`, where older
//! clients append it), on both listeners: the message protects itself (the
//! request is signed and encrypted to the RA, the answer signed by it and
//! encrypted to the requester), and device-management systems and Apple
//! profiles often name a plain `http://` URL.
//!
//! A protocol adapter like [`est`](crate::http::est): PKCSReq is the JSON
//! enrollment with the challengePassword as the one-time code (an
//! enrollment code, or a challenge a device-management system fetched for
//! the user), RenewalReq is the renewal of the certificate that signed it,
//! so both keep the same refusals, audit and limits. This service never
//! answers PENDING, so a GetCertInitial has nothing to poll for.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connect_pki_ca::issue::to_pem;
use connect_pki_ca::scep::{CAPABILITIES, FailInfo, MessageType, Outcome, ReplyTo, Request, ScepRa};
use connect_pki_domain::Serial;
use connect_pki_domain::enrollment::Channel;
use connect_pki_ra::enrollment::{self, EnrollRequest, Enrolled};
use connect_pki_ra::{ServiceError, certificates};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::forwarded::Client;
use crate::http::state::AppState;
use crate::http::strangers;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/scep", get(get_operation).post(post_operation))
        .route("/scep/pkiclient.exe", get(get_operation).post(post_operation))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Operation {
    operation: Option<String>,
    message: Option<String>,
}

fn ra(state: &AppState) -> Result<&Arc<ScepRa>, ApiError> {
    state.scep.as_ref().ok_or(ApiError::ScepUnavailable)
}

async fn get_operation(
    State(state): State<AppState>,
    client: Client,
    Query(q): Query<Operation>,
) -> Result<Response, ApiError> {
    match q.operation.as_deref() {
        Some("GetCACaps") => Ok(([(header::CONTENT_TYPE, "text/plain")], CAPABILITIES).into_response()),
        Some("GetCACert") => ca_certs(&state),
        Some("PKIOperation") => {
            let message = q.message.ok_or_else(|| ApiError::BadRequest("PKIOperation by GET needs message=".into()))?;
            // A client that did not percent-encode its base64 sent `+`,
            // which the query string reads as a space.
            let body = STANDARD
                .decode(message.trim().replace(' ', "+"))
                .map_err(|e| ApiError::BadRequest(format!("the message is not base64: {e}")))?;
            pki_operation(&state, &client, &body).await
        }
        _ => Err(unknown_operation()),
    }
}

async fn post_operation(
    State(state): State<AppState>,
    client: Client,
    Query(q): Query<Operation>,
    body: Bytes,
) -> Result<Response, ApiError> {
    match q.operation.as_deref() {
        Some("PKIOperation") => pki_operation(&state, &client, &body).await,
        _ => Err(unknown_operation()),
    }
}

fn unknown_operation() -> ApiError {
    ApiError::BadRequest("operation= must be GetCACaps, GetCACert or PKIOperation".into())
}

/// The RA certificate and the chain above it, every issuing CA generation
/// in use (after a rollover the RA may still be the older one's) and the
/// root (RFC 8894, 4.2.1.2): clients encrypt to the one with
/// keyEncipherment and check answers with it; strongSwan writes nothing
/// without the root.
fn ca_certs(state: &AppState) -> Result<Response, ApiError> {
    let ra = ra(state)?;
    let mut certs: Vec<&[u8]> = vec![ra.cert_der()];
    certs.extend(state.certs.issuing.iter().rev().map(|(_, der, _)| der.as_slice()));
    certs.push(&state.certs.root_der);
    let der = connect_pki_ca::est::certs_only(&certs).map_err(|e| ApiError::Service(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-x509-ca-ra-cert")], der).into_response())
}

async fn pki_operation(state: &AppState, client: &Client, body: &[u8]) -> Result<Response, ApiError> {
    let scep = ra(state)?.clone();
    // Who sent it is known only once it is read (an RSA decryption and a
    // signature check): that work takes a stranger's place like any other.
    let (reader, owned) = (scep.clone(), body.to_vec());
    let read = strangers::serve(state, None, move |_| async move { Ok(reader.read(&owned)) }).await?;
    let request = match read {
        Ok(r) => r,
        Err(rejected) => {
            tracing::info!(error = %rejected.why, "SCEP message refused");
            return match rejected.reply_to {
                Some(to) => cert_rep(&scep, &to, &Outcome::Failed(rejected.fail), Some("bad_message")),
                None => Err(ApiError::BadRequest(format!("not a SCEP pkiMessage: {}", rejected.why))),
            };
        }
    };
    let issued = match request.kind {
        MessageType::PkcsReq => enroll(state, client, &request).await,
        MessageType::RenewalReq => renew(state, &request).await,
        MessageType::GetCertInitial => Err((
            FailInfo::BadCertId,
            ApiError::BadRequest("nothing is pending here: this CA answers every request at once".into()),
        )),
    };
    match issued {
        Ok(der) => cert_rep(&scep, &request.reply_to, &Outcome::Issued(&der), None),
        Err((fail, e)) => {
            let (status, code) = e.parts();
            // Not a refusal but a moment's trouble (busy, rate-limited, a
            // database away): an HTTP error, which clients retry, and not a
            // FAILURE, which they take as final.
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(e);
            }
            tracing::info!(error = %e, code, transaction = %request.reply_to.transaction_id, "SCEP request refused");
            cert_rep(&scep, &request.reply_to, &Outcome::Failed(fail), Some(code))
        }
    }
}

/// A CertRep; a failure also names its reason (the stable error code of the
/// JSON API) in `X-Connect-Refusal`, for whoever reads the MDM's logs.
fn cert_rep(scep: &ScepRa, to: &ReplyTo, outcome: &Outcome<'_>, refusal: Option<&str>) -> Result<Response, ApiError> {
    let der = scep.answer(to, outcome).map_err(|e| ApiError::Service(e.into()))?;
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-pki-message")], der).into_response();
    if let Some(code) = refusal.and_then(|c| header::HeaderValue::from_str(c).ok()) {
        response.headers_mut().insert("x-connect-refusal", code);
    }
    Ok(response)
}

type Refused = (FailInfo, ApiError);

fn refused(e: impl Into<ApiError>) -> Refused {
    (FailInfo::BadRequest, e.into())
}

/// PKCSReq: the challengePassword is the one-time code.
async fn enroll(state: &AppState, client: &Client, request: &Request) -> Result<Vec<u8>, Refused> {
    let code = request.challenge().ok_or_else(|| {
        refused(ApiError::BadRequest("the request has no challengePassword (the one-time code)".into()))
    })?;
    let req = EnrollRequest {
        code,
        csr: Some(to_pem("CERTIFICATE REQUEST", &request.content)),
        channel: Channel::Scep,
        ..EnrollRequest::default()
    };
    let addr = client.addr;
    let enrolled = strangers::serve(state, Some((&state.limits.enroll, addr)), move |state| async move {
        Ok(enrollment::enroll(&state, req, &addr.to_string()).await?)
    })
    .await
    .map_err(refused)?;
    match enrolled {
        Enrolled::Certificate { certificate_pem, .. } => der_of(&certificate_pem).map_err(refused),
        Enrolled::Pkcs12 { .. } | Enrolled::Key { .. } => {
            Err(refused(ApiError::from(anyhow::anyhow!("a SCEP enrollment returned a key"))))
        }
    }
}

/// RenewalReq: signed by the current certificate, which must be ours and
/// in good standing, exactly as for a renewal over mTLS.
async fn renew(state: &AppState, request: &Request) -> Result<Vec<u8>, Refused> {
    let signer = request.reply_to.signer_der();
    let serial = Serial::from_bytes(request.reply_to.signer_serial())
        .map_err(|e| (FailInfo::BadCertId, ApiError::BadRequest(format!("the signer certificate: {e}"))))?;
    let (requester, _) = connect_pki_ra::requester::authenticate(state, &serial, &signer)
        .await
        .map_err(|e| (FailInfo::BadCertId, ApiError::from(e)))?;
    let pem = to_pem("CERTIFICATE REQUEST", &request.content);
    let (_, cert) = certificates::renew(state, &requester, &pem).await.map_err(refused)?;
    Ok(cert.der.to_vec())
}

fn der_of(pem: &str) -> Result<Vec<u8>, ApiError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| ApiError::Service(ServiceError::Internal(anyhow::anyhow!("issued PEM: {e}"))))?;
    Ok(cert.to_vec())
}
