//! The one place where failures become HTTP responses:
//! `{"error": {"code", "message"}}` with the matching status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use connect_pki_ca::CaError;
use connect_pki_domain::DomainError;
use connect_pki_domain::enrollment::Refusal;
use serde_json::json;

use connect_pki_store::Conflict as StoreConflict;

use connect_pki_ra::error::NotAuthenticated;
use connect_pki_ra::{Conflict, ServiceError};

/// Every way an API call can fail: the transport's own refusals, and what
/// the registration authority said.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("this API needs a client certificate issued by connect-pki (curl: --cert and --key)")]
    NoClientCertificate,
    #[error("no such route: {0}")]
    NoRoute(String),
    /// An EST enrollment without HTTP Basic credentials: the one-time
    /// enrollment code goes in the password (RFC 7030, 3.2.3).
    #[error("EST enrollment needs the one-time enrollment code as the HTTP Basic password (curl: -u label:CODE)")]
    EstCodeRequired,
    /// An EST request body of another type than a PKCS#10 request.
    #[error("send EST requests with Content-Type: application/pkcs10 (a base64-encoded PKCS#10 request)")]
    NotPkcs10,
    /// SCEP without its RA key (the CA keys are in a PKCS#11 token).
    #[error("SCEP is not offered by this installation: its CA keys are in a PKCS#11 token; use EST")]
    ScepUnavailable,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadJson(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("send state changes as JSON with Content-Type: application/json (an empty body where the call takes none)")]
    NotJson,
    #[error("too many requests from this address; wait {0} seconds and try again")]
    RateLimited(u64),
    /// A state change sent from another origin (a page the operator has open).
    #[error("state changes are accepted only from this service's own pages and API clients, not from another site")]
    CrossSite,
    /// A console form without a valid token of its own, or from another origin.
    #[error("the form's CSRF token is missing or wrong; reload the page")]
    CsrfRejected,
    /// A call that carries a code, password, key or personal data, sent
    /// over plain HTTP. The body was not read.
    #[error("this call carries secrets and is served over HTTPS only: {0}")]
    HttpsRequired(String),
    /// Another instance rolled over to issuing CA generation `.0`, which
    /// this one has not loaded: it cannot publish that CA's CRL nor issue
    /// from it, so it changes nothing until it is restarted with it.
    #[error(
        "this instance has not loaded issuing CA generation {0}, which another instance rolled over to; nothing was \
         changed. Try again (another instance may take it), and restart this one with the new CA (the ca/ directory \
         of the instance that rolled over)"
    )]
    BehindRollover(u32),
    /// Too many requests without a client certificate are inside already
    /// (`strangers`): nothing was read or changed.
    #[error("the service is busy with other visitors' requests; nothing was changed; try again in {0} seconds")]
    Crowded(u64),
    #[error("{0}")]
    Service(#[from] ServiceError),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Service(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Service(ServiceError::Internal(e))
    }
}

impl ApiError {
    /// Status and stable error code: the one place both are chosen.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NoClientCertificate => (StatusCode::UNAUTHORIZED, "client_certificate_required"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::EstCodeRequired => (StatusCode::UNAUTHORIZED, "code_required"),
            ApiError::NotPkcs10 => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_pkcs10"),
            ApiError::ScepUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "scep_unavailable"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Crowded(_) => (StatusCode::SERVICE_UNAVAILABLE, "crowded"),
            ApiError::CsrfRejected => (StatusCode::FORBIDDEN, "csrf_rejected"),
            ApiError::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
            ApiError::HttpsRequired(_) => (StatusCode::FORBIDDEN, "https_required"),
            ApiError::BehindRollover(_) => (StatusCode::SERVICE_UNAVAILABLE, "behind_rollover"),
            ApiError::Service(e) => service_parts(e),
        }
    }
}

