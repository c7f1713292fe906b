//! 行政管理課's view of the relying parties: who checks our certificates,
//! how fresh their CRL is, and a warning for any whose CRL predates the
//! newest revocation (it would still accept a revoked device).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, local, page};
use crate::http::state::AppState;
use connect_pki_ra::sightings;

const HERE: &str = "/console/relying-parties";

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(show))
}

struct Row {
    name: String,
    queries: i64,
    last_ocsp: String,
    crls: Vec<String>,
    warning: Option<String>,
}

#[derive(Template)]
#[template(path = "console/relying_parties.html")]
struct RelyingPartiesPage<'a> {
    ctx: &'a Ctx,
    rows: Vec<Row>,
    stale: usize,
    retention_days: i64,
}

fn ca_ja(generation: i64) -> String {
    if generation <= 1 { "発行CA".into() } else { format!("発行CA {generation}") }
}

async fn show(State(state): State<AppState>, Page { ctx, .. }: Page<section::RelyingParties>) -> PageResult {
    let parties = sightings::relying_parties(&state, &ctx.caller.requester).await?;
    let rows: Vec<Row> = parties
        .into_iter()
        .map(|p| {
            let warning = p
                .crls
                .iter()
                .filter_map(|c| {
                    let at = c.missing_revocation_at?;
                    Some(format!(
                        "{}の CRL（番号 {}）が {} の失効より古い",
                        ca_ja(c.ca_generation),
                        c.crl_number,
                        local(at)
                    ))
                })
                .collect::<Vec<_>>();
            Row {
                queries: p.ocsp_queries,
                last_ocsp: p.last_ocsp_at.map(local).unwrap_or_else(|| "なし".into()),
                crls: p
                    .crls
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: 番号 {}（{} 発行、最後の取得 {}）",
                            ca_ja(c.ca_generation),
                            c.crl_number,
                            local(c.this_update),
                            local(c.last_download_at)
                        )
                    })
                    .collect(),
                warning: (!warning.is_empty()).then(|| warning.join("。")),
                name: p.party,
            }
        })
        .collect();
    let stale = rows.iter().filter(|r| r.warning.is_some()).count();
    let retention_days = state.settings.relying.retention.whole_days();
    Ok(page(StatusCode::OK, &RelyingPartiesPage { ctx: &ctx, rows, stale, retention_days }))
}
