//! Revoke, hold, release, lost device, retirement (and its cancellation) and deletion.

use axum::Json;
use axum::extract::State;
use connect_pki_domain::certificate::Change;
use connect_pki_domain::{DeviceId, DeviceStatus, Serial, UserId};

use super::views::*;
use super::{ApiResult, parse_time};
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiJsonOrEmpty, ApiPath};
use crate::http::state::AppState;
use connect_pki_ra::Requester;
use connect_pki_ra::users::Retirement;
use connect_pki_ra::{certificates, devices, users};

pub(super) async fn change_certificate(
    state: AppState,
    caller: &Requester,
    serial: String,
    change: Change,
) -> ApiResult<Json<RevocationView>> {
    let serial: Serial = serial.parse()?;
    Ok(Json(certificates::change(&state, caller, &serial, change).await?.into()))
}

/// Revoke a certificate. Effective before the response: the mTLS listener,
/// OCSP and the CRL already refuse it. Revoking a revoked certificate reports
/// its existing state.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "certificates", request_body = RevokeBody,
    params(("serial" = String, Path, pattern = "^:*([0-9A-Fa-f]:*[0-9A-Fa-f]:*){1,20}$", description = "1 to 20 bytes in hex, as the API shows it (lowercase); uppercase and openssl's `:` separators are accepted")),
    responses((status = 200, body = RevocationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Superseded by a certificate still in force, named in the message", body = ErrorBody),
              (status = 422, description = "Unknown or disallowed reason", body = ErrorBody)))]
pub(super) async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> ApiResult<Json<RevocationView>> {
    change_certificate(state, &caller.requester, serial, Change::Revoke(body.reason)).await
}

/// Put a certificate on hold (certificateHold) for a loss not yet confirmed.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/hold", tag = "certificates", params(("serial" = String, Path, pattern = "^:*([0-9A-Fa-f]:*[0-9A-Fa-f]:*){1,20}$", description = "1 to 20 bytes in hex, as the API shows it (lowercase); uppercase and openssl's `:` separators are accepted")),
    responses((status = 200, body = RevocationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Already revoked", body = ErrorBody),
              (status = 422, description = "Not a serial", body = ErrorBody)))]
pub(super) async fn hold_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<RevocationView>> {
    change_certificate(state, &caller.requester, serial, Change::Hold).await
}

/// Release a hold (removeFromCRL): the certificate works again. A revoked
/// certificate cannot be released, nor one held by an emergency report whose
/// escalation is open or claimed: resolving the escalation lifts that hold.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/release", tag = "certificates", params(("serial" = String, Path, pattern = "^:*([0-9A-Fa-f]:*[0-9A-Fa-f]:*){1,20}$", description = "1 to 20 bytes in hex, as the API shows it (lowercase); uppercase and openssl's `:` separators are accepted")),
    responses((status = 200, body = RevocationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Revoked for good, or held by an open escalation (held_by_escalation), a suspension (held_by_suspension) or 行政管理課 (held_by_city)", body = ErrorBody),
              (status = 422, description = "Not a serial", body = ErrorBody)))]
pub(super) async fn release_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<RevocationView>> {
    change_certificate(state, &caller.requester, serial, Change::Release).await
}

/// Report a device lost: every valid or held certificate of it is revoked (keyCompromise) at once.
#[utoipa::path(post, path = "/api/v1/devices/{id}/lost", tag = "certificates", params(("id" = i64, Path)),
    responses((status = 200, body = LostView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn report_lost(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LostView>> {
    let lost = devices::lost(&state, &caller.requester, DeviceId(id)).await?;
    Ok(Json(LostView {
        device_id: id,
        status: DeviceStatus::Lost,
        revoked_serials: lost.revoked.iter().map(Serial::to_hex).collect(),
        instances: lost.everywhere.map(InstancesView::from),
    }))
}

/// Retire a user now (account disabled, every certificate revoked with
/// affiliationChanged, in one transaction) or at a given time.
#[utoipa::path(post, path = "/api/v1/users/{id}/retire", tag = "users", request_body = RetireBody, params(("id" = i64, Path)),
    responses((status = 200, body = RetireView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn retire_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<RetireBody>,
) -> ApiResult<Json<RetireView>> {
    // No body (or `{}`) retires now.
    let at = parse_time("at", body.at.as_deref())?;
    let delete = body.delete_account.unwrap_or(false);
    let view = match users::retire(&state, &caller.requester, UserId(id), at, delete).await? {
        Retirement::Done { revoked } => RetireView {
            user_id: id,
            status: "retired".into(),
            retire_at: None,
            revoked_serials: revoked.iter().map(Serial::to_hex).collect(),
        },
        Retirement::Scheduled { at } => RetireView {
            user_id: id,
            status: "scheduled".into(),
            retire_at: Some(rfc3339(at)),
            revoked_serials: Vec::new(),
        },
    };
    Ok(Json(view))
}

/// Cancel a scheduled retirement before it runs (whoever may retire the
/// user). Once it has run the user is retired and the call answers 409.
#[utoipa::path(delete, path = "/api/v1/users/{id}/retirement", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = RetirementCancelledView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "No retirement scheduled, or it has already run", body = ErrorBody)))]
pub(super) async fn cancel_retirement(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RetirementCancelledView>> {
    let at = users::cancel_retirement(&state, &caller.requester, UserId(id)).await?;
    Ok(Json(RetirementCancelledView { user_id: id, cancelled_retire_at: rfc3339(at) }))
}

/// Delete a retired user: personal data removed, the audit trail kept.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Not retired yet", body = ErrorBody)))]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(users::delete(&state, &caller.requester, UserId(id)).await?.into()))
}
