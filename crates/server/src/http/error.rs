//! The one place where failures become HTTP responses:
//! `{"error": {"code", "message"}}` with the matching status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use connect_pki_ca::CaError;
use connect_pki_domain::enrollment::Refusal;
use connect_pki_domain::{DomainError, Serial};
use connect_pki_store::StoreError;
use serde_json::json;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("this API needs a client certificate issued by connect-pki (curl: --cert and --key)")]
    NoClientCertificate,
    #[error("the client certificate {0} is not registered with this service")]
    UnknownCertificate(Serial),
    #[error("the client certificate {serial} is {status} and can no longer be used")]
    CertificateNotUsable { serial: Serial, status: &'static str },
    #[error("the account of this certificate is {0}; ask the facility manager")]
    AccountDisabled(&'static str),
    #[error("the facility of this certificate is {0}; ask 行政管理課")]
    FacilityNotActive(&'static str),
    #[error("no such route: {0}")]
    NoRoute(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadJson(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("send the body as JSON with Content-Type: application/json")]
    NotJson,
    #[error("too many requests from this address; wait {0} seconds and try again")]
    RateLimited(u64),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the login ID or the password is wrong")]
    SignInFailed,
    #[error("too many wrong passwords: sign-in is locked for 15 minutes; call 行政管理課 if the device is lost")]
    AccountLocked,
    #[error("this device is not one of yours")]
    NotYourDevice,
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ca(#[from] CaError),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Status and stable error code.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NoClientCertificate => (StatusCode::UNAUTHORIZED, "client_certificate_required"),
            ApiError::UnknownCertificate(_) => (StatusCode::UNAUTHORIZED, "certificate_unknown"),
            ApiError::CertificateNotUsable { .. } => (StatusCode::UNAUTHORIZED, "certificate_not_usable"),
            ApiError::AccountDisabled(_) => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::FacilityNotActive(_) => (StatusCode::FORBIDDEN, "facility_not_active"),
            ApiError::NoRoute(_) | ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::SignInFailed => (StatusCode::UNAUTHORIZED, "sign_in_failed"),
            ApiError::AccountLocked => (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
            ApiError::NotYourDevice => (StatusCode::FORBIDDEN, "not_your_device"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Store(StoreError::Rule(rule)) => domain_parts(rule),
            ApiError::Store(StoreError::Enrollment(refusal)) => match refusal {
                Refusal::WrongCode { .. } => (StatusCode::UNAUTHORIZED, "invalid_code"),
                Refusal::Redeemed => (StatusCode::CONFLICT, "code_used"),
                Refusal::Expired => (StatusCode::CONFLICT, "code_expired"),
                Refusal::Locked => (StatusCode::FORBIDDEN, "code_locked"),
                Refusal::AccountClosed(_) => (StatusCode::FORBIDDEN, "account_disabled"),
                Refusal::FacilityNotActive(_) => (StatusCode::FORBIDDEN, "facility_not_active"),
                Refusal::PasswordRequired => (StatusCode::UNPROCESSABLE_ENTITY, "password_required"),
            },
            ApiError::Ca(CaError::SubjectMismatch(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "csr_subject_mismatch"),
            ApiError::Domain(rule) => domain_parts(rule),
            ApiError::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Ca(CaError::BadCsr(_)) => (StatusCode::BAD_REQUEST, "bad_csr"),
            ApiError::Ca(CaError::KeyNotAllowed(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "key_not_allowed"),
            ApiError::Store(_) | ApiError::Ca(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

fn domain_parts(e: &DomainError) -> (StatusCode, &'static str) {
    match e {
        DomainError::NotPermitted { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        DomainError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        DomainError::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
        DomainError::CertificateNotUsable { .. } => (StatusCode::CONFLICT, "certificate_not_usable"),
    }
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The message for a Japanese page: what happened and what to do, in
    /// the words of the person reading it.
    pub fn message_ja(&self) -> String {
        match self {
            ApiError::Domain(DomainError::Invalid { field, .. })
            | ApiError::Store(StoreError::Rule(DomainError::Invalid { field, .. })) => {
                format!("{}を確認してください。", field_ja(field))
            }
            ApiError::Store(StoreError::Conflict(connect_pki_store::Conflict::LoginIdTaken { .. })) => {
                "そのログインIDはすでに使われています。別のログインIDを指定してください。".into()
            }
            ApiError::Store(StoreError::Enrollment(r)) => match r {
                Refusal::WrongCode { attempts_left } => {
                    format!("登録コードが正しくありません。あと{attempts_left}回間違えるとこのコードは使えなくなります。")
                }
                Refusal::Redeemed => "この登録コードは使用済みです。施設管理者に新しいコードを発行してもらってください。".into(),
                Refusal::Expired => "この登録コードは有効期限切れです。施設管理者に新しいコードを発行してもらってください。".into(),
                Refusal::Locked => "誤入力が多いため、この登録コードはロックされました。施設管理者に新しいコードを発行してもらってください。".into(),
                Refusal::AccountClosed(_) => "このアカウントは利用できません。施設管理者にお問い合わせください。".into(),
                Refusal::FacilityNotActive(_) => "施設が利用停止中のため登録できません。行政管理課にお問い合わせください。".into(),
                Refusal::PasswordRequired => "初回登録です。10文字以上のパスワードを設定してください。".into(),
            },
            ApiError::Ca(CaError::BadCsr(_) | CaError::SubjectMismatch(_) | CaError::KeyNotAllowed(_)) => {
                "証明書署名要求（CSR）を受け付けられませんでした。端末で作り直してください。".into()
            }
            ApiError::SignInFailed => "ログインIDまたはパスワードが正しくありません。".into(),
            ApiError::AccountLocked => "パスワードの誤りが続いたため、15分間ロックしました。至急の場合は行政管理課へ電話してください。".into(),
            ApiError::NotYourDevice => "選択された端末はあなたの端末ではありません。".into(),
            ApiError::RateLimited(s) => format!("短時間に多くの送信がありました。{s}秒ほど待ってから、もう一度お試しください。"),
            ApiError::TooLarge(_) => "送信された内容が大きすぎます。".into(),
            ApiError::NotFound(_) | ApiError::NoRoute(_) => "お探しのページや情報は見つかりませんでした。".into(),
            _ if self.status().is_server_error() => {
                "システムエラーが発生しました。時間をおいて再度お試しいただき、解決しない場合は行政管理課にご連絡ください。".into()
            }
            _ => "入力内容を確認してください。".into(),
        }
    }
}

/// Japanese names of the fields people fill in.
fn field_ja(field: &str) -> &'static str {
    match field {
        "name" => "施設名",
        "kind" => "施設の種別",
        "address" => "所在地",
        "department" => "担当課（庁外の施設は必須）",
        "manager.name" | "display_name" => "氏名",
        "login_id" => "ログインID（半角英小文字・数字・「.」「_」「-」の3〜32文字）",
        "email" => "メールアドレス",
        "phone" => "電話番号",
        "purpose_attested" => "利用目的の確認（重層的支援体制整備事業の事務に限ること）",
        "terms_version" => "利用規約への同意",
        "password" => "パスワード（10文字以上）",
        "code" => "登録コード",
        "device id" => "端末番号（数字）",
        _ => "入力内容",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = if status.is_server_error() {
            // The cause goes to the log, not to the caller.
            tracing::error!(error = ?self, "request failed");
            "internal error; the details are in the server log".to_string()
        } else {
            self.to_string()
        };
        let mut response = (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
        if let ApiError::RateLimited(secs) = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The JSON 404 of both routers.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}