fn service_parts(e: &ServiceError) -> (StatusCode, &'static str) {
    match e {
        ServiceError::NotAuthenticated(NotAuthenticated::UnknownCertificate(_)) => {
            (StatusCode::UNAUTHORIZED, "certificate_unknown")
        }
        ServiceError::NotAuthenticated(NotAuthenticated::CertificateNotUsable { .. }) => {
            (StatusCode::UNAUTHORIZED, "certificate_not_usable")
        }
        ServiceError::NotAuthenticated(NotAuthenticated::BadSignature(_)) => {
            (StatusCode::UNAUTHORIZED, "bad_signature")
        }
        ServiceError::Conflict(Conflict::Record(StoreConflict::Replayed)) => (StatusCode::CONFLICT, "replayed"),
        ServiceError::AccountDisabled(_) => (StatusCode::FORBIDDEN, "account_disabled"),
        ServiceError::FacilityNotActive(_) => (StatusCode::FORBIDDEN, "facility_not_active"),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ServiceError::NotAllowed { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        ServiceError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ServiceError::Conflict(Conflict::Transition { .. }) => (StatusCode::CONFLICT, "invalid_transition"),
        ServiceError::Conflict(Conflict::CertificateNotUsable { .. }) => {
            (StatusCode::CONFLICT, "certificate_not_usable")
        }
        ServiceError::Conflict(Conflict::LastManager { .. }) => (StatusCode::CONFLICT, "last_manager"),
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldByEscalation { .. })) => {
            (StatusCode::CONFLICT, "held_by_escalation")
        }
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldBySuspension { .. })) => {
            (StatusCode::CONFLICT, "held_by_suspension")
        }
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldByCity { .. })) => {
            (StatusCode::CONFLICT, "held_by_city")
        }
        ServiceError::Conflict(Conflict::Record(_)) => (StatusCode::CONFLICT, "conflict"),
        ServiceError::SignInFailed => (StatusCode::UNAUTHORIZED, "sign_in_failed"),
        ServiceError::NotYourDevice => (StatusCode::FORBIDDEN, "not_your_device"),
        ServiceError::Enrollment(refusal) => match refusal {
            Refusal::WrongCode => (StatusCode::UNAUTHORIZED, "invalid_code"),
            Refusal::Redeemed => (StatusCode::CONFLICT, "code_used"),
            Refusal::Expired => (StatusCode::CONFLICT, "code_expired"),
            Refusal::Locked => (StatusCode::FORBIDDEN, "code_locked"),
            Refusal::AccountClosed(_) => (StatusCode::FORBIDDEN, "account_disabled"),
            Refusal::FacilityNotActive(_) => (StatusCode::FORBIDDEN, "facility_not_active"),
            Refusal::PasswordRequired => (StatusCode::UNPROCESSABLE_ENTITY, "password_required"),
        },
        ServiceError::Csr(CaError::SubjectMismatch(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "csr_subject_mismatch"),
        ServiceError::Csr(CaError::KeyNotAllowed(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "key_not_allowed"),
        ServiceError::Csr(_) => (StatusCode::BAD_REQUEST, "bad_csr"),
        ServiceError::TooManyRenewals(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        ServiceError::NotYetRenewable { .. } => (StatusCode::CONFLICT, "not_yet_renewable"),
        ServiceError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
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
            ApiError::Service(e) => service_message_ja(e),
            ApiError::RateLimited(s) => format!("短時間に多くの送信がありました。{s}秒ほど待ってから、もう一度お試しください。"),
            ApiError::TooLarge(_) => "送信された内容が大きすぎます。".into(),
            ApiError::Crowded(s) => format!("ただいま混み合っているため、受け付けられませんでした。何も変更されていません。{s}秒ほど待ってから、もう一度お試しください。至急の場合は行政管理課へ電話してください。"),
            ApiError::NoRoute(_) => NOT_FOUND_JA.into(),
            ApiError::BehindRollover(_) => "このサーバーは新しい発行CAをまだ読み込んでいないため、受け付けられませんでした。何も変更されていません。しばらくしてからもう一度お試しください。至急の場合は行政管理課へ電話してください。".into(),
            ApiError::CrossSite => "ほかのサイトからの操作は受け付けません。この画面から操作してください。".into(),
            ApiError::HttpsRequired(url) => {
                format!("この画面は暗号化された通信（HTTPS）でのみ使えます。{url} を開いてください。")
            }
            ApiError::CsrfRejected => {
                "不正なリクエストです（確認用トークンがないか、正しくありません）。画面を開き直してから操作してください。".into()
            }
            _ => CHECK_INPUT_JA.into(),
        }
    }
}

