//! The console on the mTLS listener (`/console/`, Japanese): the escalation
//! queue for 行政管理課 (all facilities) and facility managers (their own),
//! with claim and resolve buttons, the person/device/certificates at a
//! glance, and the history. Plain HTML forms plus a small script served from
//! here: no front-end build. What every page shares is in [`kit`].

mod city;
mod incident;
pub(crate) mod kit;
pub mod manager;
pub(crate) mod records;
mod verify;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use connect_pki_domain::escalation::Outcome;
use connect_pki_domain::escalation::Queue;
use connect_pki_domain::{CertStatus, EscalationStatus};
use connect_pki_store::Conflict as StoreConflict;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::http::console::kit::Acting;
use crate::http::console::kit::Page;
use crate::http::console::kit::PageResult;
use crate::http::console::kit::section;
use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::http::state::AppState;
use connect_pki_ra::{Conflict, ServiceError, escalations};
pub(crate) use kit::new_csrf_key;
use kit::{Ctx, cert_ja, local, page, refuse};

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/console/", get(show))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../../../templates/console.css")) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../../templates/console.js")) }),
        )
        .route("/console/terms", post(accept_terms))
        .route("/console/escalations/{id}/claim", post(claim))
        .route("/console/escalations/{id}/resolve", post(resolve))
        .with_state(state.clone())
        .merge(manager::router(state.clone()))
        .merge(city::router(state.clone()))
        .merge(incident::routes().with_state(state.clone()))
        .merge(verify::routes().with_state(state.clone()))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

struct CertRow {
    serial: String,
    status_ja: &'static str,
    not_after: String,
}

struct Row {
    id: i64,
    status: String,
    status_ja: &'static str,
    queue_ja: &'static str,
    channel_ja: &'static str,
    urgency: &'static str,
    facility: String,
    person: String,
    login: String,
    device_id: i64,
    device_label: String,
    claimed_by: Option<String>,
    created_local: String,
    created_unix: i64,
    age: String,
    sla_deadline_unix: Option<i64>,
    sla_left: String,
    hold_deadline_unix: Option<i64>,
    hold_left: String,
    hold_near: bool,
    note: String,
    certificates: Vec<CertRow>,
}

struct Done {
    id: i64,
    facility: String,
    person: String,
    outcome_ja: &'static str,
    resolved_local: String,
    note: String,
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    ctx: &'a Ctx,
    flash: Option<String>,
    error: Option<String>,
    open: Vec<Row>,
    resolved: Vec<Done>,
    /// A manager's account review (棚卸し) is due.
    review_due: bool,
}

#[derive(Template)]
#[template(path = "terms_accept.html")]
struct TermsPage<'a> {
    ctx: &'a Ctx,
    error: Option<String>,
    version: &'a str,
    text: &'a str,
}

fn span(seconds: i64) -> String {
    let (neg, s) = (seconds < 0, seconds.unsigned_abs());
    let text = if s >= 3600 {
        format!("{}時間{}分", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}分{}秒", s / 60, s % 60)
    };
    if neg { format!("超過 {text}") } else { text }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    done: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Queue>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    // Staff and 福祉課 work no queue: their menu starts on another page.
    if !ctx.nav.iter().any(|item| item.href == "/console/")
        && let Some(first) = ctx.nav.first()
    {
        return Ok(Redirect::to(first.href).into_response());
    }
    let flash = q.done.as_deref().and_then(|d| d.split_once(':')).map(|(what, id)| match what {
        "terms" => format!("利用規約（{} 版）への同意を記録しました。", state.settings.terms.version),
        "claimed" => format!("受付 {id} を担当しました。"),
        "revoked" => format!("受付 {id}：端末の証明書を失効しました。"),
        "released" => format!("受付 {id}：一時停止を解除しました。"),
        "rejected" => format!("受付 {id} を却下し、届出による一時停止を解除しました。"),
        _ => format!("受付 {id} を更新しました。"),
    });
    Ok(render(&state, &ctx, flash, None, StatusCode::OK).await)
}

async fn render(
    state: &AppState,
    ctx: &Ctx,
    flash: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match build(state, ctx, flash, error).await {
        Ok(p) => page(status, &p),
        Err(e) => refuse(e),
    }
}

async fn build<'a>(
    state: &AppState,
    ctx: &'a Ctx,
    flash: Option<String>,
    error: Option<String>,
) -> Result<ConsolePage<'a>, ApiError> {
    let caller = &ctx.caller;
    let now = state.clock.now();
    let mut open = Vec::new();
    let mut resolved = Vec::new();
    for entry in escalations::queue(state, &caller.requester).await? {
        if entry.escalation.status != EscalationStatus::Resolved {
            open.push(open_row(entry, now, state.settings.hold_limit));
        } else if resolved.len() < 20 {
            resolved.push(done_row(entry));
        }
    }
    let facility = caller.requester.actor.facility;
    let review_due = caller.requester.actor.role == connect_pki_domain::Role::FacilityManager
        && connect_pki_ra::review::of_facility(state, &caller.requester, facility).await.is_ok_and(|r| r.due);
    Ok(ConsolePage { ctx, flash, error, open, resolved, review_due })
}

fn person(user: &connect_pki_store::UserRecord) -> String {
    user.display_name.clone().unwrap_or_else(|| format!("職員 {}（削除済み）", user.id))
}

fn done_row(entry: escalations::QueueEntry) -> Done {
    let e = entry.escalation;
    Done {
        id: e.id,
        facility: entry.facility_name,
        person: person(&entry.user),
        outcome_ja: match e.outcome.as_deref() {
            Some("revoked") => "失効",
            Some("released") => "停止解除",
            _ => "却下",
        },
        resolved_local: e.resolved_at.map(local).unwrap_or_default(),
        note: e.resolution_note.clone().unwrap_or_default(),
    }
}

