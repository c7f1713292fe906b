//! A device reported lost, and a certificate revoked, held or released:
//! each a confirmation page naming the person, the device and the effect,
//! then the POST, then a page saying what happened and when.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use connect_pki_domain::certificate::Change;
use connect_pki_domain::{CertStatus, DeviceId, Reason, Serial};
use connect_pki_store::{DeviceRecord, UserRecord};
use serde::Deserialize;

use super::{device_name, person};
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Acting, Numbered};
use crate::http::console::kit::{ConfirmPage, Ctx, Fact, PageResult, Refusal, ResultPage, cert_ja, local, page};
use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::http::state::AppState;
use connect_pki_ra::{certificates, devices};

fn back(user: &UserRecord) -> String {
    format!("/console/staff/{}", user.id)
}

fn who_and_what(user: &UserRecord, device: &DeviceRecord) -> Vec<Fact> {
    vec![("職員", person(user)), ("端末", device_name(device))]
}

pub(crate) async fn confirm_lost(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let id = DeviceId(id);
    let (device, user) = devices::managed_device(&state, &ctx.caller.requester, id).await?;
    let in_force = device.certificates.iter().filter(|c| matches!(c.status, CertStatus::Valid | CertStatus::OnHold));
    let mut facts = who_and_what(&user, &device);
    facts.push(("失効する証明書", format!("{} 件", in_force.count())));
    let p = ConfirmPage {
        ctx: &ctx,
        title: "端末の紛失の届出",
        facts,
        effect: "この端末は直ちに電子@連絡帳に接続できなくなります。端末の証明書はすべて失効し、元に戻せません（見つかった場合は、新しい登録コードで登録し直します）。".into(),
        action: format!("/console/devices/{}/lost", id.0),
        fields: Vec::new(),
        button: "紛失を届け出て、直ちに停止する",
        back: back(&user),
    };
    Ok(page(StatusCode::OK, &p))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn lost(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, .. }: Acting<ActionForm>,
) -> PageResult {
    let id = DeviceId(id);
    let requester = &caller.requester;
    let result: Result<_, ApiError> = async {
        let (device, user) = devices::managed_device(&state, requester, id).await?;
        let lost = devices::lost(&state, requester, id).await?;
        Ok((device, user, lost))
    }
    .await;
    let (device, user, lost) = result?;
    let revoked = lost.revoked;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let mut facts = who_and_what(&user, &device);
    facts.push(("日時", local(state.clock.now())));
    facts
        .push(("失効した証明書", if revoked.is_empty() { "なし（すでに停止済み）".into() } else { serials(&revoked) }));
    let p = ResultPage {
        ctx: &ctx,
        title: "端末の紛失を受け付けました",
        message: format!(
            "{} は紛失として停止しました。証明書 {} 件を失効し、この端末は電子@連絡帳に接続できなくなりました。",
            device_name(&device),
            revoked.len()
        ),
        facts,
        back: back(&user),
    };
    Ok(page(StatusCode::OK, &p))
}

fn serials(list: &[Serial]) -> String {
    list.iter().map(Serial::to_hex).collect::<Vec<_>>().join("、")
}

/// The words of one certificate change.
struct Wording {
    title: &'static str,
    effect: &'static str,
    button: &'static str,
    done: &'static str,
}

fn wording(change: &str) -> Option<Wording> {
    Some(match change {
        "revoke" => Wording {
            title: "証明書の無効化（失効）",
            effect: "この証明書は直ちに失効し、この証明書では電子@連絡帳に接続できなくなります。元に戻せません。",
            button: "失効する",
            done: "証明書を失効しました。",
        },
        "hold" => Wording {
            title: "証明書の一時停止",
            effect: "この証明書は直ちに一時停止され、解除するまでこの証明書では電子@連絡帳に接続できなくなります。",
            button: "一時停止する",
            done: "証明書を一時停止しました。",
        },
        "release" => Wording {
            title: "一時停止の解除",
            effect: "この証明書の一時停止を解除し、この端末は再び電子@連絡帳に接続できるようになります。",
            button: "停止を解除する",
            done: "一時停止を解除しました。",
        },
        _ => return None,
    })
}

/// The certificate, its device and holder, as the caller may see them.
async fn certificate_of(
    state: &AppState,
    caller: &Caller,
    serial: &str,
) -> Result<(connect_pki_store::CertificateRecord, DeviceRecord, UserRecord), ApiError> {
    let serial: Serial = serial.parse()?;
    let cert = certificates::certificate(state, &caller.requester, &serial).await?;
    let (device, user) = devices::managed_device(state, &caller.requester, cert.device).await?;
    Ok((cert, device, user))
}

pub(crate) async fn confirm_change(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Path((serial, change)): Path<(String, String)>,
) -> PageResult {
    let Some(w) = wording(&change) else { return Err(Refusal::from(ApiError::NoRoute(change))) };
    let (cert, device, user) = certificate_of(&state, &ctx.caller, &serial).await?;
    let mut facts = who_and_what(&user, &device);
    facts.push((
        "証明書",
        format!("{}（{}、有効期限 {}）", cert.serial.to_hex(), cert_ja(cert.status), local(cert.not_after)),
    ));
    let fields = if change == "revoke" { vec![("reason", "失効の理由", "reason")] } else { Vec::new() };
    let p = ConfirmPage {
        ctx: &ctx,
        title: w.title,
        facts,
        effect: w.effect.into(),
        action: format!("/console/certificates/{}/{change}", cert.serial.to_hex()),
        fields,
        button: w.button,
        back: back(&user),
    };
    Ok(page(StatusCode::OK, &p))
}

pub(crate) async fn change(
    State(state): State<AppState>,
    Path((serial, change)): Path<(String, String)>,
    Acting { caller, form: f }: Acting<ActionForm>,
) -> PageResult {
    let Some(w) = wording(&change) else { return Err(Refusal::from(ApiError::NoRoute(change))) };
    let result: Result<_, ApiError> = async {
        let what = match change.as_str() {
            "revoke" => Change::Revoke(f.reason.parse::<Reason>()?),
            "hold" => Change::Hold,
            _ => Change::Release,
        };
        let (_, device, user) = certificate_of(&state, &caller, &serial).await?;
        let changed = certificates::change(&state, &caller.requester, &serial.parse()?, what).await?;
        Ok((device, user, changed))
    }
    .await;
    let (device, user, changed) = result?;
    let outcome = changed.outcome;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let c = &outcome.certificate;
    let mut facts = who_and_what(&user, &device);
    facts.push(("証明書", c.serial.to_hex()));
    facts.push(("現在の状態", cert_ja(c.status).to_string()));
    facts.push(("日時", local(state.clock.now())));
    let message = if outcome.changed {
        w.done.to_string()
    } else {
        format!("変更はありません（すでに「{}」です）。", cert_ja(c.status))
    };
    Ok(page(StatusCode::OK, &ResultPage { ctx: &ctx, title: w.title, message, facts, back: back(&user) }))
}
