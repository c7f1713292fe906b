//! 行政管理課's view of certificate lifetimes: the CA certificates' remaining
//! life, and the device certificates of every facility that run out within
//! the configured window, with the notices already e-mailed about them.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use connect_pki_domain::expiry::{FINAL_NOTICE_DAYS, days_left};
use connect_pki_store::NoticeSubject;

use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, cert_ja, local, page};
use crate::http::console::manager::{labelled_device, person};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::expiry;

const HERE: &str = "/console/certificates/expiring";

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(show))
}

struct CaRow {
    label: &'static str,
    name: String,
    serial: String,
    not_after: String,
    left: String,
    /// Within the notice window: shown as a warning.
    soon: bool,
}

struct Row {
    facility_id: i64,
    facility: String,
    person: String,
    device: String,
    serial: String,
    status_ja: &'static str,
    not_after: String,
    days_left: i64,
    urgent: bool,
    notices: String,
}

#[derive(Template)]
#[template(path = "console/city_expiring.html")]
struct CityExpiringPage<'a> {
    ctx: &'a Ctx,
    days: i64,
    ca: Vec<CaRow>,
    rows: Vec<Row>,
    facilities: usize,
}

/// A long remaining life in words: "3650 日（約 10 年）".
fn life(days: i64) -> String {
    if days >= 365 { format!("{days} 日（約 {} 年）", days / 365) } else { format!("{days} 日") }
}

fn notices_ja(sent: &[u32]) -> String {
    if sent.is_empty() {
        "未送信".into()
    } else {
        sent.iter().map(|d| format!("{d}日前")).collect::<Vec<_>>().join("・") + " 送信済み"
    }
}

async fn show(State(state): State<AppState>, Page { ctx, .. }: Page<section::CityExpiring>) -> PageResult {
    let requester = &ctx.caller.requester;
    let within = expiry::default_window(&state);
    // The CA certificates first: they are read only by those who may read
    // every facility's list, so a refusal shows neither.
    let result: Result<_, ApiError> = async {
        let ca = expiry::ca_status(&state, requester).await?;
        let list = expiry::list(&state, requester, within).await?;
        Ok((ca, list))
    }
    .await;
    let (ca, list) = result?;
    let now = state.clock.now();
    let ca = ca
        .into_iter()
        .map(|c| CaRow {
            label: match c.subject {
                NoticeSubject::Root => "ルートCA",
                _ => "発行CA（端末の証明書を発行）",
            },
            serial: c.serial.to_hex(),
            not_after: local(c.not_after),
            left: life(days_left(c.not_after, now)),
            soon: c.not_after <= now + within,
            name: c.name,
        })
        .collect();
    let mut facilities: Vec<i64> = list.iter().map(|e| e.facility.id.0).collect();
    facilities.sort_unstable();
    facilities.dedup();
    let rows = list
        .iter()
        .map(|e| {
            let left = days_left(e.certificate.not_after, now);
            Row {
                facility_id: e.facility.id.0,
                facility: e.facility.name.clone(),
                person: person(&e.user),
                device: labelled_device(e.device, &e.device_label),
                serial: e.certificate.serial.to_hex(),
                status_ja: cert_ja(e.certificate.status),
                not_after: local(e.certificate.not_after),
                days_left: left,
                urgent: left < i64::from(FINAL_NOTICE_DAYS),
                notices: notices_ja(&e.notices),
            }
        })
        .collect();
    let p = CityExpiringPage { ctx: &ctx, days: within.whole_days(), ca, rows, facilities: facilities.len() };
    Ok(page(StatusCode::OK, &p))
}