const NOT_FOUND_JA: &str = "お探しのページや情報は見つかりませんでした。";
const CHECK_INPUT_JA: &str = "入力内容を確認してください。";

/// Why a certificate cannot be used for what was asked, as `check_renewal`
/// and the lifecycle name it.
fn not_usable_ja(status: &str) -> &'static str {
    match status {
        "on_hold" => "この証明書は一時停止中のため、この操作はできません。",
        "expired" => {
            "この証明書は有効期限が切れているため更新できません。施設管理者に新しい登録コードを発行してもらい、登録し直してください。"
        }
        "superseded" => "この証明書はすでに更新済みです。新しい証明書を使ってください。",
        "of a device that is no longer active" => {
            "この端末は使用終了または紛失として届け出られているため、この操作はできません。"
        }
        "of a facility that is not active" => {
            "施設が利用停止中のため、この操作はできません。行政管理課にお問い合わせください。"
        }
        "of a retired user" => "このアカウントは退職済みのため、この操作はできません。",
        _ => "この証明書はすでに失効しているため、この操作はできません。",
    }
}

fn service_message_ja(e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid { field, .. } => format!("{}を確認してください。", field_ja(field)),
        ServiceError::Conflict(Conflict::Record(StoreConflict::LoginIdTaken { .. })) => {
            "そのログインIDはすでに使われています。別のログインIDを指定してください。".into()
        }
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldByEscalation { escalation, .. })) => format!(
            "この証明書は端末紛失の届出（受付 {escalation}）により一時停止中です。停止の解除は、その届出の対応で「解除」とすることでのみ行えます。"
        ),
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldBySuspension { .. })) => {
            "この証明書は施設の利用停止により一時停止中です。停止は、行政管理課が施設の利用を再開したときに解除されます。".into()
        }
        ServiceError::Conflict(Conflict::Record(StoreConflict::HeldByCity { .. })) => {
            "この証明書は行政管理課が一時停止しました。停止の解除は行政管理課にご依頼ください。".into()
        }
        ServiceError::Enrollment(r) => match r {
            Refusal::WrongCode => "登録コードが正しくありません。確認して入力し直してください（誤りが続くとコードは使えなくなります）。".into(),
            Refusal::Redeemed => "この登録コードは使用済みです。施設管理者に新しいコードを発行してもらってください。".into(),
            Refusal::Expired => "この登録コードは有効期限切れです。施設管理者に新しいコードを発行してもらってください。".into(),
            Refusal::Locked => "誤入力が多いため、この登録コードはロックされました。施設管理者に新しいコードを発行してもらってください。".into(),
            Refusal::AccountClosed(_) => "このアカウントは利用できません。施設管理者にお問い合わせください。".into(),
            Refusal::FacilityNotActive(_) => "施設が利用停止中のため登録できません。行政管理課にお問い合わせください。".into(),
            Refusal::PasswordRequired => "初回登録です。10文字以上のパスワードを設定してください。".into(),
        },
        ServiceError::Csr(_) => "証明書署名要求（CSR）を受け付けられませんでした。端末で作り直してください。".into(),
        ServiceError::SignInFailed => "ログインIDまたはパスワードが正しくないか、誤りが続いたため一時的に受け付けていません。至急の場合は行政管理課へ電話してください。".into(),
        ServiceError::NotYourDevice => "選択された端末はあなたの端末ではありません。".into(),
        ServiceError::Busy => "データベースがほかの処理で混み合っているため、受け付けられませんでした。何も変更されていません。数秒後にもう一度お試しください。至急の場合は行政管理課へ電話してください。".into(),
        ServiceError::NotFound(_) => NOT_FOUND_JA.into(),
        ServiceError::NotAllowed { .. } => "この操作を行う権限がありません。".into(),
        ServiceError::AccountDisabled(_) => "この証明書のアカウントは利用できません。施設管理者にお問い合わせください。".into(),
        ServiceError::FacilityNotActive(_) => "施設が利用停止中のため、この操作はできません。行政管理課にお問い合わせください。".into(),
        ServiceError::Conflict(Conflict::Transition { from, to }) => transition_ja(from, to),
        ServiceError::Conflict(Conflict::CertificateNotUsable { status, .. }) => not_usable_ja(status).into(),
        ServiceError::Conflict(Conflict::LastManager { .. }) => "この方は施設でただ一人の施設管理者のため、退職・役割の変更・異動はできません。先に別の施設管理者を登録してください（行政管理課は後任を指名したうえで手続きできます）。".into(),
        ServiceError::TooManyRenewals(t) => format!(
            "この端末は1時間のうちに何度も更新したため、受け付けられませんでした。何も変更されていません。{}秒ほど待ってから、もう一度お試しください。",
            t.retry_after
        ),
        ServiceError::NotYetRenewable { from } => format!(
            "この証明書はまだ更新できません。{} から更新できます（有効期限が近づくと、このページに「証明書を更新する」が表示されます）。",
            crate::http::console::kit::local(*from)
        ),
        ServiceError::Conflict(Conflict::Record(StoreConflict::SupersededBy { current, .. })) => format!(
            "この証明書は更新済みです。端末を止めるには、現在の証明書（{current}）を失効するか、端末の紛失を届け出てください。"
        ),
        ServiceError::Internal(_) => {
            "システムエラーが発生しました。時間をおいて再度お試しいただき、解決しない場合は行政管理課にご連絡ください。".into()
        }
        _ => CHECK_INPUT_JA.into(),
    }
}

