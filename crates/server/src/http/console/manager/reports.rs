//! Read-only pages: the certificates that run out within the configured
//! window (`--expiry-notice-days`, 30 days by default), and the facility's
//! own audit trail.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use connect_pki_domain::AuditAction;
use connect_pki_domain::expiry::days_left;
use connect_pki_store::{AuditFilter, AuditRecord};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{labelled_device, person};
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, cert_ja, local, page, tokyo_day_start};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{audit, certificates, expiry, users};

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

struct TrailRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/trail.html")]
struct TrailPage<'a> {
    ctx: &'a Ctx,
    q: TrailQuery,
    /// (field, message) of a filter that does not parse.
    error: Option<(&'static str, String)>,
    rows: Vec<TrailRow>,
    next: Option<String>,
}

impl TrailPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

/// Every action in words; a new action does not compile until it has its own.
fn action_ja(action: AuditAction) -> &'static str {
    use AuditAction::*;
    match action {
        ApplicationSubmit => "施設の利用申請",
        ApplicationApprove => "施設の申請の承認",
        ApplicationReject => "施設の申請の却下",
        ApplicationPurge => "却下した申請の削除",
        FacilityCreate => "施設の登録",
        FacilitySuspend => "施設の利用停止",
        FacilityResume => "施設の利用再開",
        FacilityClose => "施設の廃止",
        UserCreate => "職員の登録",
        UserRetire => "退職",
        UserRetireScheduled => "退職の予定",
        UserRetireCancelled => "退職の予定の取り消し",
        UserDelete => "個人情報の削除",
        EnrollmentCodeCreate => "登録コードの発行",
        EnrollmentRedeem => "登録コードの使用",
        DeviceCreate => "端末の登録",
        DeviceLost => "端末の紛失",
        CertificateIssue => "証明書の発行",
        CertificateRenew => "証明書の更新",
        CertificateRevoke => "証明書の失効",
        CertificateHold => "証明書の一時停止",
        CertificateRelease => "一時停止の解除",
        CertificateExpiryNotice => "証明書の期限のお知らせ（メール）",
        EscalationOpen => "緊急届出の受付",
        EscalationClaim => "緊急届出の担当",
        EscalationEscalate => "緊急届出の行政管理課への移管",
        EscalationResolve => "緊急届出の対応完了",
        EmergencySignIn => "緊急届出のサインイン",
        TermsAccept => "利用規約への同意",
        RequestRefused => "拒否された操作",
        CrlReapply => "失効の再適用（復元後）",
        RevocationsWriteBack => "失われた失効の書き戻し",
        CaRollover => "発行 CA の世代交代",
        CaOcspSignerRenew => "OCSP 署名証明書の更新",
        CaTlsServerRenew => "TLS サーバー証明書の更新",
    }
}

/// What a record is about, in words: "device:3" → "端末 3".
fn target_ja(target: &str) -> String {
    let Some((kind, id)) = target.split_once(':') else { return target.to_string() };
    let kind = match kind {
        "user" => "利用者",
        "device" => "端末",
        "certificate" => "証明書",
        "enrollment_code" => "登録コード",
        "facility" => "施設",
        "application" => "申請",
        "escalation" => "緊急届出",
        _ => return target.to_string(),
    };
    format!("{kind} {id}")
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

fn row(r: &AuditRecord, names: &HashMap<String, String>) -> TrailRow {
    let e = &r.entry;
    let actor = if e.actor.starts_with("system:") {
        "システム（自動）".to_string()
    } else if let Some(addr) = e.actor.strip_prefix("public:") {
        format!("登録ページ・届出ページ（{addr}）")
    } else {
        names.get(&e.actor).cloned().unwrap_or_else(|| e.actor.replace("user:", "利用者 "))
    };
    let target = names.get(&e.target).cloned().unwrap_or_else(|| target_ja(&e.target));
    TrailRow {
        id: r.id,
        at: local(r.at),
        actor,
        action: action_ja(e.action).to_string(),
        target,
        outcome: if e.outcome == "ok" { "成功".into() } else { e.outcome.clone() },
        detail: if e.detail.is_null() { String::new() } else { e.detail.to_string() },
    }
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
        let users = users::users(&state, requester, facility).await?;
        Ok((records, users))
    }
    .await;
    let (records, users) = result?;
    let names: HashMap<String, String> =
        users.iter().map(|u| (format!("user:{}", u.user.id), person(&u.user))).collect();
    let rows: Vec<TrailRow> = records.iter().map(|r| row(r, &names)).collect();
    let next = (rows.len() as i64 == TRAIL_PAGE).then(|| {
        let last = rows.last().map_or(0, |r| r.id);
        format!("/console/trail?from={}&to={}&after={last}", q.from.trim(), q.to.trim())
    });
    Ok(page(StatusCode::OK, &TrailPage { ctx: &ctx, q, error: None, rows, next }))
}
