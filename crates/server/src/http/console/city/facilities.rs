//! The facilities for the city: state and counts for 福祉課 and 行政管理課;
//! suspend, resume and close for 行政管理課, each confirmed on a page that
//! says what it does to the facility's devices, with a result page after.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use connect_pki_domain::{FacilityId, FacilityStatus, Role};
use connect_pki_store::{FacilityCounts, FacilityRecord};

use super::{facility_status_ja, kind_ja};
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Acting, NoFields};
use crate::http::console::kit::{ConfirmPage, Ctx, Fact, PageResult, ResultPage, local, page};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::facilities;

const HERE: &str = "/console/facilities";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(HERE, get(list)).route("/console/facilities/{id}/{step}", get(confirm).post(change))
}

/// A step of a facility's lifecycle, as the pages name it.
#[derive(Clone, Copy)]
struct Step {
    path: &'static str,
    to: FacilityStatus,
    label: &'static str,
}

const STEPS: [Step; 3] = [
    Step { path: "suspend", to: FacilityStatus::Suspended, label: "一時停止する" },
    Step { path: "resume", to: FacilityStatus::Approved, label: "再開する" },
    Step { path: "close", to: FacilityStatus::Closed, label: "廃止する" },
];

fn step(path: &str) -> Result<Step, ApiError> {
    STEPS.into_iter().find(|s| s.path == path).ok_or_else(|| ApiError::NoRoute(path.into()))
}

struct Row {
    id: i64,
    name: String,
    /// 担当課, with its contact when the city's list names it.
    department: String,
    kind_ja: &'static str,
    status: &'static str,
    status_ja: &'static str,
    counts: FacilityCounts,
    /// The steps the facility's state allows, offered to 行政管理課.
    steps: Vec<Step>,
}

#[derive(Template)]
#[template(path = "console/facilities.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    rows: Vec<Row>,
    acts: bool,
}

async fn list(State(state): State<AppState>, Page { ctx, .. }: Page<section::Facilities>) -> PageResult {
    let all = facilities::facilities_with_counts(&state, &ctx.caller.requester).await?;
    // Only 行政管理課 is offered the buttons; the service decides either way.
    let acts = ctx.role() == Role::AdminDivision;
    let rows = all
        .into_iter()
        .map(|(f, counts)| Row {
            id: f.id.0,
            kind_ja: kind_ja(f.kind),
            status: f.status.as_str(),
            status_ja: facility_status_ja(f.status),
            steps: STEPS.into_iter().filter(|s| acts && f.status.transition(s.to).is_ok()).collect(),
            department: f.department.as_deref().filter(|d| !d.is_empty()).map_or_else(String::new, |d| {
                state.settings.department(d).map_or_else(|| d.to_string(), |known| known.named())
            }),
            name: f.name,
            counts,
        })
        .collect();
    Ok(page(StatusCode::OK, &ListPage { ctx: &ctx, rows, acts }))
}

/// What a step will do, in the words of the people it affects.
fn effect(step: Step, f: &FacilityRecord, counts: &FacilityCounts, own: bool) -> String {
    let mut text = match step.to {
        FacilityStatus::Suspended => format!(
            "この施設のすべての端末が、再開するまで直ちに使えなくなります。有効な証明書 {} 件を一時停止にし、OCSP と失効リストにも直ちに反映します。再開すると、この停止で止めた証明書だけが元に戻ります。",
            counts.valid
        ),
        FacilityStatus::Approved => "この施設の利用を再開します。施設の停止で止めた証明書が直ちに使えるようになります（紛失の届出で止めているもの、停止中に失効したものは戻りません）。".to_string(),
        FacilityStatus::Closed => format!(
            "この施設を廃止します。施設のすべての証明書（有効 {} 件・一時停止中 {} 件）を直ちに失効します。失効と廃止は取り消せません。",
            counts.valid, counts.on_hold
        ),
    };
    if own && step.to != FacilityStatus::Approved {
        text.push_str(" あなた自身の端末もこの施設（");
        text.push_str(&f.name);
        text.push_str("）に属するため、使えなくなります。");
    }
    text
}

fn facts(f: &FacilityRecord, counts: &FacilityCounts) -> Vec<Fact> {
    vec![
        ("施設", format!("{}（{}）", f.name, kind_ja(f.kind))),
        ("所在地", f.address.clone()),
        ("現在の状態", facility_status_ja(f.status).to_string()),
        ("職員", format!("{} 人", counts.users)),
        ("使用中の端末", format!("{} 台", counts.devices)),
        ("有効な証明書", format!("{} 件", counts.valid)),
        ("一時停止中の証明書", format!("{} 件", counts.on_hold)),
    ]
}

/// The facility the caller may change, with its counts.
async fn changeable(state: &AppState, ctx: &Ctx, id: i64) -> Result<(FacilityRecord, FacilityCounts), ApiError> {
    let f = facilities::changeable_facility(state, &ctx.caller.requester, FacilityId(id)).await?;
    let counts = facilities::facilities_with_counts(state, &ctx.caller.requester)
        .await?
        .into_iter()
        .find(|(g, _)| g.id == f.id)
        .map_or(FacilityCounts::empty(f.id), |(_, c)| c);
    Ok((f, counts))
}

async fn confirm(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Facilities>,
    Path((id, path)): Path<(i64, String)>,
) -> PageResult {
    let step = step(&path)?;
    let (f, counts) = changeable(&state, &ctx, id).await?;
    let own = f.id == ctx.caller.requester.actor.facility;
    let confirm = ConfirmPage {
        ctx: &ctx,
        title: match step.to {
            FacilityStatus::Suspended => "施設の一時停止",
            FacilityStatus::Approved => "施設の再開",
            FacilityStatus::Closed => "施設の廃止",
        },
        effect: effect(step, &f, &counts, own),
        facts: facts(&f, &counts),
        action: format!("/console/facilities/{id}/{}", step.path),
        fields: Vec::new(),
        button: step.label,
        back: HERE.into(),
    };
    Ok(page(StatusCode::OK, &confirm))
}

async fn change(
    State(state): State<AppState>,
    Path((id, path)): Path<(i64, String)>,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let ctx = Ctx::new(&state, caller, HERE);
    let step = step(&path)?;
    let change = facilities::change_status(&state, &ctx.caller.requester, FacilityId(id), step.to).await?;
    let f = &change.facility;
    let when = local(state.clock.now());
    let message = match step.to {
        FacilityStatus::Suspended => {
            format!("施設「{}」を一時停止しました（{when}）。施設の端末は再開するまで使えません。", f.name)
        }
        FacilityStatus::Approved => format!("施設「{}」の利用を再開しました（{when}）。", f.name),
        FacilityStatus::Closed => {
            format!("施設「{}」を廃止しました（{when}）。施設の証明書はすべて失効しました。", f.name)
        }
    };
    let mut facts = vec![("施設", f.name.clone()), ("新しい状態", facility_status_ja(f.status).to_string())];
    facts.push(match step.to {
        FacilityStatus::Suspended => ("一時停止にした証明書", format!("{} 件", change.held.len())),
        FacilityStatus::Approved => ("使えるように戻した証明書", format!("{} 件", change.released.len())),
        FacilityStatus::Closed => ("失効した証明書", format!("{} 件", change.revoked.len())),
    });
    facts.push(("日時", when.clone()));
    let done =
        ResultPage { ctx: &ctx, title: "施設の状態を変更しました", message, facts, back: HERE.into() };
    Ok(page(StatusCode::OK, &done))
}
