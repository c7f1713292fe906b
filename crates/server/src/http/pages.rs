//! Japanese pages that need no certificate, served on HTTPS only: the
//! facility application form, its status page, device enrollment with a key
//! generated on the server, and the emergency report.
//! Errors are shown on the page, in Japanese, with what the person typed kept.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use connect_pki_domain::ApplicationStatus;
use connect_pki_domain::FacilityKind;
use connect_pki_domain::application::ApplicationForm;
use serde::Deserialize;

use crate::http::api::views::rfc3339;
use crate::http::error::ApiError;
use crate::http::forwarded::Client;
use crate::http::install::Handout;
use crate::http::state::AppState;
use crate::http::strangers;
use connect_pki_ra::enrollment::{EnrollRequest, Enrolled};
use connect_pki_ra::{ServiceError, applications, enrollment};

/// Routes of the pages.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/apply", get(apply_form).post(apply_submit))
        .route("/apply/status/{token}", get(apply_status))
        .route("/enroll", get(enroll_form).post(enroll_submit))
        .route("/emergency", get(emergency_form).post(emergency_submit))
        .route("/emergency/report", axum::routing::post(emergency_report))
        .merge(crate::http::install::routes())
        .with_state(state)
}

/// A rendered page with headers that keep it from being framed, cached or
/// running anything it did not ship.
pub(crate) fn page(status: StatusCode, t: &impl Template) -> Response {
    let csp =
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
    crate::http::html_page(status, t, csp)
}

/// What the application form holds, as typed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApplyFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    manager_name: String,
    #[serde(default)]
    manager_login_id: String,
    #[serde(default)]
    manager_email: String,
    #[serde(default)]
    manager_phone: String,
    #[serde(default)]
    purpose_attested: Option<String>,
    #[serde(default)]
    terms_version: Option<String>,
}

struct ApplyView {
    name: String,
    kind: String,
    address: String,
    department: String,
    manager_name: String,
    manager_login_id: String,
    manager_email: String,
    manager_phone: String,
    purpose_attested: bool,
    terms_accepted: bool,
}

#[derive(Template)]
#[template(path = "apply.html")]
struct ApplyPage<'a> {
    form: ApplyView,
    error: Option<String>,
    terms: &'a connect_pki_ra::terms::Terms,
    /// The city's 担当課 to choose from (none configured: typed).
    departments: &'a [connect_pki_ra::settings::Department],
}

#[derive(Template)]
#[template(path = "applied.html")]
struct AppliedPage {
    id: i64,
    status_page: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    id: i64,
    name: String,
    created_at: String,
    status_ja: &'static str,
    reason: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) title: &'static str,
    pub(crate) message: String,
}

impl From<&ApplyFields> for ApplyView {
    fn from(f: &ApplyFields) -> Self {
        Self {
            name: f.name.clone(),
            kind: f.kind.clone(),
            address: f.address.clone(),
            department: f.department.clone(),
            manager_name: f.manager_name.clone(),
            manager_login_id: f.manager_login_id.clone(),
            manager_email: f.manager_email.clone(),
            manager_phone: f.manager_phone.clone(),
            purpose_attested: f.purpose_attested.is_some(),
            terms_accepted: f.terms_version.is_some(),
        }
    }
}

async fn apply_form(State(state): State<AppState>) -> Response {
    let terms = &state.settings.terms;
    let departments = &state.settings.departments;
    page(StatusCode::OK, &ApplyPage { form: (&ApplyFields::default()).into(), error: None, terms, departments })
}

