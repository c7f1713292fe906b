//! Retirement now or on a date, cancelling a scheduled one before it runs,
//! and deleting a retired person's personal data.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use connect_pki_domain::{CertStatus, UserId};
use connect_pki_store::UserWithDevices;
use serde::Deserialize;
use time::OffsetDateTime;

use super::person;
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Acting, NoFields, Numbered};
use crate::http::console::kit::{ConfirmPage, Ctx, Fact, PageResult, ResultPage, local, page, refuse};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::users;
use connect_pki_ra::users::Retirement;

fn back(id: UserId) -> String {
    format!("/console/staff/{id}")
}

/// The person and what they hold, as a confirmation names them.
fn facts_of(u: &UserWithDevices) -> Vec<Fact> {
    let active: Vec<String> = u
        .devices
        .iter()
        .filter(|d| d.status == connect_pki_domain::DeviceStatus::Active)
        .map(super::device_name)
        .collect();
    let devices = if active.is_empty() { "なし".to_string() } else { active.join("、") };
    vec![("職員", person(&u.user)), ("使用中の端末", devices)]
}

#[derive(Template)]
#[template(path = "console/retire.html")]
struct RetirePage<'a> {
    ctx: &'a Ctx,
    user_id: i64,
    facts: Vec<Fact>,
    on: String,
    error: Option<String>,
}

async fn retire_page(
    state: &AppState,
    ctx: &Ctx,
    id: UserId,
    on: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match users::managed_user_devices(state, &ctx.caller.requester, id).await {
        Ok(u) => page(status, &RetirePage { ctx, user_id: id.0, facts: facts_of(&u), on, error }),
        Err(e) => refuse(e.into()),
    }
}

