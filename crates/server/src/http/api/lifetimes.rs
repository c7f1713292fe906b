//! A facility's certificate lifetimes (issue 26, item 4): read by whoever
//! may read the facility, set by 行政管理課. What applies is the facility's
//! own days where it has them, else the service's.

use axum::Json;
use axum::extract::State;
use connect_pki_domain::FacilityId;
use connect_pki_domain::lifetime::FacilityLifetimes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use super::views::ErrorBody;
use crate::http::identity::Caller;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::state::AppState;
use connect_pki_ra::facilities;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LifetimesView {
    /// The facility's own days for certificates installed by hand (null: the service's).
    pub(crate) by_hand_days: Option<u32>,
    /// The facility's own days for managed devices (EST; null: the service's).
    pub(crate) managed_days: Option<u32>,
    /// What applies now, by hand.
    pub(crate) effective_by_hand_days: u32,
    /// What applies now, managed.
    pub(crate) effective_managed_days: u32,
}

fn view(state: &AppState, own: FacilityLifetimes) -> LifetimesView {
    let service = state.settings.lifetimes;
    LifetimesView {
        by_hand_days: own.by_hand_days,
        managed_days: own.managed_days,
        effective_by_hand_days: service.days(own, false),
        effective_managed_days: service.days(own, true),
    }
}

/// Both lifetimes; null (or absent) returns a channel to the service's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LifetimesBody {
    #[serde(default)]
    pub(crate) by_hand_days: Option<i64>,
    #[serde(default)]
    pub(crate) managed_days: Option<i64>,
}

/// A facility's certificate lifetimes.
#[utoipa::path(get, path = "/api/v1/facilities/{id}/lifetimes", tag = "facilities", params(("id" = i64, Path)),
    responses((status = 200, body = LifetimesView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn read_lifetimes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LifetimesView>> {
    let own = facilities::lifetimes(&state, &caller.requester, FacilityId(id)).await?;
    Ok(Json(view(&state, own)))
}

/// Sets a facility's certificate lifetimes (行政管理課), each 1 to 398 days;
/// they apply to each device's next certificate.
#[utoipa::path(put, path = "/api/v1/facilities/{id}/lifetimes", tag = "facilities", params(("id" = i64, Path)),
    request_body = LifetimesBody,
    responses((status = 200, body = LifetimesView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_lifetimes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<LifetimesBody>,
) -> ApiResult<Json<LifetimesView>> {
    let own =
        facilities::set_lifetimes(&state, &caller.requester, FacilityId(id), body.by_hand_days, body.managed_days)
            .await?;
    Ok(Json(view(&state, own)))
}
