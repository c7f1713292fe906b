//! Renewal by the device: from its own CSR (the presented certificate is
//! superseded at once), or with a key made here and handed back as a
//! PKCS#12 (the presented certificate works until the new one is first
//! used, or the grace period ends: what わたしの端末's 証明書の更新 does).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiResult;
use super::views::*;
use crate::http::identity::Caller;
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use connect_pki_ra::enrollment::base64;
use connect_pki_ra::{certificates, renewal};

/// Renew the presented certificate from a new CSR; the presented one is superseded.
#[utoipa::path(post, path = "/api/v1/certificates/renew", tag = "certificates", request_body = RenewBody,
    responses((status = 201, body = RenewResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "The device renewed too often within the last hour", body = ErrorBody)))]
pub(super) async fn renew_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RenewBody>,
) -> ApiResult<(StatusCode, Json<RenewResponse>)> {
    let old = caller.identity.certificate.serial.to_hex();
    let (device, cert) = certificates::renew(&state, &caller.requester, &body.csr).await?;
    Ok((
        StatusCode::CREATED,
        Json(RenewResponse {
            device_id: device.0,
            serial: cert.serial.to_hex(),
            certificate: connect_pki_ca::issue::to_pem("CERTIFICATE", &cert.der),
            chain: state.certs.chain_pem.clone(),
            superseded_serial: old,
        }),
    ))
}

/// A renewal with a key made here: the PKCS#12, and until when the
/// presented certificate still works.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenewedKeyResponse {
    pub(crate) device_id: i64,
    pub(crate) serial: String,
    /// RFC 3339.
    pub(crate) not_after: String,
    /// PKCS#12 (base64) with the new key, its certificate and the issuing CA.
    pub(crate) pkcs12: String,
    /// The PKCS#12's password: shown once, stored nowhere.
    pub(crate) password: String,
    /// The certificate presented for this call: it works until the new one
    /// is first used, and at the latest until `replaced_by`.
    pub(crate) replaces_serial: String,
    /// RFC 3339.
    pub(crate) replaced_by: String,
}

/// Renew the presented certificate with a key generated here, inside the
/// renewal window (the days before expiry in which it is announced). The
/// presented certificate keeps working until the new one is first used,
/// or until the grace period ends.
#[utoipa::path(post, path = "/api/v1/certificates/renew-pkcs12", tag = "certificates",
    responses((status = 201, body = RenewedKeyResponse), (status = 401, body = ErrorBody),
              (status = 409, description = "Not yet in the renewal window, or the certificate cannot be renewed", body = ErrorBody),
              (status = 429, description = "The device renewed too often within the last hour", body = ErrorBody)))]
pub(super) async fn renew_with_new_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<RenewedKeyResponse>)> {
    let r = renewal::renew(&state, &caller.requester).await?;
    Ok((
        StatusCode::CREATED,
        Json(RenewedKeyResponse {
            device_id: r.device.0,
            serial: r.serial.to_hex(),
            not_after: rfc3339(r.not_after),
            pkcs12: base64(&r.pkcs12),
            password: r.password,
            replaces_serial: r.replaces.to_hex(),
            replaced_by: rfc3339(r.replaced_by),
        }),
    ))
}