pub(crate) async fn confirm_retire(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let id = UserId(id);
    Ok(retire_page(&state, &ctx, id, String::new(), None, StatusCode::OK).await)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetireForm {
    /// The last working day (退職日, YYYY-MM-DD, from a date field); empty: now.
    #[serde(default)]
    on: String,
    /// `yes`: delete the account with the retirement (アカウント削除).
    #[serde(default)]
    delete: String,
}

/// The instant a retirement "on" its 退職日 runs: the end of that day in
/// Japan (the next day's 0:00, UTC+9 all year: Japan has no daylight saving
/// time), so the person works their last day. Today is allowed (it ends
/// tonight); an earlier day would retire at once by mistake.
fn end_of_day(on: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(on.trim(), &format)
        .map_err(|_| "日付を「2026-04-01」の形で指定してください。".to_string())?;
    let at = day.next_day().ok_or("日付を確認してください。")?.midnight().assume_offset(time::macros::offset!(+9));
    if at <= now {
        return Err("今日以降の日付を指定してください（今すぐ退職にする場合は、日付を空欄にします）。".into());
    }
    Ok(at)
}

pub(crate) async fn retire(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, form: f }: Acting<RetireForm>,
) -> PageResult {
    let id = UserId(id);
    let now = state.clock.now();
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let at = if f.on.trim().is_empty() {
        None
    } else {
        match end_of_day(&f.on, now) {
            Ok(at) => Some(at),
            Err(msg) => {
                return Ok(
                    retire_page(&state, &ctx, id, f.on.clone(), Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
                );
            }
        }
    };
    let requester = &ctx.caller.requester;
    let result: Result<_, ApiError> = async {
        let before = users::managed_user_devices(&state, requester, id).await?;
        Ok((before, users::retire(&state, requester, id, at, f.delete == "yes").await?))
    }
    .await;
    let (before, done) = result?;
    let mut facts = facts_of(&before);
    facts.push(("日時", local(now)));
    let (title, message) = match done {
        Retirement::Done { revoked } => {
            facts.push(("失効した証明書", format!("{} 件", revoked.len())));
            let deleted = if f.delete == "yes" {
                "アカウントも削除し、ログインIDは再び使えるようになりました。"
            } else {
                ""
            };
            (
                "退職の手続きをしました",
                format!("{} さんは退職となり、すべての端末が直ちに使えなくなりました。{deleted}", person(&before.user)),
            )
        }
        Retirement::Scheduled { at } => {
            facts.push(("退職予定", local(at)));
            (
                "退職を予定しました",
                format!(
                    "{} に退職となり、すべての端末が使えなくなります{}。それまでは職員のページから取り消せます。",
                    local(at),
                    if f.delete == "yes" { "（同時にアカウントも削除します）" } else { "" }
                ),
            )
        }
    };
    Ok(page(StatusCode::OK, &ResultPage { ctx: &ctx, title, message, facts, back: back(id) }))
}

pub(crate) async fn confirm_cancel(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let id = UserId(id);
    let requester = &ctx.caller.requester;
    let result: Result<_, ApiError> = async {
        let u = users::managed_user_devices(&state, requester, id).await?;
        let at = users::scheduled_retirements(&state, requester, u.user.facility).await?;
        Ok((u, at.into_iter().find(|(user, _)| *user == id).map(|(_, at)| at)))
    }
    .await;
    let (u, at) = result?;
    let mut facts = facts_of(&u);
    facts.push(("退職予定", at.map_or_else(|| "なし".into(), local)));
    let p = ConfirmPage {
        ctx: &ctx,
        title: "退職の予定の取り消し",
        facts,
        effect: "予定していた退職を取り消します。この方は引き続き端末を使えます。".into(),
        action: format!("/console/staff/{id}/retirement/cancel"),
        fields: Vec::new(),
        button: "退職の予定を取り消す",
        back: back(id),
    };
    Ok(page(StatusCode::OK, &p))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let id = UserId(id);
    let result: Result<_, ApiError> = async {
        let u = users::managed_user_devices(&state, &caller.requester, id).await?;
        Ok((u, users::cancel_retirement(&state, &caller.requester, id).await?))
    }
    .await;
    let (u, at) = result?;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let mut facts = facts_of(&u);
    facts.push(("取り消した退職予定", local(at)));
    facts.push(("日時", local(state.clock.now())));
    let message = format!("{} さんの退職の予定を取り消しました。引き続き端末を使えます。", person(&u.user));
    Ok(page(
        StatusCode::OK,
        &ResultPage { ctx: &ctx, title: "退職の予定を取り消しました", message, facts, back: back(id) },
    ))
}

pub(crate) async fn confirm_delete(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let id = UserId(id);
    let u = users::managed_user_devices(&state, &ctx.caller.requester, id).await?;
    let certs = u.devices.iter().flat_map(|d| &d.certificates).filter(|c| c.status == CertStatus::Valid).count();
    let mut facts = facts_of(&u);
    facts.push(("有効な証明書", format!("{certs} 件")));
    let p = ConfirmPage {
        ctx: &ctx,
        title: "個人情報の削除",
        facts,
        effect: "この方の氏名・ログインID・メールアドレス・端末名を直ちに削除します。元に戻せません。操作の記録（監査ログ）は残ります。".into(),
        action: format!("/console/staff/{id}/delete"),
        fields: Vec::new(),
        button: "個人情報を削除する",
        back: back(id),
    };
    Ok(page(StatusCode::OK, &p))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let id = UserId(id);
    let result: Result<_, ApiError> = async {
        let before = users::managed_user(&state, &caller.requester, id).await?;
        Ok((before, users::delete(&state, &caller.requester, id).await?))
    }
    .await;
    let (before, after) = result?;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let facts =
        vec![("削除した方", person(&before)), ("現在の表示", person(&after)), ("日時", local(state.clock.now()))];
    let message = "個人情報を削除しました。操作の記録は残っています。".to_string();
    let done = ResultPage {
        ctx: &ctx, title: "個人情報を削除しました", message, facts, back: "/console/staff".into()
    };
    Ok(page(StatusCode::OK, &done))
}
