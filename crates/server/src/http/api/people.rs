//! Changing a person's record: name, e-mail address and role (by whoever
//! may register them), and 異動 to another facility (行政管理課).

use axum::Json;
use axum::extract::State;
use connect_pki_domain::{FacilityId, Role, Serial, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use super::views::*;
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::state::AppState;
use connect_pki_ra::users;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    pub(crate) display_name: Option<String>,
    pub(crate) email: Option<String>,
    /// `staff` or `facility_manager`.
    #[schema(value_type = Option<String>)]
    pub(crate) role: Option<Role>,
}

/// Change a person's name, e-mail address or role (職員 ↔ 施設管理者); the
/// facility's last active manager keeps the role unless 行政管理課 changes it.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = EditBody, params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Retired or deleted, or the facility's last active manager", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(super) async fn edit_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<UserView>> {
    let edit = users::Edit { display_name: body.display_name, email: body.email, role: body.role };
    Ok(Json(users::edit(&state, &caller.requester, UserId(id), edit).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The facility the person moves to (approved).
    pub(crate) facility_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TransferView {
    pub(crate) user_id: i64,
    pub(crate) facility_id: i64,
    /// Revoked (affiliationChanged) before this answer: the person enrolls
    /// again at the new facility with a code from its manager.
    pub(crate) revoked_serials: Vec<String>,
}

/// 異動: move a person to another facility (行政管理課). Every certificate
/// of theirs is revoked before the answer, the account and login ID stay.
#[utoipa::path(post, path = "/api/v1/users/{id}/transfer", tag = "users", request_body = TransferBody, params(("id" = i64, Path)),
    responses((status = 200, body = TransferView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Retired or deleted, the same or an inactive facility", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(super) async fn transfer_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TransferBody>,
) -> ApiResult<Json<TransferView>> {
    let revoked = users::transfer(&state, &caller.requester, UserId(id), FacilityId(body.facility_id)).await?;
    Ok(Json(TransferView {
        user_id: id,
        facility_id: body.facility_id,
        revoked_serials: revoked.iter().map(Serial::to_hex).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasswordView {
    pub(crate) user_id: i64,
    /// The new password for the emergency report page: shown once, stored
    /// only as its hash. It is not the 電子@連絡帳 password.
    pub(crate) password: String,
}

/// Set a new password for a person's emergency reports (their manager, or
/// 行政管理課), when they forgot it; their failed sign-ins are forgotten.
#[utoipa::path(post, path = "/api/v1/users/{id}/emergency-password", tag = "users", params(("id" = i64, Path)),
    responses((status = 201, body = PasswordView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Retired or deleted", body = ErrorBody)))]
pub(super) async fn reset_emergency_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(axum::http::StatusCode, Json<PasswordView>)> {
    let password = users::reset_password(&state, &caller.requester, UserId(id)).await?;
    Ok((axum::http::StatusCode::CREATED, Json(PasswordView { user_id: id, password })))
}
