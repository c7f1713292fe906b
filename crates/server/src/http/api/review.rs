//! The API side of pages issue 25 added: the account review (棚卸し) and
//! its confirmation, a manager's code reissued by the city (a slip lost in
//! the post), and finding anyone across facilities (a call taken at night).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_pki_domain::{FacilityId, UserId};
use connect_pki_store::UnusedDevice;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use super::views::*;
use crate::http::identity::Caller;
use crate::http::json::{ApiPath, ApiQuery};
use crate::http::state::AppState;
use connect_pki_ra::{facilities, review, users};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnusedView {
    pub(crate) device_id: i64,
    pub(crate) user_id: i64,
    pub(crate) facility_id: i64,
    /// RFC 3339; absent: never used since the device was registered.
    pub(crate) last_used: Option<String>,
    pub(crate) registered_at: String,
}

impl From<&UnusedDevice> for UnusedView {
    fn from(d: &UnusedDevice) -> Self {
        UnusedView {
            device_id: d.device.0,
            user_id: d.user.0,
            facility_id: d.facility.0,
            last_used: d.last_used.map(rfc3339),
            registered_at: rfc3339(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReviewView {
    pub(crate) facility_id: i64,
    pub(crate) unused: Vec<UnusedView>,
    /// RFC 3339; absent: never reviewed.
    pub(crate) last_reviewed_at: Option<String>,
    pub(crate) due: bool,
}

/// A facility's account review: devices unused for `review_unused_days`,
/// the last confirmation, whether one is due (its manager, or 行政管理課).
#[utoipa::path(get, path = "/api/v1/facilities/{id}/review", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = ReviewView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn read_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReviewView>> {
    let r = review::of_facility(&state, &caller.requester, FacilityId(id)).await?;
    Ok(Json(ReviewView {
        facility_id: id,
        unused: r.unused.iter().map(Into::into).collect(),
        last_reviewed_at: r.last.map(rfc3339),
        due: r.due,
    }))
}

/// Confirm the facility's account review (audited), as 「この一覧を確認しました」 does.
#[utoipa::path(post, path = "/api/v1/facilities/{id}/review", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = ReviewView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn confirm_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReviewView>> {
    review::confirm(&state, &caller.requester, FacilityId(id)).await?;
    read_review(State(state), caller, ApiPath(id)).await
}

/// A new code for a facility's manager, lasting as long as a mailed slip
/// (福祉課 or 行政管理課).
#[utoipa::path(post, path = "/api/v1/facilities/{id}/managers/{user}/enrollment-codes", tag = "users",
    params(("id" = i64, Path), ("user" = i64, Path)),
    responses((status = 201, body = CodeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn reissue_manager_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user)): ApiPath<(i64, i64)>,
) -> ApiResult<(StatusCode, Json<CodeView>)> {
    let (code, expires_at) =
        facilities::reissue_manager_code(&state, &caller.requester, FacilityId(id), UserId(user)).await?;
    Ok((StatusCode::CREATED, Json(CodeView { code, expires_at: rfc3339(expires_at), user_id: user })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeopleQuery {
    /// Part of a name, login ID or device label.
    q: String,
}

/// Find people of any facility by name, login ID or device label (行政管理課).
#[utoipa::path(get, path = "/api/v1/people", tag = "users", params(PeopleQuery),
    responses((status = 200, body = Vec<UserWithDevicesView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn find_people(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PeopleQuery>,
) -> ApiResult<Json<Vec<UserWithDevicesView>>> {
    Ok(Json(users::find(&state, &caller.requester, &q.q).await?.into_iter().map(Into::into).collect()))
}
