//! Read-only pages: the certificates that run out within the configured
//! window (`--expiry-notice-days`, 30 days by default), and the facility's
//! own audit trail.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use connect_pki_domain::expiry::days_left;
use connect_pki_store::AuditFilter;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{labelled_device, person};
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, cert_ja, local, page, role_ja, tokyo_day_start};
use crate::http::console::records::{Line, Names, line};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{audit, certificates, expiry, facilities};

/// Audit records on one page of the trail.
const TRAIL_PAGE: i64 = 200;

struct ExpiringRow {
    user_id: i64,
    person: String,
    device: String,
    serial: String,
    status_ja: &'static str,
    not_after: String,
    days_left: i64,
}

#[derive(Template)]
#[template(path = "console/expiring.html")]
struct ExpiringPage<'a> {
    ctx: &'a Ctx,
    days: i64,
    rows: Vec<ExpiringRow>,
}

pub(crate) async fn expiring(State(state): State<AppState>, Page { ctx, .. }: Page<section::Expiring>) -> PageResult {
    let requester = &ctx.caller.requester;
    let within = expiry::default_window(&state);
    let list = certificates::expiring(&state, requester, requester.actor.facility, within).await?;
    let now = state.clock.now();
    let rows = list
        .iter()
        .map(|e| ExpiringRow {
            user_id: e.user.id.0,
            person: person(&e.user),
            device: labelled_device(e.device, &e.device_label),
            serial: e.certificate.serial.to_hex(),
            status_ja: cert_ja(e.certificate.status),
            not_after: local(e.certificate.not_after),
            days_left: days_left(e.certificate.not_after, now),
        })
        .collect();
    Ok(page(StatusCode::OK, &ExpiringPage { ctx: &ctx, days: within.whole_days(), rows }))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TrailQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "console/trail.html")]
struct TrailPage<'a> {
    ctx: &'a Ctx,
    q: TrailQuery,
    /// (field, message) of a filter that does not parse.
    error: Option<(&'static str, String)>,
    rows: Vec<Line>,
    next: Option<String>,
}

impl TrailPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

/// A day typed in a filter, as the instant it starts in Japan (UTC+9, no
/// daylight saving time).
fn day(field: &'static str, raw: &str, plus_days: i64) -> Result<Option<OffsetDateTime>, (&'static str, String)> {
    tokyo_day_start(raw, plus_days).map_err(|_| (field, "日付を「2026-04-01」の形で指定してください。".to_string()))
}

fn filter_of(q: &TrailQuery, now: OffsetDateTime) -> Result<AuditFilter, (&'static str, String)> {
    let since = day("from", &q.from, 0)?.or(Some(now - time::Duration::days(30)));
    let until = day("to", &q.to, 1)?;
    let after_id = q.after.trim().parse::<i64>().unwrap_or(0).max(0);
    Ok(AuditFilter { facility: None, user: None, since, until, after_id, limit: TRAIL_PAGE, ..AuditFilter::default() })
}

pub(crate) async fn trail(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Trail>,
    Query(q): Query<TrailQuery>,
) -> PageResult {
    let requester = &ctx.caller.requester;
    let facility = requester.actor.facility;
    let filter = match filter_of(&q, state.clock.now()) {
        Ok(f) => f,
        Err(error) => {
            let p = TrailPage { ctx: &ctx, q, error: Some(error), rows: Vec::new(), next: None };
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    let result: Result<_, ApiError> = async {
        let records = audit::facility_trail(&state, requester, facility, &filter).await?;
        let people = audit::people_of_trail(&state, requester, facility, &Names::wanted(&records)).await?;
        let here = facilities::facility(&state, requester, facility).await?;
        Ok((records, people, here))
    }
    .await;
    let (records, people, here) = result?;
    // The city's staff by their role: the manager knows the office, not the clerk.
    let names = people.iter().map(|u| {
        let name = if u.facility == facility { person(u) } else { format!("{}の職員", role_ja(u.role)) };
        (u.id.0, name)
    });
    let names = Names::named(names, [(here.id.0, here.name)]);
    let rows: Vec<Line> = records.iter().map(|r| line(r, &names)).collect();
    let next = (rows.len() as i64 == TRAIL_PAGE).then(|| {
        let last = rows.last().map_or(0, |r| r.id);
        format!("/console/trail?from={}&to={}&after={last}", q.from.trim(), q.to.trim())
    });
    Ok(page(StatusCode::OK, &TrailPage { ctx: &ctx, q, error: None, rows, next }))
}
