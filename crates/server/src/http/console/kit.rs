//! What every console page shares: the caller and their menu, the CSRF
//! token, the security headers, the terms-of-use gate, confirmation and
//! result pages, and Japanese names of states and roles.
//!
//! CSRF: a browser sends the client certificate with any request to this
//! origin, even one started by another site, so every form carries a token
//! bound to the caller's certificate (HMAC with a per-process key) and a POST
//! from another origin is refused.

use askama::Template;
use aws_lc_rs::hmac;
use axum::extract::{FromRequest, FromRequestParts, RawForm};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connect_pki_domain::{CertStatus, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::http::state::AppState;
use connect_pki_ra::ServiceError;

/// One entry of the menu.
pub(crate) struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
}

/// The menu of a role: every task the API offers it, as pages.
pub(crate) fn nav_for(role: Role) -> Vec<NavItem> {
    let item = |href, label| NavItem { href, label };
    match role {
        Role::AdminDivision => vec![
            item("/console/", "緊急届出"),
            item("/console/phone", "電話での届出"),
            item("/console/applications", "施設の申請"),
            item("/console/facilities", "施設一覧"),
            item("/console/certificates/expiring", "証明書の期限"),
            item("/console/relying-parties", "確認しているシステム"),
            item("/console/audit", "監査ログ"),
            item("/console/review", "アカウントの棚卸し"),
            item("/console/me", "わたしの端末"),
        ],
        Role::WelfareDivision => vec![
            item("/console/applications", "施設の申請"),
            item("/console/facilities", "施設一覧"),
            item("/console/audit", "監査ログ"),
            item("/console/me", "わたしの端末"),
        ],
        Role::FacilityManager => vec![
            item("/console/", "緊急届出"),
            item("/console/staff", "職員と端末"),
            item("/console/expiring", "期限の近い証明書"),
            item("/console/trail", "操作の記録"),
            item("/console/review", "アカウントの棚卸し"),
            item("/console/me", "わたしの端末"),
        ],
        // A program with its own certificate, shown its own device only.
        Role::Staff | Role::DeviceManagement => vec![item("/console/me", "わたしの端末")],
    }
}

/// A console page's entry in the menu, named by a type so that a handler
/// says in its signature where it belongs ([`Page`]).
pub(crate) trait Section {
    const HREF: &'static str;
}

