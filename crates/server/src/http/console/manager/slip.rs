//! Issuing an enrollment code and the slip to print for the person: the
//! code, its expiry, the enroll page's address as text and as a QR code,
//! and what to do. The code appears once, on this page, as text only: never
//! in the QR code or in any address (they end up in logs and histories).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use connect_pki_domain::UserId;

use super::{enroll_url, person};
use crate::http::console::kit::{Acting, NoFields, Numbered};
use crate::http::console::kit::{Ctx, PageResult, Refusal, local, page, refuse};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{facilities, users};

#[derive(Template)]
#[template(path = "console/slip.html")]
pub(crate) struct SlipPage<'a> {
    pub(crate) ctx: &'a Ctx,
    /// Where the page's back link goes, and what it says.
    pub(crate) back: (String, &'static str),
    /// Who issues a new code when this one expires or is lost.
    pub(crate) reissue: &'static str,
    /// How the slip reaches the person (「手渡し」, 「郵送」).
    pub(crate) delivery: &'static str,
    pub(crate) person: String,
    pub(crate) facility: String,
    pub(crate) code: String,
    pub(crate) expires: String,
    pub(crate) issued: String,
    pub(crate) enroll_url: String,
    /// The printable import steps (取り込み手順), next to the enroll page.
    pub(crate) install_url: String,
    pub(crate) qr: String,
}

impl SlipPage<'_> {
    /// The slip's addresses: the enroll page, its QR code and the import steps.
    pub(crate) fn addresses(
        state: &AppState,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(String, String, String), Refusal> {
        let url = enroll_url(state, headers, uri);
        let qr = qr_data_uri(&url).ok_or_else(|| {
            Refusal::from(refuse(anyhow::anyhow!("the enroll address does not fit a QR code").into()))
        })?;
        Ok((format!("{}/install", url.trim_end_matches("/enroll")), qr, url))
    }
}

/// `text` as a QR code, an SVG image in a `data:` address (the console's
/// CSP allows `img-src data:`). Medium error correction: the slip may be
/// creased or smudged.
pub fn qr_data_uri(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
    Some(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

pub(crate) async fn issue(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    headers: HeaderMap,
    uri: Uri,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let id = UserId(id);
    let requester = &caller.requester;
    let result: Result<_, ApiError> = async {
        let user = users::managed_user(&state, requester, id).await?;
        let facility = facilities::facility(&state, requester, user.facility).await?;
        let (code, expires_at) = users::issue_code(&state, requester, id).await?;
        Ok((code, expires_at, user, facility))
    }
    .await;
    let (code, expires_at, user, facility) = result?;
    let (install_url, qr, url) = SlipPage::addresses(&state, &headers, &uri)?;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let p = SlipPage {
        ctx: &ctx,
        back: (format!("/console/staff/{}", user.id), "職員のページへ戻る"),
        reissue: "施設管理者に新しいコードを発行してもらってください",
        delivery: "本人に手渡ししてください",
        person: person(&user),
        facility: facility.name,
        code,
        expires: local(expires_at),
        issued: local(state.clock.now()),
        install_url,
        enroll_url: url,
        qr,
    };
    Ok(page(StatusCode::OK, &p))
}
