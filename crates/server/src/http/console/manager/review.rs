//! アカウントの棚卸し: a manager sees the people and devices of their
//! facility nobody has used for a while and, once a period, confirms they
//! looked (retiring or stopping from each person's page); 行政管理課 sees
//! the same across facilities.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use connect_pki_domain::Role;
use connect_pki_store::UnusedDevice;
use serde::Deserialize;

use crate::http::console::kit::{Acting, Ctx, NoFields, Page, PageResult, local, page, section};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{facilities, review};

struct Line {
    user: i64,
    person: String,
    facility: String,
    device: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "console/review.html")]
struct ReviewPage<'a> {
    ctx: &'a Ctx,
    lines: Vec<Line>,
    days: i64,
    /// For a manager: the last confirmation and whether one is due.
    last: Option<String>,
    due: bool,
    city: bool,
    done: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

fn line(d: &UnusedDevice, facility: String) -> Line {
    let person = match (&d.display_name, &d.login_id) {
        (Some(n), Some(l)) => format!("{n}（{l}）"),
        (Some(n), None) => n.clone(),
        _ => format!("職員 {}", d.user),
    };
    let device = if d.label.is_empty() {
        format!("端末 {}", d.device)
    } else {
        format!("端末 {}「{}」", d.device, d.label)
    };
    let last_used =
        d.last_used.map_or_else(|| format!("一度も使われていません（登録 {}）", local(d.created_at)), local);
    Line { user: d.user.0, person, facility, device, last_used }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Review>,
    Query(q): Query<Done>,
) -> PageResult {
    let requester = &ctx.caller.requester;
    let days = state.settings.review_unused_after.whole_days();
    let city = ctx.role() == Role::AdminDivision;
    let p = if city {
        let names = facilities::facilities(&state, requester).await?;
        let name = |f: connect_pki_domain::FacilityId| {
            names.iter().find(|n| n.id == f).map(|n| n.name.clone()).unwrap_or_default()
        };
        let lines = review::everywhere(&state, requester).await?.iter().map(|d| line(d, name(d.facility))).collect();
        ReviewPage { ctx: &ctx, lines, days, last: None, due: false, city, done: false }
    } else {
        let r = review::of_facility(&state, requester, requester.actor.facility).await?;
        let lines = r.unused.iter().map(|d| line(d, String::new())).collect();
        let done = q.done.is_some();
        ReviewPage { ctx: &ctx, lines, days, last: r.last.map(local), due: r.due, city, done }
    };
    Ok(page(StatusCode::OK, &p))
}

pub(crate) async fn confirm(State(state): State<AppState>, Acting { caller, .. }: Acting<NoFields>) -> PageResult {
    let requester = &caller.requester;
    review::confirm(&state, requester, requester.actor.facility).await.map_err(ApiError::from)?;
    Ok(Redirect::to("/console/review?done=1").into_response())
}
