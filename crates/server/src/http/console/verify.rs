//! 記録の検証: whoever received a signed incident record (an attachment to
//! a personal-data incident report) checks it here without a command line.
//! The file is checked exactly as `connect-pki receipt verify` checks it
//! (`ca::record::check_file`: the signature under the city's root, the
//! signer valid when the record was made, every claim against the OCSP
//! answer and the CRL it carries), and the page says in Japanese what it
//! proves, or why it proves nothing. Nothing is stored.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::http::console::kit::{Ctx, Page, PageResult, cert_ja, local, page, section};
use crate::http::console::records::reason_ja;
use crate::http::state::AppState;

const HERE: &str = "/console/verify";

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(form).post(check))
}

#[derive(Template)]
#[template(path = "console/verify.html")]
struct VerifyPage<'a> {
    ctx: &'a Ctx,
    /// What the file proves, line by line; or why it proves nothing.
    result: Option<Result<Vec<String>, String>>,
}

async fn form(Page { ctx, .. }: Page<section::Queue>) -> PageResult {
    Ok(page(StatusCode::OK, &VerifyPage { ctx: &ctx, result: None }))
}

/// The uploaded file's text: the first file field, at most the body limit.
async fn file_text(mut form: Multipart) -> Result<String, String> {
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("file") {
            let bytes = field.bytes().await.map_err(|_| "ファイルを読み取れませんでした。".to_string())?;
            return String::from_utf8(bytes.to_vec())
                .map_err(|_| "このファイルは署名付きの記録（JSON）ではありません。".to_string());
        }
    }
    Err("ファイルが選ばれていません。".into())
}

/// Reads and answers; changes nothing, so it carries no CSRF token (the
/// same-origin rule for every POST still holds).
async fn check(State(state): State<AppState>, Page { ctx, .. }: Page<section::Queue>, form: Multipart) -> PageResult {
    let result = match file_text(form).await {
        Ok(text) => proves(&text, &state.certs.root_der),
        Err(why) => Err(why),
    };
    let status = if result.is_ok() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(page(status, &VerifyPage { ctx: &ctx, result: Some(result) }))
}

/// What a record file proves, in Japanese.
fn proves(text: &str, root_der: &[u8]) -> Result<Vec<String>, String> {
    let (signed, claims) = connect_pki_ca::record::check_file(text, root_der).map_err(|e| {
        format!("この記録は検証できませんでした。改ざんされたか、この認証局の記録ではありません。（理由：{e}）")
    })?;
    let reason = claims.reason.filter(|_| claims.status != connect_pki_domain::CertStatus::Valid);
    let mut lines = vec![
        format!("署名：正しい（{}、市のルート認証局の下で、記録の作成時に有効）", signed.signer),
        format!("作成日時：{}", local(claims.generated_at)),
        format!(
            "証明書 {}：{}{}",
            claims.serial,
            cert_ja(claims.status),
            reason.map(|r| format!("（理由：{}）", reason_ja(r))).unwrap_or_default()
        ),
        format!(
            "OCSP の応答：署名が正しく、「{}」と答えています（{} 作成）。記録と一致します。",
            match claims.ocsp.status {
                "good" => "有効",
                "revoked" => "失効",
                _ => "不明",
            },
            local(claims.ocsp.produced_at)
        ),
    ];
    lines.push(match &claims.crl {
        Some(crl) => format!(
            "CRL（番号 {}、{} 発行）：署名が正しく、この証明書を{}。記録と一致します。",
            crl.number,
            local(crl.this_update),
            if crl.lists_certificate { "失効として載せています" } else { "載せていません" }
        ),
        None => "CRL：記録の作成時に配布中の CRL はありませんでした。".into(),
    });
    Ok(lines)
}
