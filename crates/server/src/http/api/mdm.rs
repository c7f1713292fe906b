//! A device-management system's calls (issue 26, item 3): a one-time
//! challenge for a person's device (its client certificate), and a signed
//! webhook reporting a device retired, wiped or lost (no certificate: the
//! systems that send webhooks rarely present one; the HMAC under the
//! system's secret, the timestamp and the replay window stand in). The
//! secret itself is read by 行政管理課.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use connect_pki_domain::{Serial, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use super::views::{ErrorBody, rfc3339};
use crate::http::error::ApiError;
use crate::http::forwarded::Client;
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::state::AppState;
use crate::http::strangers;
use connect_pki_ra::mdm;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeBody {
    /// The person whose device is to be enrolled.
    pub(crate) user_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChallengeView {
    pub(crate) user_id: i64,
    /// Single use, bound to the person: the EST `simpleenroll` password.
    pub(crate) challenge: String,
    /// RFC 3339.
    pub(crate) expires_at: String,
}

/// A one-time enrollment challenge for a person of the facility this
/// device-management system serves.
#[utoipa::path(post, path = "/api/v1/mdm/challenges", tag = "mdm", request_body = ChallengeBody,
    responses((status = 201, body = ChallengeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn issue_challenge(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChallengeBody>,
) -> ApiResult<(StatusCode, Json<ChallengeView>)> {
    let c = mdm::challenge(&state, &caller.requester, UserId(body.user_id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChallengeView { user_id: body.user_id, challenge: c.code, expires_at: rfc3339(c.expires_at) }),
    ))
}

/// An Apple configuration profile for a person's device, for the
/// device-management system to push: a SCEP payload with a new one-time
/// challenge for that person (as `POST /api/v1/mdm/challenges` makes) and
/// the city's root. The device makes its own key and enrolls at `/scep`.
#[utoipa::path(post, path = "/api/v1/mdm/scep-profiles", tag = "mdm", request_body = ChallengeBody,
    responses((status = 201, description = "application/x-apple-aspen-config"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn issue_scep_profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChallengeBody>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use connect_pki_ca::profile::{ProfileNames, ScepEnrollment, scep_mobileconfig};
    let c = mdm::challenge(&state, &caller.requester, UserId(body.user_id)).await?;
    let names = ProfileNames {
        display_name: "電子@連絡帳 端末証明書 (SCEP)",
        organization: "電子@連絡帳 CONNECT 証明書サービス",
        identifier: "jp.connect-pki",
        device: body.user_id,
    };
    let url = format!("{}/scep", state.ca.profile().public_url());
    let scep = ScepEnrollment { url: &url, challenge: &c.code, login: c.login_id.as_deref(), user: body.user_id };
    let profile = scep_mobileconfig(&names, &scep, &state.certs.root_der).map_err(|e| ApiError::Service(e.into()))?;
    let disposition = format!("attachment; filename=\"scep-user{}.mobileconfig\"", body.user_id);
    Ok((
        StatusCode::CREATED,
        [
            (axum::http::header::CONTENT_TYPE, "application/x-apple-aspen-config".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        profile,
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookSecretView {
    /// HMAC-SHA256 key (the text as given) of the account's webhooks.
    pub(crate) secret: String,
}

/// The webhook secret of a device-management account (行政管理課).
#[utoipa::path(get, path = "/api/v1/users/{id}/webhook-secret", tag = "mdm", params(("id" = i64, Path)),
    responses((status = 200, body = WebhookSecretView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn read_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<WebhookSecretView>> {
    Ok(Json(WebhookSecretView { secret: mdm::webhook_secret(&state, &caller.requester, UserId(id)).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceEventBody {
    /// `retired`, `wiped` (cessationOfOperation) or `lost` (keyCompromise).
    pub(crate) event: String,
    /// The serial (hex) of a certificate of the device, as installed.
    pub(crate) serial: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeviceEventView {
    pub(crate) device_id: i64,
    /// Every certificate of the device revoked by this event (hex).
    pub(crate) revoked: Vec<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ApiError::Service(connect_pki_ra::ServiceError::NotAuthenticated(
            connect_pki_ra::error::NotAuthenticated::BadSignature("missing header"),
        ))
    })
}

/// A device retired, wiped or lost, reported by the device-management
/// system `X-Connect-Mdm` (its account id) with `X-Connect-Timestamp` (Unix
/// seconds, within 5 minutes) and `X-Connect-Signature` (`sha256=` hex
/// HMAC-SHA256 of `"{timestamp}.{body}"` under its secret). The device's
/// certificates are revoked before the answer; the same signature again
/// within the window is refused (409).
#[utoipa::path(post, path = "/api/v1/mdm/events", tag = "public", request_body = DeviceEventBody,
    responses((status = 200, body = DeviceEventView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn report_device_event(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<DeviceEventView>> {
    let sender = header(&headers, "x-connect-mdm")?.trim().parse::<i64>().map_err(|_| {
        ApiError::Service(connect_pki_ra::ServiceError::NotAuthenticated(
            connect_pki_ra::error::NotAuthenticated::BadSignature("bad sender"),
        ))
    })?;
    let (timestamp, signature) =
        (header(&headers, "x-connect-timestamp")?.to_string(), header(&headers, "x-connect-signature")?.to_string());
    let done = strangers::serve(&state, Some((&state.limits.emergency, client.addr)), move |state| async move {
        let signed = mdm::Signed { sender: UserId(sender), timestamp: &timestamp, signature: &signature, body: &body };
        let from = mdm::verify(&state, &signed).await?;
        // Only a verified body is read.
        let event: DeviceEventBody =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("malformed JSON body: {e}")))?;
        let serial = event.serial.trim().parse::<Serial>().map_err(ApiError::from)?;
        let kind = mdm::Event::parse(&event.event)?;
        let (device, revoked) = mdm::device_event(&state, &from, &signed, kind, &serial).await?;
        Ok(DeviceEventView { device_id: device.0, revoked: revoked.iter().map(Serial::to_hex).collect() })
    });
    Ok(Json(done.await?))
}