macro_rules! sections {
    ($($(#[$m:meta])* $name:ident = $href:literal,)+) => {
        $($(#[$m])* pub(crate) struct $name;
        impl Section for $name {
            const HREF: &'static str = $href;
        })+
    };
}

/// The menu entries pages belong to.
pub(crate) mod section {
    use super::Section;

    sections! {
        /// The escalation queue (and the incident record reached from it).
        Queue = "/console/",
        /// A facility's staff, devices and the steps on them.
        Staff = "/console/staff",
        Expiring = "/console/expiring",
        Trail = "/console/trail",
        Me = "/console/me",
        Applications = "/console/applications",
        Facilities = "/console/facilities",
        /// Every facility's certificates running out (the city's page).
        CityExpiring = "/console/certificates/expiring",
        RelyingParties = "/console/relying-parties",
        Audit = "/console/audit",
        /// 電話での届出: a call taken by 行政管理課.
        Phone = "/console/phone",
        /// アカウントの棚卸し.
        Review = "/console/review",
    }
}

/// The context of a console page in section `S`, as an extractor that owns
/// its refusal: without a usable certificate, a page saying so in Japanese;
/// a manager who has not accepted the terms in force, the terms to accept.
pub(crate) struct Page<S> {
    pub ctx: Ctx,
    section: std::marker::PhantomData<S>,
}

impl<S: Section + Send> FromRequestParts<AppState> for Page<S> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Refusal> {
        let caller = Caller::from_request_parts(parts, state).await;
        Ok(Self { ctx: Ctx::of(state, caller, S::HREF).await?, section: std::marker::PhantomData })
    }
}

/// The caller of a page, with what the layout shows.
pub(crate) struct Ctx {
    pub(crate) caller: Caller,
    pub(crate) who: String,
    pub(crate) role_ja: &'static str,
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavItem>,
    /// The menu entry of this page (`href`), marked `aria-current`.
    pub(crate) current: &'static str,
    /// Whom people of an outside facility ask first (their 担当課), shown on
    /// every page they see.
    pub(crate) contact: Option<String>,
}

impl Ctx {
    /// The context of a page at `current`, or the page to show instead: a
    /// refusal without a usable certificate, the terms of use to accept for
    /// a manager who has not accepted the version in force.
    pub(crate) async fn of(
        state: &AppState,
        caller: Result<Caller, ApiError>,
        current: &'static str,
    ) -> Result<Ctx, Refusal> {
        let caller = caller?;
        if let Some(page) = super::terms_gate(state, &caller, None).await {
            return Err(Refusal::from(page));
        }
        Ok(Self::new(state, caller, current))
    }

    pub fn new(state: &AppState, caller: Caller, current: &'static str) -> Ctx {
        Ctx {
            who: caller.identity.user.display_name.clone().unwrap_or_default(),
            role_ja: role_ja(caller.requester.actor.role),
            csrf: csrf_token(state, &caller),
            nav: nav_for(caller.requester.actor.role),
            current,
            contact: contact_of(state, &caller),
            caller,
        }
    }

    pub(crate) fn role(&self) -> Role {
        self.caller.requester.actor.role
    }
}

/// The rules' route for an outside facility's questions: its 担当課 first,
/// eligibility through it to 福祉課, 行政管理課 only for emergencies.
fn contact_of(state: &AppState, caller: &Caller) -> Option<String> {
    let f = &caller.identity.facility;
    if f.kind != connect_pki_domain::FacilityKind::External || caller.requester.actor.role.is_city() {
        return None;
    }
    let department = f.department.as_deref().filter(|d| !d.is_empty())?;
    let named = state.settings.department(department).map_or_else(|| department.to_string(), |d| d.named());
    Some(format!(
        "お問い合わせは、まず担当課の{named}へ。利用の対象になるかどうかは、担当課を通じて福祉課（保健福祉部福祉課総合支援係）へ。夜間・休日の端末の紛失など緊急のときだけ、行政管理課へ電話してください。"
    ))
}

/// A key for CSRF tokens, made at start. Without the system's random
/// generator there is no key: the service does not start rather than sign
/// tokens with a key anyone could know.
pub(crate) fn new_csrf_key() -> anyhow::Result<hmac::Key> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    hmac::Key::generate(hmac::HMAC_SHA256, &rng)
        .map_err(|_| anyhow::anyhow!("the system's random generator failed: no key for the console's CSRF tokens"))
}

pub(crate) fn csrf_token(state: &AppState, caller: &Caller) -> String {
    hex::encode(hmac::sign(&state.csrf_key, caller.identity.certificate.serial.as_bytes()).as_ref())
}

fn csrf_ok(state: &AppState, caller: &Caller, token: &str, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    // HTTP/1.1 names the host in Host; HTTP/2 in the :authority of the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    let same_origin = match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin" || v == "none"),
        Some(origin) => host.is_some_and(|host| origin == format!("https://{host}")),
    };
    let token_ok = hex::decode(token)
        .is_ok_and(|t| hmac::verify(&state.csrf_key, caller.identity.certificate.serial.as_bytes(), &t).is_ok());
    same_origin && token_ok
}

/// A console action (a POST from one of its forms), as an extractor that
/// owns its refusal: the caller's certificate, the form read as `F`, and
/// the form's CSRF token and the request's origin checked — or the Japanese
/// page saying which of them failed.
pub(crate) struct Acting<F> {
    pub(crate) caller: Caller,
    pub(crate) form: F,
}

/// The one field every console form carries besides its own.
#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for Acting<F> {
    type Rejection = Refusal;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Refusal> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let (headers, uri) = (parts.headers.clone(), parts.uri.clone());
        let RawForm(bytes) = RawForm::from_request(axum::extract::Request::from_parts(parts, body), state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(crate::http::MAX_BODY),
                _ => ApiError::BadRequest(e.body_text()),
            })?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if !csrf_ok(state, &caller, &token.csrf, &headers, &uri) {
            return Err(ApiError::CsrfRejected.into());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { caller, form })
    }
}

/// The form of an action that asks nothing but the click (and its token).
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// The number in a console page's path (a user, a device), as an extractor
/// that owns its refusal: anything but a positive number is the Japanese
/// "not found" page.
pub(crate) struct Numbered(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for Numbered {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Refusal> {
        let raw = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::NoRoute(e.body_text()))?
            .0;
        raw.parse::<i64>().ok().filter(|n| *n > 0).map(Numbered).ok_or_else(|| ApiError::NoRoute(raw).into())
    }
}

/// A rendered console page with headers that keep it from being framed,
/// cached or running anything it did not ship.
pub(crate) fn page(status: StatusCode, t: &impl Template) -> Response {
    crate::http::html_page(
        status,
        t,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    )
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    title: &'static str,
    message: String,
}

/// The page a console handler shows instead of the one asked for (a refusal
/// in Japanese, the terms of use to accept): what it returns early with `?`.
#[derive(Debug)]
pub(crate) struct Refusal(Box<Response>);

