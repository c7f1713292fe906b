//! The facility manager's pages: staff, devices and certificates of their
//! own facility, registration, enrollment-code slips, the destructive steps
//! (each a confirmation page, then the POST, then a result page), the
//! certificates that run out soon and the facility's audit trail.
//!
//! Every page asks the service with the caller's requester; the service
//! decides who may see or do what, and a refusal becomes a Japanese page
//! with its status, showing nothing of what was asked for.

mod actions;
mod edit;
mod register;
mod reports;
mod retire;
mod review;
pub(crate) mod slip;
mod staff;

use axum::Router;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use connect_pki_domain::{CertStatus, DeviceStatus, Role, UserStatus};
use connect_pki_store::{CertificateRecord, DeviceRecord, UserRecord};

use super::kit::{cert_ja, local, role_ja};
use crate::http::state::AppState;

pub(crate) use slip::SlipPage;
pub use slip::qr_data_uri;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/console/staff", get(staff::list))
        .route("/console/staff/new", get(register::form).post(register::submit))
        .route("/console/staff/{id}", get(staff::detail))
        .route("/console/staff/{id}/code", post(slip::issue))
        .route("/console/staff/{id}/edit", get(edit::form).post(edit::submit))
        .route("/console/staff/{id}/password", get(edit::confirm_password).post(edit::reset_password))
        .route("/console/staff/{id}/retire", get(retire::confirm_retire).post(retire::retire))
        .route("/console/staff/{id}/retirement/cancel", get(retire::confirm_cancel).post(retire::cancel))
        .route("/console/staff/{id}/delete", get(retire::confirm_delete).post(retire::delete))
        .route("/console/devices/{id}/lost", get(actions::confirm_lost).post(actions::lost))
        .route("/console/certificates/{serial}/{change}", get(actions::confirm_change).post(actions::change))
        .route("/console/expiring", get(reports::expiring))
        .route("/console/trail", get(reports::trail))
        .route("/console/review", get(review::show).post(review::confirm))
        .with_state(state)
}

pub(crate) fn user_status_ja(s: UserStatus) -> &'static str {
    match s {
        UserStatus::Invited => "端末未登録",
        UserStatus::Active => "利用中",
        UserStatus::Retired => "退職",
        UserStatus::Deleted => "個人情報削除済み",
    }
}

pub(crate) fn device_status_ja(s: DeviceStatus) -> &'static str {
    match s {
        DeviceStatus::Active => "使用中",
        DeviceStatus::Lost => "紛失（停止）",
        DeviceStatus::Retired => "停止（退職）",
    }
}

/// How people are named on the pages; a deleted user has no name left.
pub(crate) use crate::http::console::records::person;

pub(crate) fn device_name(d: &DeviceRecord) -> String {
    labelled_device(d.id, &d.label)
}

/// A device by number and label: 端末 3「受付PC」.
pub(crate) fn labelled_device(id: connect_pki_domain::DeviceId, label: &str) -> String {
    if label.is_empty() { format!("端末 {id}") } else { format!("端末 {id}「{label}」") }
}

/// One certificate as the pages list it, with the steps it can take.
pub(crate) struct CertRow {
    pub serial: String,
    pub(crate) status_ja: &'static str,
    pub not_after: String,
    pub(crate) valid: bool,
    pub(crate) on_hold: bool,
}

impl CertRow {
    pub(crate) fn of(c: &CertificateRecord) -> Self {
        CertRow {
            serial: c.serial.to_hex(),
            status_ja: cert_ja(c.status),
            not_after: local(c.not_after),
            valid: c.status == CertStatus::Valid,
            on_hold: c.status == CertStatus::OnHold,
        }
    }
}

/// One device with its certificates, newest first.
pub(crate) struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub(crate) status_ja: &'static str,
    pub(crate) active: bool,
    pub(crate) certificates: Vec<CertRow>,
}

impl DeviceRow {
    pub(crate) fn of(d: &DeviceRecord) -> Self {
        DeviceRow {
            id: d.id.0,
            name: device_name(d),
            status_ja: device_status_ja(d.status),
            active: d.status == DeviceStatus::Active,
            certificates: d.certificates.iter().map(CertRow::of).collect(),
        }
    }
}

/// A user as the pages show them.
pub(crate) struct UserRow {
    pub id: i64,
    pub name: String,
    pub(crate) login: String,
    pub(crate) role_ja: &'static str,
    pub(crate) status_ja: &'static str,
    /// Retirement scheduled and not run yet (local time).
    pub(crate) retire_at: Option<String>,
    pub(crate) open: bool,
    pub(crate) retired: bool,
    pub(crate) devices: Vec<DeviceRow>,
}

impl UserRow {
    pub(crate) fn of(u: &UserRecord, devices: &[DeviceRecord], retire_at: Option<time::OffsetDateTime>) -> Self {
        UserRow {
            id: u.id.0,
            name: u.display_name.clone().unwrap_or_else(|| format!("職員 {}（個人情報削除済み）", u.id)),
            login: u.login_id.clone().unwrap_or_default(),
            role_ja: role_ja(u.role),
            status_ja: user_status_ja(u.status),
            retire_at: retire_at.filter(|_| matches!(u.status, UserStatus::Invited | UserStatus::Active)).map(local),
            open: matches!(u.status, UserStatus::Invited | UserStatus::Active),
            retired: u.status == UserStatus::Retired,
            devices: devices.iter().map(DeviceRow::of).collect(),
        }
    }
}

/// The roles a manager may register.
pub(crate) const REGISTRABLE: [Role; 2] = [Role::Staff, Role::FacilityManager];

/// The enroll page's address as the slip prints it: `--https-url` when the
/// operator set one (behind a proxy the browser's host may not be the
/// public one), else the host the manager's browser used — the console and
/// `/enroll` share the HTTPS listener.
pub(crate) fn enroll_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    format!("{}/enroll", super::kit::https_base(state, headers, uri))
}