async fn apply_submit(State(state): State<AppState>, client: Client, Form(f): Form<ApplyFields>) -> Response {
    let result: Result<_, ApiError> = async {
        let kind: FacilityKind = f.kind.parse()?;
        let form = ApplicationForm {
            name: f.name.clone(),
            kind,
            address: f.address.clone(),
            department: Some(f.department.clone()),
            manager_name: f.manager_name.clone(),
            manager_login_id: f.manager_login_id.clone(),
            manager_email: f.manager_email.clone(),
            manager_phone: f.manager_phone.clone(),
            purpose_attested: f.purpose_attested.is_some(),
            terms_version: f.terms_version.clone().unwrap_or_default(),
        };
        strangers::serve(&state, Some((&state.limits.apply, client.addr)), move |state| async move {
            Ok(applications::submit(&state, form, &client.addr.to_string()).await?)
        })
        .await
    }
    .await;
    match result {
        Ok(app) => page(
            StatusCode::CREATED,
            &AppliedPage { id: app.id, status_page: format!("/apply/status/{}", app.status_token) },
        ),
        Err(e) => page(
            e.status(),
            &ApplyPage {
                form: (&f).into(),
                error: Some(e.message_ja()),
                terms: &state.settings.terms,
                departments: &state.settings.departments,
            },
        ),
    }
}

async fn apply_status(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let found =
        strangers::serve(&state, None, move |state| async move { Ok(applications::by_token(&state, &token).await?) });
    match found.await {
        Ok(app) => page(
            StatusCode::OK,
            &StatusPage {
                id: app.id,
                name: app.form.name,
                created_at: rfc3339(app.created_at),
                status_ja: match app.status {
                    ApplicationStatus::Pending => "審査中",
                    ApplicationStatus::Approved => "承認済み（施設管理者あてに登録コードが発行されます）",
                    ApplicationStatus::Rejected => "却下",
                },
                reason: app.decision_reason,
            },
        ),
        Err(e) => {
            let message = match &e {
                ApiError::Service(ServiceError::NotFound(_)) => {
                    "申請が見つかりませんでした。アドレスを確認してください。".into()
                }
                _ => e.message_ja(),
            };
            page(e.status(), &MessagePage { title: "申請状況", message })
        }
    }
}

#[derive(Default, Deserialize)]
pub(crate) struct EnrollFields {
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    device_label: String,
}

connect_pki_domain::redacted_debug!(EnrollFields { device_label; code, password });

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage {
    code: String,
    device_label: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "enrolled.html")]
struct EnrolledPage {
    handout: Handout,
}

async fn enroll_form() -> Response {
    page(StatusCode::OK, &EnrollPage { code: String::new(), device_label: String::new(), error: None })
}

async fn enroll_submit(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Form(f): Form<EnrollFields>,
) -> Response {
    let result: Result<_, ApiError> = async {
        let req = EnrollRequest {
            code: f.code.clone(),
            csr: None,
            generate_key: true,
            key_type: None,
            password: Some(f.password.clone()),
            device_label: Some(f.device_label.clone()),
            channel: connect_pki_domain::enrollment::Channel::ByHand,
        };
        strangers::serve(&state, Some((&state.limits.enroll, client.addr)), move |state| async move {
            Ok(enrollment::enroll(&state, req, &client.addr.to_string()).await?)
        })
        .await
    }
    .await;
    match result {
        Ok(Enrolled::Pkcs12 { device, serial, pkcs12, password }) => {
            match Handout::new(&state, &headers, device.0, serial.to_hex(), &pkcs12, password) {
                Ok(handout) => page(StatusCode::CREATED, &EnrolledPage { handout }),
                Err(e) => {
                    let e = ApiError::from(e);
                    page(e.status(), &MessagePage { title: "端末の登録", message: e.message_ja() })
                }
            }
        }
        Ok(Enrolled::Certificate { .. } | Enrolled::Key { .. }) => {
            let e = ApiError::from(anyhow::anyhow!("a page enrollment returned no PKCS#12"));
            page(e.status(), &MessagePage { title: "端末の登録", message: e.message_ja() })
        }
        Err(e) => page(
            e.status(),
            &EnrollPage { code: f.code.clone(), device_label: f.device_label.clone(), error: Some(e.message_ja()) },
        ),
    }
}

#[derive(Default, Deserialize)]
pub(crate) struct EmergencyFields {
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    password: String,
}

connect_pki_domain::redacted_debug!(EmergencyFields { login_id; password });

