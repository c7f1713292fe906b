//! 電話での届出: 行政管理課 takes a night-time call, finds the person or
//! device in any facility, records who called and a number to call back,
//! and holds the device (a report in the queue, worked like any other) or
//! revokes it at once, on the caller's behalf. Both are audited with the
//! caller's name and number.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use connect_pki_domain::escalation::Outcome;
use connect_pki_domain::{DeviceId, FacilityId};
use connect_pki_store::PhoneCall;
use serde::Deserialize;

use crate::http::console::kit::{Acting, Ctx, Fact, Page, PageResult, ResultPage, local, page, section};
use crate::http::console::manager::{UserRow, person};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{escalations, facilities, users};

const HERE: &str = "/console/phone";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(HERE, get(find)).route("/console/phone/devices/{id}", post(take))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FindQuery {
    #[serde(default)]
    q: String,
}

struct Found {
    facility: String,
    user: UserRow,
}

#[derive(Template)]
#[template(path = "console/phone.html")]
struct PhonePage<'a> {
    ctx: &'a Ctx,
    q: String,
    found: Vec<Found>,
    searched: bool,
}

async fn find(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Phone>,
    Query(f): Query<FindQuery>,
) -> PageResult {
    let requester = &ctx.caller.requester;
    let q = f.q.trim().to_string();
    let people = if q.is_empty() { Vec::new() } else { users::find(&state, requester, &q).await? };
    let names: Vec<(FacilityId, String)> =
        facilities::facilities(&state, requester).await?.into_iter().map(|f| (f.id, f.name)).collect();
    let found = people
        .iter()
        .map(|u| Found {
            facility: names.iter().find(|(id, _)| *id == u.user.facility).map(|(_, n)| n.clone()).unwrap_or_default(),
            user: UserRow::of(&u.user, &u.devices, None),
        })
        .collect();
    Ok(page(StatusCode::OK, &PhonePage { ctx: &ctx, searched: !q.is_empty(), q, found }))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallForm {
    #[serde(default)]
    caller: String,
    #[serde(default)]
    callback: String,
    #[serde(default)]
    note: String,
    /// `hold` (a report in the queue) or `revoke` (at once).
    #[serde(default)]
    action: String,
}

async fn take(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Acting { caller, form }: Acting<CallForm>,
) -> PageResult {
    let device = DeviceId(raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| ApiError::NoRoute(raw.clone()))?);
    let requester = &caller.requester;
    let call = PhoneCall { caller: form.caller.clone(), callback: form.callback.clone() };
    let (opened, held) = escalations::report_for(&state, requester, device, form.note.clone(), Some(call)).await?;
    // The report is open and the device on hold already: if the revoke
    // that follows fails, the page says so and where to finish it.
    let mut revoke_failed = None;
    if form.action == "revoke" {
        let note = "電話での届出により直ちに失効";
        let done: Result<_, ApiError> = async {
            escalations::claim(&state, requester, opened.id, note).await?;
            Ok(escalations::resolve(&state, requester, opened.id, Outcome::Revoked, note).await?)
        }
        .await;
        revoke_failed = done.err().map(|e| e.message_ja());
    }
    let revoke = form.action == "revoke" && revoke_failed.is_none();
    let (_, holder) = connect_pki_ra::devices::managed_device(&state, requester, device).await?;
    let ctx = Ctx::new(&state, caller, HERE);
    let facts: Vec<Fact> = vec![
        ("職員", person(&holder)),
        ("端末", format!("端末 {device}")),
        ("届出者（電話）", form.caller.clone()),
        ("折り返しの電話番号", form.callback.clone()),
        ("証明書", format!("{} 件", held.len())),
        ("受付番号", opened.id.to_string()),
        ("日時", local(state.clock.now())),
    ];
    let (title, message) = if revoke {
        ("失効しました", "この端末の証明書を失効しました。電子@連絡帳に接続できなくなりました。元に戻せません。施設管理者にお知らせが届きます。".to_string())
    } else if let Some(why) = revoke_failed {
        (
            "一時停止しましたが、失効はできませんでした",
            format!(
                "この端末の証明書は一時停止し、電子@連絡帳に接続できなくなっています。失効はできませんでした（{why}）。緊急届出の一覧で受付 {} を開き、失効してください。",
                opened.id
            ),
        )
    } else {
        ("一時停止し、届出を受け付けました", "この端末の証明書を一時停止しました。電子@連絡帳に接続できなくなりました。届出は緊急届出の一覧で対応を続けてください（失効・停止解除・却下）。".to_string())
    };
    Ok(page(StatusCode::OK, &ResultPage { ctx: &ctx, title, message, facts, back: HERE.into() }))
}
