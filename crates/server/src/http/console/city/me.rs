//! Everyone's own page: their devices and certificates, how long each
//! certificate has left, renewal of the certificate this browser signed in
//! with (証明書の更新: a new PKCS#12 or Apple profile, the old one kept
//! until the new one is used, `ra::renewal`), and where to report a lost
//! device.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use connect_pki_domain::CertStatus;
use connect_pki_store::DeviceRecord;
use time::OffsetDateTime;

use crate::http::console::kit::section;
use crate::http::console::kit::{Acting, NoFields, Page};
use crate::http::console::kit::{Ctx, PageResult, cert_ja, https_base, local, page};
use crate::http::error::ApiError;
use crate::http::install::Handout;
use crate::http::state::AppState;
use connect_pki_ra::devices;
use connect_pki_ra::renewal;

const HERE: &str = "/console/me";

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(show)).route("/console/me/renew", post(renew))
}

/// What the page offers for the certificate this browser signed in with.
enum Renewal {
    /// In the window: the button.
    Now,
    /// Before the window: the day it opens.
    From(String),
    /// Renewed already: the new certificate waits to be installed.
    Waiting,
    /// Nothing to offer (held, or not valid).
    No,
}

struct CertRow {
    serial: String,
    status_ja: &'static str,
    not_after: String,
    renewal: String,
    /// `soon`, `expired` or empty: how the renewal cell is marked.
    urgency: &'static str,
    this_one: bool,
}

struct DeviceRow {
    id: i64,
    label: String,
    status_ja: &'static str,
    created: String,
    certificates: Vec<CertRow>,
}

#[derive(Template)]
#[template(path = "console/me.html")]
struct MePage<'a> {
    ctx: &'a Ctx,
    facility: String,
    login_id: String,
    devices: Vec<DeviceRow>,
    emergency_url: String,
    renewal: Renewal,
    grace_days: i64,
}

#[derive(Template)]
#[template(path = "console/renewed.html")]
struct RenewedPage<'a> {
    ctx: &'a Ctx,
    handout: Handout,
    replaced_by: String,
}

/// How a certificate stands for renewal, in words, and how urgent that is.
/// `window`: the days before expiry in which it can be renewed (`--expiry-notice-days`).
fn renewal(status: CertStatus, not_after: OffsetDateTime, now: OffsetDateTime, window: i64) -> (String, &'static str) {
    let days = (not_after - now).whole_days();
    match status {
        CertStatus::Valid if not_after <= now => {
            ("期限切れ。新しい登録コードで登録し直してください。".into(), "expired")
        }
        CertStatus::Valid if days < window => {
            (format!("残り {days} 日。この端末でこのページを開き「証明書を更新する」を押してください。"), "soon")
        }
        CertStatus::Valid => (format!("残り {days} 日"), ""),
        CertStatus::OnHold => ("一時停止中のため更新できません。".into(), "soon"),
        CertStatus::Revoked | CertStatus::Superseded => ("—".into(), ""),
    }
}

fn device_row(d: DeviceRecord, now: OffsetDateTime, current: &connect_pki_domain::Serial, window: i64) -> DeviceRow {
    DeviceRow {
        id: d.id.0,
        status_ja: match d.status.as_str() {
            "active" => "使用中",
            "lost" => "紛失（使用不可）",
            _ => "使用終了",
        },
        created: local(d.created_at),
        certificates: d
            .certificates
            .into_iter()
            .map(|c| {
                let (renewal, urgency) = renewal(c.status, c.not_after, now, window);
                CertRow {
                    this_one: &c.serial == current,
                    serial: c.serial.to_hex(),
                    status_ja: cert_ja(c.status),
                    not_after: local(c.not_after),
                    renewal,
                    urgency,
                }
            })
            .collect(),
        label: d.label,
    }
}

async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Me>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let own = devices::own_devices(&state, &ctx.caller.requester).await?;
    let now = state.clock.now();
    let current = &ctx.caller.requester.certificate;
    let renewal = offer(&state, &own, current);
    let window = i64::from(state.settings.expiry_notice_days);
    let p = MePage {
        ctx: &ctx,
        facility: affiliation(&ctx),
        login_id: ctx.caller.identity.user.login_id.clone().unwrap_or_default(),
        devices: own.into_iter().map(|d| device_row(d, now, current, window)).collect(),
        emergency_url: format!("{}/emergency", https_base(&state, &headers, &uri)),
        renewal,
        grace_days: state.settings.renewal_grace.whole_days(),
    };
    Ok(page(StatusCode::OK, &p))
}

/// 所属 as the person would write it: the city's own staff are placed in
/// the city's record (行政管理課's), so 福祉課 is named by its role, not by
/// that record's name.
fn affiliation(ctx: &Ctx) -> String {
    let facility = &ctx.caller.identity.facility.name;
    match ctx.role() {
        connect_pki_domain::Role::WelfareDivision => "千歳市 保健福祉部 福祉課 総合支援係（市の職員）".into(),
        connect_pki_domain::Role::AdminDivision => format!("{facility}（市の職員）"),
        _ => format!("{facility}（{}）", ctx.role_ja),
    }
}

/// What to offer for `current`: renewed already when its device has
/// another valid certificate; else as `ra::renewal` says.
fn offer(state: &AppState, own: &[DeviceRecord], current: &connect_pki_domain::Serial) -> Renewal {
    let Some((device, cert)) =
        own.iter().find_map(|d| d.certificates.iter().find(|c| &c.serial == current).map(|c| (d, c)))
    else {
        return Renewal::No;
    };
    if cert.status != CertStatus::Valid {
        return Renewal::No;
    }
    // Another valid certificate on the device is a browser renewal waiting
    // to be installed (a renewal by the API supersedes at once).
    let newer = device.certificates.iter().any(|c| c.status == CertStatus::Valid && c.serial != cert.serial);
    if newer {
        return Renewal::Waiting;
    }
    match renewal::renewable_from(state, cert.not_after) {
        None if cert.not_after > state.clock.now() => Renewal::Now,
        None => Renewal::No,
        Some(from) => Renewal::From(local(from)),
    }
}

/// 証明書の更新: a new key and certificate for this device, handed over
/// once with the steps for the browser's platform.
async fn renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let renewed = renewal::renew(&state, &caller.requester).await.map_err(ApiError::from)?;
    let handout =
        Handout::new(&state, &headers, renewed.device.0, renewed.serial.to_hex(), &renewed.pkcs12, renewed.password)
            .map_err(ApiError::from)?;
    let ctx = Ctx::new(&state, caller, HERE);
    let p = RenewedPage { ctx: &ctx, handout, replaced_by: local(renewed.replaced_by) };
    Ok(page(StatusCode::CREATED, &p))
}