/// The second step: the ticket from signing in and the device chosen.
#[derive(Default, Deserialize)]
pub(crate) struct ReportFields {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    device_id: String,
}

connect_pki_domain::redacted_debug!(ReportFields { device_id; ticket });

#[derive(Template)]
#[template(path = "emergency.html")]
struct EmergencyPage {
    login_id: String,
    error: Option<String>,
}

/// A device as the person picks it: by its label, with what is on it.
struct DeviceChoice {
    id: i64,
    label: String,
    since: String,
    certificates: String,
}

#[derive(Template)]
#[template(path = "emergency_choose.html")]
struct ChoosePage {
    ticket: String,
    devices: Vec<DeviceChoice>,
    minutes: i64,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "emergency_done.html")]
struct EmergencyDonePage {
    escalation_id: i64,
    held: usize,
    hold_hours: i64,
    next_step: &'static str,
}

async fn emergency_form() -> Response {
    page(StatusCode::OK, &EmergencyPage { login_id: String::new(), error: None })
}

fn choices(devices: Vec<connect_pki_store::DeviceRecord>) -> Vec<DeviceChoice> {
    devices
        .into_iter()
        .map(|d| {
            let live = d.certificates.iter().filter(|c| c.status == connect_pki_domain::CertStatus::Valid).count();
            let held = d.certificates.iter().filter(|c| c.status == connect_pki_domain::CertStatus::OnHold).count();
            DeviceChoice {
                id: d.id.0,
                label: d.label,
                since: d.created_at.date().to_string(),
                certificates: match (live, held) {
                    (0, 0) => "有効な証明書はありません".into(),
                    (l, 0) => format!("有効な証明書 {l} 件"),
                    (l, h) => format!("有効な証明書 {l} 件、一時停止中 {h} 件"),
                },
            }
        })
        .collect()
}

/// First step: sign in; then the person's devices to choose from.
async fn emergency_submit(State(state): State<AppState>, client: Client, Form(f): Form<EmergencyFields>) -> Response {
    let (login_id, password) = (f.login_id.clone(), f.password.clone());
    let result = strangers::serve(&state, Some((&state.limits.emergency, client.addr)), move |state| async move {
        Ok(connect_pki_ra::escalations::ticket(&state, &login_id, &password, client.addr).await?)
    })
    .await;
    match result {
        Ok((ticket, devices)) => {
            let minutes = connect_pki_ra::escalations::TICKET_TTL.whole_minutes();
            page(StatusCode::OK, &ChoosePage { ticket, devices: choices(devices), minutes, error: None })
        }
        Err(e) => page(e.status(), &EmergencyPage { login_id: f.login_id.clone(), error: Some(e.message_ja()) }),
    }
}

/// Second step: the chosen device is reported and its certificates held.
async fn emergency_report(State(state): State<AppState>, client: Client, Form(f): Form<ReportFields>) -> Response {
    let result: Result<_, ApiError> = async {
        let device: connect_pki_domain::DeviceId = f.device_id.trim().parse()?;
        let ticket = f.ticket.clone();
        strangers::serve(&state, Some((&state.limits.emergency, client.addr)), move |state| async move {
            Ok(connect_pki_ra::escalations::report_with_ticket(&state, &ticket, device, client.addr).await?)
        })
        .await
    }
    .await;
    match result {
        Ok((e, held)) => page(
            StatusCode::CREATED,
            &EmergencyDonePage {
                escalation_id: e.id,
                held: held.len(),
                hold_hours: state.settings.hold_limit.whole_hours(),
                next_step: if e.queue == connect_pki_domain::escalation::Queue::AdminDivision {
                    "行政管理課が対応します。端末が見つかった場合も、行政管理課または施設管理者に連絡してください。"
                } else {
                    "施設管理者が対応します。端末が見つかった場合は施設管理者に連絡してください。"
                },
            },
        ),
        // The ticket is used up or ran out: sign in again.
        Err(e) => page(e.status(), &EmergencyPage { login_id: String::new(), error: Some(e.message_ja()) }),
    }
}
