//! The incident record of a certificate, as a printable Japanese page and
//! as the signed JSON to attach to the incident report
//! (`service::incident`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use connect_pki_domain::{FacilityId, Serial, UserId};
use serde_json::{Value, json};

use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, cert_ja, local, page, refuse, role_ja};
use crate::http::console::records::{self, Names, actor_ja, person, reason_ja};
use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::http::state::AppState;
use connect_pki_ra::incident::{Event, record};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/console/certificates/{serial}/incident", get(show))
        .route("/console/certificates/{serial}/incident.json", get(download))
}

struct Row {
    code: String,
    at: String,
    what: String,
    who: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage<'a> {
    ctx: &'a Ctx,
    serial: String,
    json_href: String,
    facts: Vec<(&'static str, String)>,
    rows: Vec<Row>,
    ocsp: String,
    crl: String,
    generated: String,
}

/// The event in words, for a clerk.
fn what_ja(code: &str) -> &'static str {
    match code {
        "certificate.issue" => "証明書を発行",
        "certificate.renew" => "証明書を更新",
        "certificate.hold" => "証明書を一時停止",
        "certificate.release" => "一時停止を解除",
        "certificate.revoke" => "証明書を失効",
        "device.create" => "端末を登録",
        "device.lost" => "端末の紛失の届出",
        "reported" | "escalation.open" => "緊急の届出を受付",
        "escalation.claim" => "担当者が対応を開始",
        "escalation.escalate" => "行政管理課へ引き継ぎ",
        "escalation.resolve" => "対応を完了",
        "notification.queued" => "通知を送信",
        "notification.delivered" => "通知が届いた",
        "ocsp.last_good" => "OCSP で「有効」と回答（最後）",
        "ocsp.first_revoked" => "OCSP で「失効」と回答（最初）",
        "crl.listed" => "失効を載せた CRL を取得",
        "handshake.last_ok" => "この認証局の接続口で最後に使用",
        "handshake.first_refused" => "接続を拒否（最初）",
        "handshake.last_refused" => "接続を拒否（最後）",
        // Until when this party could still have accepted it after the revocation.
        "exposure.until" => "失効後もこの相手が受け入れ得た最後の時刻",
        _ => "その他の記録",
    }
}

/// An RFC 3339 time of the record, in Japan's time.
fn local_of(v: Option<&str>) -> String {
    v.and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(local)
        .unwrap_or_else(|| "—".into())
}

fn who_ja(who: &Option<String>, names: &Names) -> String {
    match who.as_deref() {
        None => "—".into(),
        // Someone with the code or the password, from the public pages: the
        // holder (a report of their own device) or whoever they gave it to.
        Some(w) if w.starts_with("public:") => {
            format!("本人（登録・緊急届出のページ、{} から）", w.trim_start_matches("public:"))
        }
        Some(w) => actor_ja(w, names),
    }
}

fn detail_ja(e: &Event, names: &Names) -> String {
    let d = &e.detail;
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    match e.event.as_str() {
        "reported" => records::detail_ja(&json!({"channel": d["channel"], "queue": d["queue"]}), names),
        "notification.queued" | "notification.delivered" => {
            let how = match d["channel"].as_str() {
                Some("email") => "メール",
                Some("webhook") => "Webhook",
                _ => "通知",
            };
            format!("{how}（{}）", records::detail_ja(&json!({"event": d["event"]}), names))
        }
        "crl.listed" => format!("CRL 番号 {}（{} 発行）", d["crl_number"], local_of(d["this_update"].as_str())),
        "handshake.last_ok" => format!("接続元 {}、通算 {} 回", s(&d["from"]), d["handshakes"]),
        "handshake.first_refused" | "handshake.last_refused" => format!("拒否 通算 {} 回", d["refused"]),
        _ => records::detail_ja(&d["detail"], names),
    }
}

async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Queue>,
    Path(raw): Path<String>,
) -> PageResult {
    let result: Result<_, ApiError> = async {
        let serial: Serial = raw.parse()?;
        Ok(record(&state, &ctx.caller.requester, &serial).await?)
    }
    .await;
    let incident = result?;
    let r = &incident.record;
    let c = &r.certificate;
    let names = names_of(&state, &ctx.caller.requester, &incident).await?;
    let serial = c.serial.clone();
    let facts = vec![
        ("施設", c.facility_name.clone()),
        ("職員", names.user_name(c.user_id)),
        ("端末（番号）", c.device_id.to_string()),
        ("証明書の状態", cert_ja(c.status).to_string()),
        ("失効・停止の理由", c.reason.map_or("—", reason_ja).to_string()),
        ("失効・停止の日時", local_of(c.revoked_at.as_deref())),
    ];
    let rows = incident
        .events
        .iter()
        .map(|e| Row {
            code: e.event.replace('.', "-"),
            at: local(e.at),
            what: what_ja(&e.event).into(),
            who: who_ja(&e.who, &names),
            detail: detail_ja(e, &names),
        })
        .collect();
    let ocsp = match connect_pki_ca::ocsp::read_response(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &r.proof.ocsp_response).unwrap_or_default(),
        state.revocations.cas().iter().find(|ca| ca.name() == c.issuing_ca).map_or(&[][..], |ca| ca.cert_der()),
    ) {
        Ok(said) => {
            let word = match said.status {
                "good" => "有効",
                "revoked" => "失効",
                _ => "不明",
            };
            format!("「{word}」（{} 作成、署名を確認済み）", local(said.produced_at))
        }
        Err(e) => format!("読めません: {e}"),
    };
    let crl = match &r.proof.crl {
        Some(crl) if crl.lists_certificate => format!("番号 {} がこの証明書を失効として載せています", crl.crl_number),
        Some(crl) => format!("番号 {} にはこの証明書は載っていません（失効していません）", crl.crl_number),
        None => "ありません".into(),
    };
    let p = IncidentPage {
        ctx: &ctx,
        json_href: format!("/console/certificates/{serial}/incident.json"),
        serial,
        facts,
        rows,
        ocsp,
        crl,
        generated: local_of(Some(&r.generated_at)),
    };
    Ok(page(StatusCode::OK, &p))
}

/// The people the record names, as its reader may see them.
async fn names_of(
    state: &AppState,
    requester: &connect_pki_ra::Requester,
    incident: &connect_pki_ra::incident::Incident,
) -> Result<Names, ApiError> {
    let c = &incident.record.certificate;
    let mut ids: Vec<UserId> = incident
        .events
        .iter()
        .filter_map(|e| e.who.as_deref()?.strip_prefix("user:")?.parse().ok().map(UserId))
        .collect();
    ids.push(UserId(c.user_id));
    ids.sort();
    ids.dedup();
    let facility = FacilityId(c.facility_id);
    let people = connect_pki_ra::audit::people_of_trail(state, requester, facility, &ids).await?;
    let names = people.iter().map(|u| {
        let name = if u.facility == facility { person(u) } else { format!("{}の職員", role_ja(u.role)) };
        (u.id.0, name)
    });
    Ok(Names::named(names, [(c.facility_id, c.facility_name.clone())]))
}

async fn download(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(raw): Path<String>,
) -> Response {
    let result: Result<_, ApiError> = async {
        let caller = caller?;
        let serial: Serial = raw.parse()?;
        Ok((serial.to_hex(), record(&state, &caller.requester, &serial).await?))
    }
    .await;
    match result {
        Ok((serial, i)) => {
            let body = serde_json::json!({"record": i.record, "signed": i.signed});
            let disposition = format!("attachment; filename=\"incident-{serial}.json\"");
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
                    ),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => refuse(e),
    }
}
