//! The JSON API, all of it on the HTTPS listener. The public routes need no
//! certificate (applying, enrolling, the emergency report) and are refused
//! on the plain listener; everything else starts from a [`Caller`]. The
//! OpenAPI document is generated from these handlers.

pub(crate) mod audit_csv;
mod doc;
mod escalations;
mod lifetimes;
mod mdm;
mod people;
mod relying;
mod renewal;
mod review;
mod status;
pub mod views;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use connect_pki_domain::{Action, DeviceId, FacilityId, FacilityStatus, Role, Serial, UserId, authorize};
use connect_pki_store::AuditFilter;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::http::forwarded::Client;
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;
use crate::http::strangers;
use connect_pki_ra::Requester;
use connect_pki_ra::enrollment::{EnrollRequest, Enrolled};
use connect_pki_ra::{applications, audit, certificates, devices, enrollment, expiry, facilities, users};
use escalations::*;
use lifetimes::*;
use mdm::*;
use people::*;
use relying::*;
use renewal::*;
use review::*;
use status::*;
use views::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "connect-pki",
        description = "Certificate lifecycle of the CONNECT case-record system. All routes are served on the HTTPS \
                       listener. Routes tagged `public` need no client certificate (on the plain HTTP listener they \
                       answer 403 https_required without reading the body); for all others the caller is identified \
                       by its client certificate.",
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "public", description = "No client certificate; HTTPS only"),
        (name = "identity"), (name = "applications"), (name = "facilities"), (name = "users"),
        (name = "certificates"), (name = "escalations"), (name = "audit"),
        (name = "mdm", description = "Device-management systems: one-time challenges, signed device events"),
    ),
)]
struct ApiDoc;

/// The API routers: (public listener, mTLS listener), and the OpenAPI document.
pub(crate) fn routers(state: AppState) -> (Router, Router, Arc<String>) {
    let (public, public_doc) = OpenApiRouter::new()
        .routes(routes!(submit_application))
        .routes(routes!(application_status))
        .routes(routes!(terms_of_use))
        .routes(routes!(enroll))
        .routes(routes!(report_emergency))
        .routes(routes!(report_device_event))
        .with_state(state.clone())
        .split_for_parts();
    let (mtls, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(whoami))
        .routes(routes!(openapi_json))
        .routes(routes!(list_applications))
        .routes(routes!(approve_application))
        .routes(routes!(reject_application))
        .routes(routes!(list_facilities))
        .routes(routes!(show_facility))
        .routes(routes!(suspend_facility))
        .routes(routes!(resume_facility))
        .routes(routes!(close_facility))
        .routes(routes!(register_user, list_users))
        .routes(routes!(issue_enrollment_code))
        .routes(routes!(show_device))
        .routes(routes!(show_certificate))
        .routes(routes!(list_expiring))
        .routes(routes!(certificate_use))
        .routes(routes!(certificate_incident))
        .routes(routes!(list_relying_parties))
        .routes(routes!(renew_certificate))
        .routes(routes!(renew_with_new_key))
        .routes(routes!(transfer_user))
        .routes(routes!(reset_emergency_password))
        .routes(routes!(read_review, confirm_review))
        .routes(routes!(reissue_manager_code))
        .routes(routes!(find_people))
        .routes(routes!(read_lifetimes, set_lifetimes))
        .routes(routes!(issue_challenge))
        .routes(routes!(issue_scep_profile))
        .routes(routes!(read_webhook_secret))
        .routes(routes!(read_audit))
        .routes(routes!(revoke_certificate))
        .routes(routes!(hold_certificate))
        .routes(routes!(release_certificate))
        .routes(routes!(report_lost))
        .routes(routes!(retire_user))
        .routes(routes!(cancel_retirement))
        .routes(routes!(delete_user, edit_user))
        .routes(routes!(list_escalations, open_escalation))
        .routes(routes!(claim_escalation))
        .routes(routes!(resolve_escalation))
        .routes(routes!(escalation_notifications))
        .with_state(state.clone())
        .split_for_parts();
    doc.merge(public_doc);
    doc::add_transport_responses(&mut doc);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "client_certificate",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(
            "mutual TLS: a client certificate issued by connect-pki (OpenAPI 3.0 cannot express mTLS; this entry documents it)",
        )).build()),
    );
    let json = Arc::new(doc.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    let mtls = mtls.layer(axum::Extension(ApiDocJson(json.clone())));
    (public, mtls, json)
}

#[derive(Clone)]
struct ApiDocJson(Arc<String>);

type ApiResult<T> = Result<T, ApiError>;