/// What a console handler returns: its page, or the page shown instead.
pub(crate) type PageResult = Result<Response, Refusal>;

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Refusal {
    fn from(page: Response) -> Self {
        Self(Box::new(page))
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        refuse(e).into()
    }
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        refuse(e.into()).into()
    }
}

/// A page saying why the request was refused, in Japanese, with its status.
pub(crate) fn refuse(e: ApiError) -> Response {
    use connect_pki_ra::error::NotAuthenticated;
    let message = match &e {
        ApiError::Service(ServiceError::NotAuthenticated(NotAuthenticated::CertificateNotUsable {
            status: "expired",
            ..
        })) => "この証明書は有効期限が切れています。期限が切れた証明書は更新できないため、施設管理者に新しい登録コードを発行してもらい、登録し直してください。".to_string(),
        ApiError::NoClientCertificate | ApiError::Service(ServiceError::NotAuthenticated(_)) => {
            "このページは、登録済みの端末の証明書でのみ開けます。".to_string()
        }
        _ => e.message_ja(),
    };
    page(e.status(), &MessagePage { title: "CONNECT 証明書サービス", message })
}

/// One line of what a confirmation or a result page names: (label, value).
pub(crate) type Fact = (&'static str, String);

/// The page every destructive step shows first: who and what it touches,
/// the effect in words, and the one button that does it.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(crate) struct ConfirmPage<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) title: &'static str,
    pub(crate) facts: Vec<Fact>,
    /// What will happen, in the words of the person affected
    /// (「この端末は直ちに電子@連絡帳に接続できなくなります」).
    pub(crate) effect: String,
    pub(crate) action: String,
    /// Extra fields the form posts besides the CSRF token: (name, label, kind) — kind is
    /// `text`, `date` or `reason` (a choice of RFC 5280 reasons).
    pub(crate) fields: Vec<(&'static str, &'static str, &'static str)>,
    pub(crate) button: &'static str,
    pub(crate) back: String,
}

/// The page after a destructive step: what happened and when.
#[derive(Template)]
#[template(path = "console/result.html")]
pub(crate) struct ResultPage<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) title: &'static str,
    pub(crate) message: String,
    pub(crate) facts: Vec<Fact>,
    pub(crate) back: String,
}

/// Where this service's pages are, for links people open on another device
/// (the enroll page on a slip, the emergency page): `--https-url`, else the
/// host the browser asked for; a relative link when neither is usable.
pub(crate) fn https_base(state: &AppState, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(base) = &state.https_url {
        return base.to_string();
    }
    // HTTP/1.1 names the host in Host; HTTP/2 in the :authority of the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .or_else(|| uri.authority().cloned())
        .filter(|a| !a.as_str().contains('@'));
    host.map_or_else(String::new, |a| format!("https://{a}"))
}

/// The start of the day `raw` (`2026-04-01`) in Asia/Tokyo, `plus_days`
/// later (1: the end of that day, for "until"); `Ok(None)` when blank,
/// `Err(NotADate)` when it is not such a date.
pub(crate) fn tokyo_day_start(raw: &str, plus_days: i64) -> Result<Option<OffsetDateTime>, NotADate> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let date: jiff::civil::Date = raw.parse().map_err(|_| NotADate)?;
    let ts = date
        .checked_add(jiff::Span::new().days(plus_days))
        .and_then(|d| d.in_tz("Asia/Tokyo"))
        .map_err(|_| NotADate)?
        .timestamp()
        .as_second();
    OffsetDateTime::from_unix_timestamp(ts).map(Some).map_err(|_| NotADate)
}

/// A filter's day that is not `YYYY-MM-DD` (or out of range).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotADate;

/// A time as people in Chitose read it: Asia/Tokyo, to the minute.
pub(crate) fn local(t: OffsetDateTime) -> String {
    connect_pki_domain::calendar::tokyo(t)
        .map(|(d, tm)| format!("{d} {:02}:{:02}", tm.hour(), tm.minute()))
        .unwrap_or_else(|_| t.to_string())
}

pub(crate) fn cert_ja(s: CertStatus) -> &'static str {
    match s {
        CertStatus::Valid => "有効",
        CertStatus::OnHold => "一時停止中",
        CertStatus::Revoked => "失効",
        CertStatus::Superseded => "更新済み（失効）",
    }
}

pub(crate) fn role_ja(r: Role) -> &'static str {
    match r {
        Role::AdminDivision => "行政管理課",
        Role::WelfareDivision => "福祉課",
        Role::FacilityManager => "施設管理者",
        Role::Staff => "職員",
        Role::DeviceManagement => "端末管理システム",
    }
}