/// Why a lifecycle step cannot be taken, from the state it would start in
/// and the one it was to reach.
fn transition_ja(from: &str, to: &str) -> String {
    match (from, to) {
        ("no retirement scheduled", _) => "この職員に予定された退職はありません。".into(),
        ("retired", _) => "この職員はすでに退職済みのため、この操作はできません。".into(),
        ("deleted", _) => "この職員の個人情報はすでに削除されています。".into(),
        (_, "deleted (retire first)") => {
            "退職の手続きが済んでいないため、個人情報は削除できません（先に退職にしてください）。".into()
        }
        ("revoked" | "superseded", _) => "この証明書はすでに失効しているため、この操作はできません。".into(),
        _ => "現在の状態では、この操作はできません。画面を更新して状態を確認してください。".into(),
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
        "reason" => "理由（500文字以内）",
        "by_hand_days" | "managed_days" => "証明書の有効期間（1〜398日）",
        _ => "入力内容",
    }
}

impl ApiError {
    /// Seconds after which the same request may succeed, for `Retry-After`.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited(secs)
            | ApiError::Crowded(secs)
            | ApiError::Service(ServiceError::TooManyRenewals(connect_pki_domain::enrollment::TooManyRenewals {
                retry_after: secs,
                ..
            })) => Some(*secs),
            ApiError::Service(ServiceError::Busy) => Some(connect_pki_store::WRITE_WAIT.as_secs()),
            ApiError::BehindRollover(_) => Some(60),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            // The cause goes to the log, not to the caller.
            ApiError::Service(ServiceError::Internal(_)) => {
                tracing::error!(error = ?self, "request failed");
                "internal error; the details are in the server log".to_string()
            }
            ApiError::Service(ServiceError::Busy) => {
                tracing::warn!(error = %self, "a write waited past its bound for the database");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let mut response = (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let ApiError::EstCodeRequired = self {
            let challenge = axum::http::HeaderValue::from_static("Basic realm=\"connect-pki EST\", charset=\"UTF-8\"");
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, challenge);
        }
        if let ApiError::HttpsRequired(_) | ApiError::TooLarge(_) = self {
            // The body that followed (in clear, or past the limit) is never
            // read: end the connection instead, and say so.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// The JSON 404 of both routers.
pub(crate) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}