/// The caller's identity as the service sees it.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn whoami(caller: Caller) -> ApiResult<Json<WhoAmI>> {
    authorize(&caller.requester.actor, Action::WhoAmI)?;
    let id = caller.identity;
    Ok(Json(WhoAmI {
        user_id: id.user.id.0,
        login_id: id.user.login_id,
        display_name: id.user.display_name,
        role: id.user.role,
        facility_id: id.facility.id.0,
        facility_name: id.facility.name,
        device_id: id.device.0,
        serial: id.certificate.serial.to_hex(),
        not_after: rfc3339(id.certificate.not_after),
    }))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "identity",
    responses((status = 200, description = "OpenAPI 3.1 document"), (status = 401, body = ErrorBody)))]
async fn openapi_json(_caller: Caller, axum::Extension(doc): axum::Extension<ApiDocJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.as_str().to_owned()).into_response()
}

/// Apply for a facility to use CONNECT.
#[utoipa::path(post, path = "/api/v1/applications", tag = "public", request_body = ApplicationBody,
    responses(
        (status = 201, body = ApplicationCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The manager's login ID is taken", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "Crowded: too many requests without a client certificate inside; nothing was changed (Retry-After)", body = ErrorBody)))]
async fn submit_application(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<ApplicationBody>,
) -> ApiResult<(StatusCode, Json<ApplicationCreated>)> {
    let app = strangers::serve(&state, Some((&state.limits.apply, client.addr)), move |state| async move {
        Ok(applications::submit(&state, body.into(), &client.addr.to_string()).await?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApplicationCreated {
            id: app.id,
            status: app.status,
            status_url: format!("/api/v1/application-status/{}", app.status_token),
            status_page: format!("/apply/status/{}", app.status_token),
        }),
    ))
}

/// The terms of use (利用規約) in force: an application must name this
/// version in `terms_version`.
#[utoipa::path(get, path = "/api/v1/terms", tag = "public",
    responses((status = 200, body = TermsOfUse),
        (status = 403, body = ErrorBody, description = "https_required: asked over plain HTTP")))]
async fn terms_of_use(State(state): State<AppState>) -> Json<TermsOfUse> {
    let t = &state.settings.terms;
    Json(TermsOfUse { version: t.version.clone(), text: t.text.clone() })
}

/// The decision on an application, by the token from its status URL.
#[utoipa::path(get, path = "/api/v1/application-status/{token}", tag = "public",
    params(("token" = String, Path)),
    responses((status = 200, body = ApplicationDecision), (status = 404, body = ErrorBody),
              (status = 503, description = "Crowded: too many requests without a client certificate inside; nothing was changed (Retry-After)", body = ErrorBody)))]
async fn application_status(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Json<ApplicationDecision>> {
    let app =
        strangers::serve(&state, None, move |state| async move { Ok(applications::by_token(&state, &token).await?) })
            .await?;
    Ok(Json(ApplicationDecision {
        id: app.id,
        name: app.form.name,
        status: app.status,
        created_at: rfc3339(app.created_at),
        decided_at: app.decided_at.map(rfc3339),
        decision_reason: app.decision_reason,
    }))
}

/// Redeem an enrollment code with a CSR or for a generated key.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "public", request_body = EnrollBody,
    responses(
        (status = 201, body = EnrollResponse),
        (status = 400, description = "Malformed JSON or an unreadable/forged CSR", body = ErrorBody),
        (status = 401, description = "Wrong code: a wrong secret or an unknown id, whatever state the code is in (one answer for all)", body = ErrorBody),
        (status = 403, description = "Code locked (right secret); account or facility not active", body = ErrorBody),
        (status = 409, description = "Code already used or expired (right secret)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Key not allowed, CSR names someone else, password missing or too short", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "Crowded: too many requests without a client certificate inside; nothing was changed (Retry-After)", body = ErrorBody)))]
