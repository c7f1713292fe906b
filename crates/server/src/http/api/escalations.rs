//! Emergency reports, the escalation queue and its delivery log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_pki_domain::{DeviceId, Serial};
use serde::Deserialize;

use super::ApiResult;
use super::views::*;
use crate::http::forwarded::Client;
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery};
use crate::http::state::AppState;
use crate::http::strangers;
use connect_pki_ra::escalations;

/// Report one's own device lost (public: sign in with login ID and password).
/// The device's certificates are on hold before the response; an escalation
/// opens for the manager (business hours) or 行政管理課 (otherwise).
#[utoipa::path(post, path = "/api/v1/emergency", tag = "public", request_body = EmergencyBody,
    responses((status = 201, body = EmergencyCreated), (status = 400, body = ErrorBody),
              (status = 401, description = "Wrong login ID or password, or sign-in paused for this source or account (one answer for all)", body = ErrorBody),
              (status = 403, description = "Not your device, or account disabled", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Device already revoked or on hold", body = ErrorBody),
              (status = 429, description = "Rate limit per address", body = ErrorBody),
              (status = 503, description = "Crowded: too many requests without a client certificate inside; nothing was changed (Retry-After)", body = ErrorBody)))]
pub(super) async fn report_emergency(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<EmergencyBody>,
) -> ApiResult<(StatusCode, Json<EmergencyCreated>)> {
    let (e, held) = strangers::serve(&state, Some((&state.limits.emergency, client.addr)), move |state| async move {
        Ok(escalations::report_own(&state, &body.login_id, &body.password, DeviceId(body.device_id), client.addr)
            .await?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EmergencyCreated {
            escalation_id: e.id,
            held_serials: held.iter().map(Serial::to_hex).collect(),
            queue: e.queue,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EscalationsQuery {
    /// `open` (default: open and claimed) or `all`.
    status: Option<String>,
}

/// The escalation queue: most urgent first.
#[utoipa::path(get, path = "/api/v1/escalations", tag = "escalations", params(EscalationsQuery),
    responses((status = 200, body = Vec<EscalationView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_escalations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EscalationsQuery>,
) -> ApiResult<Json<Vec<EscalationView>>> {
    let open_only = q.status.as_deref() != Some("all");
    Ok(Json(escalations::list(&state, &caller.requester, open_only).await?.into_iter().map(Into::into).collect()))
}

/// Report a device lost for someone (manager: own facility; 行政管理課: a call taken).
#[utoipa::path(post, path = "/api/v1/escalations", tag = "escalations", request_body = EscalationBody,
    responses((status = 201, body = EscalationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn open_escalation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EscalationBody>,
) -> ApiResult<(StatusCode, Json<EscalationView>)> {
    let call = match (body.caller_name, body.callback_number) {
        (Some(caller), Some(callback)) => Some(connect_pki_store::PhoneCall { caller, callback }),
        (None, None) => None,
        _ => {
            return Err(connect_pki_domain::DomainError::Invalid {
                field: "caller_name",
                why: "give caller_name and callback_number together".into(),
            }
            .into());
        }
    };
    let device = DeviceId(body.device_id);
    let (e, held) = escalations::report_for(&state, &caller.requester, device, body.note, call).await?;
    let mut view = EscalationView::from(e);
    view.serials = Some(held.iter().map(Serial::to_hex).collect());
    Ok((StatusCode::CREATED, Json(view)))
}

/// Claim an escalation. Of two operators claiming at once, one wins; the other gets 409.
#[utoipa::path(post, path = "/api/v1/escalations/{id}/claim", tag = "escalations", request_body = ClaimBody, params(("id" = i64, Path)),
    responses((status = 200, body = EscalationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Already claimed or resolved", body = ErrorBody)))]
pub(super) async fn claim_escalation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<ClaimBody>,
) -> ApiResult<Json<EscalationView>> {
    Ok(Json(escalations::claim(&state, &caller.requester, id, &body.note).await?.into()))
}

/// Resolve a claimed escalation: `revoked` (keyCompromise), `released` (hold
/// lifted: manager in business hours or 行政管理課, never the reporter alone) or `rejected`.
#[utoipa::path(post, path = "/api/v1/escalations/{id}/resolve", tag = "escalations", request_body = ResolveBody, params(("id" = i64, Path)),
    responses((status = 200, body = EscalationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn resolve_escalation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> ApiResult<Json<EscalationView>> {
    let outcome = connect_pki_domain::escalation::Outcome::parse(&body.outcome)?;
    let (e, serials) = escalations::resolve(&state, &caller.requester, id, outcome, &body.note).await?;
    let mut view = EscalationView::from(e);
    view.serials = Some(serials.iter().map(Serial::to_hex).collect());
    Ok(Json(view))
}

/// One notification attempt series, as the delivery log keeps it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct NotificationView {
    id: i64,
    event: String,
    channel: connect_pki_domain::NotifyChannel,
    target: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

/// The delivery log of an escalation's notifications.
#[utoipa::path(get, path = "/api/v1/escalations/{id}/notifications", tag = "escalations", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<NotificationView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn escalation_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<NotificationView>>> {
    Ok(Json(
        escalations::notifications(&state, &caller.requester, id)
            .await?
            .into_iter()
            .map(|n| NotificationView {
                id: n.id,
                event: n.event,
                channel: n.channel,
                target: n.target,
                status: n.status,
                attempts: n.attempts,
                last_error: n.last_error,
                created_at: rfc3339(n.created_at),
                delivered_at: n.delivered_at.map(rfc3339),
            })
            .collect(),
    ))
}