fn open_row(entry: escalations::QueueEntry, now: OffsetDateTime, hold_limit: time::Duration) -> Row {
    let escalations::QueueEntry { escalation: e, device, user, facility_name: facility, claimed_by } = entry;
    // A report that took over an older hold (its facility's suspension's)
    // counts from the report, as the hold limit does (`domain::hold`).
    let held_since = device
        .certificates
        .iter()
        .filter(|c| c.status == CertStatus::OnHold)
        .filter_map(|c| c.revoked_at)
        .min()
        .map(|t| t.max(e.created_at));
    let hold_deadline = held_since.map(|t| t + hold_limit);
    let hold_left = hold_deadline.map_or(0, |d| (d - now).whole_seconds());
    let sla_left = e.escalate_at.filter(|_| e.queue == Queue::Manager).map_or(0, |d| (d - now).whole_seconds());
    Row {
        id: e.id,
        status_ja: if e.status == EscalationStatus::Open { "未対応" } else { "対応中" },
        status: e.status.to_string(),
        queue_ja: if e.queue == Queue::AdminDivision { "行政管理課" } else { "施設管理者" },
        channel_ja: match e.channel.as_str() {
            "self" => "本人による届出",
            "manager" => "施設管理者による届出",
            _ => "行政管理課が電話で受付",
        },
        urgency: if e.status == EscalationStatus::Open && e.queue == Queue::AdminDivision {
            "urgent"
        } else if e.status == EscalationStatus::Open {
            "soon"
        } else {
            ""
        },
        facility,
        login: user.login_id.clone().unwrap_or_default(),
        person: person(&user),
        device_id: device.id.0,
        device_label: device.label.clone(),
        claimed_by,
        created_local: local(e.created_at),
        created_unix: e.created_at.unix_timestamp(),
        age: span((now - e.created_at).whole_seconds()),
        sla_deadline_unix: e.escalate_at.filter(|_| e.queue == Queue::Manager).map(|t| t.unix_timestamp()),
        sla_left: span(sla_left),
        hold_deadline_unix: hold_deadline.map(|t| t.unix_timestamp()),
        hold_left: span(hold_left),
        hold_near: hold_deadline.is_some() && hold_left < 12 * 3600,
        note: e.note.clone(),
        certificates: device
            .certificates
            .iter()
            .map(|c| CertRow { serial: c.serial.to_hex(), status_ja: cert_ja(c.status), not_after: local(c.not_after) })
            .collect(),
    }
}

/// The terms of use to accept instead of the page asked for, when the
/// caller is a facility manager who has not accepted the version in force.
pub(crate) async fn terms_gate(state: &AppState, caller: &Caller, error: Option<String>) -> Option<Response> {
    let terms = match connect_pki_ra::terms::pending(state, &caller.requester).await {
        Ok(t) => t?,
        Err(e) => return Some(refuse(e.into())),
    };
    let ctx = Ctx { nav: Vec::new(), ..Ctx::new(state, caller.clone(), "") };
    let p = TermsPage { ctx: &ctx, error, version: &terms.version, text: &terms.text };
    Some(page(StatusCode::OK, &p))
}

#[derive(Debug, Deserialize)]
struct TermsForm {
    #[serde(default)]
    version: String,
}

async fn accept_terms(State(state): State<AppState>, Acting { caller, form: f }: Acting<TermsForm>) -> PageResult {
    match connect_pki_ra::terms::accept(&state, &caller.requester, &f.version).await {
        Ok(()) => Ok(Redirect::to("/console/?done=terms:accepted").into_response()),
        Err(e) => {
            let message = "利用規約が更新されています。表示中の版を確認のうえ、もう一度同意してください。".to_string();
            let e = ApiError::from(e);
            Ok(terms_gate(&state, &caller, Some(message)).await.unwrap_or_else(|| refuse(e)))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    outcome: String,
}

fn conflict_ja(e: &ApiError) -> String {
    match e {
        ApiError::Service(ServiceError::Conflict(Conflict::Record(StoreConflict::AlreadyClaimed { .. }))) => {
            "この届出はすでに別の担当者が対応しています。画面を更新してください。".into()
        }
        ApiError::Service(ServiceError::NotAllowed { .. }) => {
            "この操作は許可されていません（停止の解除と却下は施設管理者（開庁時間内）または行政管理課のみ、届出者や端末の持ち主本人は不可）。".into()
        }
        other => other.message_ja(),
    }
}

/// After an action: back to the queue with a confirmation, or the queue with the error.
async fn after<T>(
    state: &AppState,
    caller: &Caller,
    result: Result<T, ApiError>,
    done: impl FnOnce(T) -> String,
) -> Response {
    match result {
        Ok(v) => Redirect::to(&format!("/console/?done={}", done(v))).into_response(),
        Err(e) => {
            let ctx = Ctx::new(state, caller.clone(), "/console/");
            render(state, &ctx, None, Some(conflict_ja(&e)), e.status()).await
        }
    }
}

async fn claim(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Acting { caller, form: f }: Acting<ActionForm>,
) -> PageResult {
    let result = escalations::claim(&state, &caller.requester, id, &f.note).await.map_err(ApiError::from);
    Ok(after(&state, &caller, result, |_| format!("claimed:{id}")).await)
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Acting { caller, form: f }: Acting<ActionForm>,
) -> PageResult {
    let result: Result<_, ApiError> = async {
        let outcome = Outcome::parse(&f.outcome)?;
        escalations::resolve(&state, &caller.requester, id, outcome, &f.note).await?;
        Ok(outcome)
    }
    .await;
    Ok(after(&state, &caller, result, |outcome| format!("{}:{id}", outcome.as_str())).await)
}