async fn enroll(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<EnrollBody>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let req = EnrollRequest {
        code: body.code,
        csr: body.csr,
        generate_key: body.generate_key,
        key_type: body.key_type,
        password: body.password,
        device_label: body.device_label,
        channel: connect_pki_domain::enrollment::Channel::ByHand,
    };
    let enrolled = strangers::serve(&state, Some((&state.limits.enroll, client.addr)), move |state| async move {
        Ok(enrollment::enroll(&state, req, &client.addr.to_string()).await?)
    });
    let out = match enrolled.await? {
        Enrolled::Certificate { device, serial, certificate_pem, chain_pem } => EnrollResponse {
            device_id: device.0,
            serial: serial.to_hex(),
            certificate: Some(certificate_pem),
            chain: Some(chain_pem),
            pkcs12: None,
            pkcs12_password: None,
        },
        Enrolled::Pkcs12 { device, serial, pkcs12, password } => EnrollResponse {
            device_id: device.0,
            serial: serial.to_hex(),
            certificate: None,
            chain: None,
            pkcs12: Some(enrollment::base64(&pkcs12)),
            pkcs12_password: Some(password),
        },
        // Only a managed channel (EST) gets a bare key.
        Enrolled::Key { .. } => return Err(ApiError::from(anyhow::anyhow!("a JSON enrollment returned a bare key"))),
    };
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ApplicationsQuery {
    /// `pending`, `approved` or `rejected`; all when absent.
    status: Option<String>,
}

/// Facility applications (福祉課, 行政管理課).
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(ApplicationsQuery),
    responses((status = 200, body = Vec<ApplicationView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_applications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ApplicationsQuery>,
) -> ApiResult<Json<Vec<ApplicationView>>> {
    let apps = applications::list(&state, &caller.requester, q.status.as_deref()).await?;
    Ok(Json(apps.into_iter().map(Into::into).collect()))
}

/// Approve: creates the facility, its manager and the manager's enrollment code.
#[utoipa::path(post, path = "/api/v1/applications/{id}/approve", tag = "applications",
    params(("id" = i64, Path, description = "application number")),
    responses((status = 200, body = ApprovalView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Already decided, or the login ID was taken meanwhile", body = ErrorBody)))]
async fn approve_application(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ApprovalView>> {
    let (approval, code, expires_at) = applications::approve(&state, &caller.requester, id).await?;
    Ok(Json(ApprovalView {
        facility_id: approval.facility.id.0,
        manager_user_id: approval.manager.id.0,
        enrollment_code: CodeView { code, expires_at: rfc3339(expires_at), user_id: approval.manager.id.0 },
    }))
}

/// Reject with a reason the applicant sees.
#[utoipa::path(post, path = "/api/v1/applications/{id}/reject", tag = "applications", request_body = RejectBody,
    params(("id" = i64, Path, description = "application number")),
    responses((status = 200, body = ApplicationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reject_application(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RejectBody>,
) -> ApiResult<Json<ApplicationView>> {
    Ok(Json(applications::reject(&state, &caller.requester, id, &body.reason).await?.into()))
}

/// Facilities: all for the city, one's own for a manager.
#[utoipa::path(get, path = "/api/v1/facilities", tag = "facilities",
    responses((status = 200, body = Vec<FacilityView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_facilities(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<FacilityView>>> {
    Ok(Json(facilities::facilities(&state, &caller.requester).await?.into_iter().map(Into::into).collect()))
}

/// One facility.
#[utoipa::path(get, path = "/api/v1/facilities/{id}", tag = "facilities", params(("id" = i64, Path)),
    responses((status = 200, body = FacilityView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn show_facility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<FacilityView>> {
    Ok(Json(facilities::facility(&state, &caller.requester, FacilityId(id)).await?.into()))
}

async fn change_facility(
    state: AppState,
    caller: &Requester,
    id: i64,
    to: FacilityStatus,
) -> ApiResult<Json<FacilityChangeView>> {
    let change = facilities::change_status(&state, caller, FacilityId(id), to).await?;
    Ok(Json(FacilityChangeView {
        facility: change.facility.into(),
        revoked_serials: change.revoked.iter().map(Serial::to_hex).collect(),
        held_serials: change.held.iter().map(Serial::to_hex).collect(),
        released_serials: change.released.iter().map(Serial::to_hex).collect(),
    }))
}

/// Suspend a facility (行政管理課): every valid certificate of its users goes on hold (certificateHold) —
/// refused at our handshake, `revoked` in OCSP and listed in the CRL — before the response.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/suspend", tag = "facilities", params(("id" = i64, Path)),
    responses((status = 200, body = FacilityChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn suspend_facility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<FacilityChangeView>> {
    change_facility(state, &caller.requester, id, FacilityStatus::Suspended).await
}

/// Resume a suspended facility (行政管理課): the holds the suspension placed are released, except those an
/// open emergency report keeps; certificates revoked meanwhile stay revoked.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/resume", tag = "facilities", params(("id" = i64, Path)),
    responses((status = 200, body = FacilityChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume_facility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<FacilityChangeView>> {
    change_facility(state, &caller.requester, id, FacilityStatus::Approved).await
}

/// Close a facility for good: every certificate revoked (cessationOfOperation) (行政管理課).
#[utoipa::path(post, path = "/api/v1/facilities/{id}/close", tag = "facilities", params(("id" = i64, Path)),
    responses((status = 200, body = FacilityChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn close_facility(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<FacilityChangeView>> {
    change_facility(state, &caller.requester, id, FacilityStatus::Closed).await
}

/// Register a user in a facility (its manager, or 行政管理課).
#[utoipa::path(post, path = "/api/v1/facilities/{id}/users", tag = "users", request_body = UserBody, params(("id" = i64, Path)),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Login ID taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let r = users::Registration {
        display_name: body.display_name,
        login_id: body.login_id,
        email: body.email,
        role: body.role.unwrap_or(Role::Staff),
    };
    let user = users::register(&state, &caller.requester, FacilityId(id), r).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Users of a facility with their devices and certificates.
#[utoipa::path(get, path = "/api/v1/facilities/{id}/users", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<UserWithDevicesView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<UserWithDevicesView>>> {
    Ok(Json(users::users(&state, &caller.requester, FacilityId(id)).await?.into_iter().map(Into::into).collect()))
}

/// Issue an enrollment code for a new device of a user (shown once).
#[utoipa::path(post, path = "/api/v1/users/{id}/enrollment-codes", tag = "users", params(("id" = i64, Path)),
    responses((status = 201, body = CodeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "User retired or deleted", body = ErrorBody)))]
async fn issue_enrollment_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<CodeView>)> {
    let (code, expires_at) = users::issue_code(&state, &caller.requester, UserId(id)).await?;
    Ok((StatusCode::CREATED, Json(CodeView { code, expires_at: rfc3339(expires_at), user_id: id })))
}

/// A device and its certificates.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "certificates", params(("id" = i64, Path)),
    responses((status = 200, body = DeviceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn show_device(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DeviceView>> {
    Ok(Json(devices::device(&state, &caller.requester, DeviceId(id)).await?.into()))
}

/// One certificate by serial (lowercase hex).
#[utoipa::path(get, path = "/api/v1/certificates/{serial}", tag = "certificates", params(("serial" = String, Path, pattern = "^:*([0-9A-Fa-f]:*[0-9A-Fa-f]:*){1,20}$", description = "1 to 20 bytes in hex, as the API shows it (lowercase); uppercase and openssl's `:` separators are accepted")),
    responses((status = 200, body = CertificateView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn show_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<CertificateView>> {
    let serial: Serial = serial.parse()?;
    Ok(Json(certificates::certificate(&state, &caller.requester, &serial).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExpiringQuery {
    /// How many days ahead to look, 1 to 400 [default: the service's
    /// `--expiry-notice-days`, 30].
    #[param(minimum = 1, maximum = 400)]
    days: Option<u32>,
}

/// Device certificates in force (valid or on hold) that run out within the
/// window, soonest first: a facility manager's own facility, every facility
/// for 行政管理課.
#[utoipa::path(get, path = "/api/v1/certificates/expiring", tag = "certificates", params(ExpiringQuery),
    responses((status = 200, body = ExpiringList),
              (status = 400, description = "days is not a whole number from 1 to 400", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_expiring(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExpiringQuery>,
) -> ApiResult<Json<ExpiringList>> {
    let within = match q.days {
        None => expiry::default_window(&state),
        Some(d) => connect_pki_domain::expiry::window(d).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let now = state.clock.now();
    let list = expiry::list(&state, &caller.requester, within).await?;
    Ok(Json(ExpiringList {
        within_days: within.whole_days(),
        certificates: list.into_iter().map(|e| ExpiringView::of(e, now)).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    facility_id: Option<i64>,
    user_id: Option<i64>,
    /// RFC 3339; records at or after.
    since: Option<String>,
    /// RFC 3339; records before.
    until: Option<String>,
    /// Paging: records with a greater id.
    after_id: Option<i64>,
    /// At most this many (default 500, at most 10 000).
    limit: Option<i64>,
    /// An action (`certificate.revoke`) or a family of them (`certificate`).
    action: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn parse_time(field: &'static str, v: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| {
            ApiError::from(connect_pki_domain::DomainError::Invalid {
                field,
                why: format!("{s:?} is not RFC 3339: {e}"),
            })
        })
    })
    .transpose()
}

/// The audit log (行政管理課), as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "JSON, or CSV with format=csv",
               content((Vec<AuditView> = "application/json"), (String = "text/csv"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn read_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        facility: q.facility_id.map(FacilityId),
        user: q.user_id.map(UserId),
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        after_id: q.after_id.unwrap_or(0),
        limit: q.limit.unwrap_or(500),
        action: q.action.filter(|a| !a.is_empty()),
        ..AuditFilter::default()
    };
    let records = audit::list(&state, &caller.requester, &filter).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(records.into_iter().map(AuditView::from).collect::<Vec<_>>()).into_response()),
        Some("csv") => audit_csv::response(records, "audit.csv"),
        Some(other) => Err(ApiError::from(connect_pki_domain::DomainError::Invalid {
            field: "format",
            why: format!("{other:?} is not one of json, csv"),
        })),
    }
}
