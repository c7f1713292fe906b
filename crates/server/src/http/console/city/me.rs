//! Everyone's own page: their devices and certificates, how long each
//! certificate has left (the device renews it itself), and where to report
//! a lost device.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use connect_pki_domain::CertStatus;
use connect_pki_store::DeviceRecord;
use time::OffsetDateTime;

use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, cert_ja, https_base, local, page};
use crate::http::state::AppState;
use connect_pki_ra::devices;

const HERE: &str = "/console/me";
/// From this many days before expiry the page asks for a renewal.
const RENEW_WITHIN_DAYS: i64 = 30;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(show))
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
}

/// How a certificate stands for renewal, in words, and how urgent that is.
fn renewal(status: CertStatus, not_after: OffsetDateTime, now: OffsetDateTime) -> (String, &'static str) {
    let days = (not_after - now).whole_days();
    match status {
        CertStatus::Valid if not_after <= now => {
            ("期限切れ。新しい登録コードで登録し直してください。".into(), "expired")
        }
        CertStatus::Valid if days < RENEW_WITHIN_DAYS => {
            (format!("残り {days} 日。更新してください（端末から更新します）。"), "soon")
        }
        CertStatus::Valid => (format!("残り {days} 日"), ""),
        CertStatus::OnHold => ("一時停止中のため更新できません。".into(), "soon"),
        CertStatus::Revoked | CertStatus::Superseded => ("—".into(), ""),
    }
}

fn device_row(d: DeviceRecord, now: OffsetDateTime, current: &connect_pki_domain::Serial) -> DeviceRow {
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
                let (renewal, urgency) = renewal(c.status, c.not_after, now);
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
    let p = MePage {
        ctx: &ctx,
        facility: ctx.caller.identity.facility.name.clone(),
        login_id: ctx.caller.identity.user.login_id.clone().unwrap_or_default(),
        devices: own.into_iter().map(|d| device_row(d, now, current)).collect(),
        emergency_url: format!("{}/emergency", https_base(&state, &headers, &uri)),
    };
    Ok(page(StatusCode::OK, &p))
}
