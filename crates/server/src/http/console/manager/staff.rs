//! The staff list with search, and one person's page: devices,
//! certificates, the scheduled retirement, and the steps each can take.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use connect_pki_domain::UserId;
use serde::Deserialize;

use super::UserRow;
use crate::http::console::kit::Numbered;
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, page};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::users;

#[derive(Template)]
#[template(path = "console/staff.html")]
struct StaffPage<'a> {
    ctx: &'a Ctx,
    q: String,
    users: Vec<UserRow>,
    total: usize,
    /// 退職済み・未削除: retired accounts whose deletion is still to do.
    undeleted: Vec<(i64, String)>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
}

/// Whether `u` matches a search by name or login ID (case-insensitive,
/// ignoring spaces people type between family and given names).
fn matches(u: &UserRow, q: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    let q = norm(q);
    q.is_empty() || norm(&u.name).contains(&q) || norm(&u.login).contains(&q)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let requester = &ctx.caller.requester;
    let facility = requester.actor.facility;
    let result: Result<_, ApiError> = async {
        let users = users::users(&state, requester, facility).await?;
        let scheduled: HashMap<UserId, _> =
            users::scheduled_retirements(&state, requester, facility).await?.into_iter().collect();
        Ok(users.iter().map(|u| UserRow::of(&u.user, &u.devices, scheduled.get(&u.user.id).copied())).collect())
    }
    .await;
    let all: Vec<UserRow> = result?;
    let total = all.len();
    let undeleted = all.iter().filter(|u| u.retired).map(|u| (u.id, u.name.clone())).collect();
    let users = all.into_iter().filter(|u| matches(u, &q.q)).collect();
    Ok(page(StatusCode::OK, &StaffPage { ctx: &ctx, q: q.q.trim().to_string(), users, total, undeleted }))
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage<'a> {
    ctx: &'a Ctx,
    flash: Option<String>,
    user: UserRow,
    email: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    done: Option<String>,
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
    Query(q): Query<DetailQuery>,
) -> PageResult {
    let id = UserId(id);
    let requester = &ctx.caller.requester;
    let result: Result<_, ApiError> = async {
        let u = users::managed_user_devices(&state, requester, id).await?;
        let scheduled = users::scheduled_retirements(&state, requester, u.user.facility).await?;
        let at = scheduled.into_iter().find(|(user, _)| *user == id).map(|(_, at)| at);
        Ok((UserRow::of(&u.user, &u.devices, at), u.user.email.clone().unwrap_or_default()))
    }
    .await;
    let (user, email) = result?;
    let flash = q.done.as_deref().map(|d| match d {
        "registered" => "職員を登録しました。端末を登録するには、登録コードを発行して本人に渡してください。",
        "edited" => "職員の情報を変更しました。",
        _ => "更新しました。",
    });
    Ok(page(StatusCode::OK, &UserPage { ctx: &ctx, flash: flash.map(str::to_string), user, email }))
}
