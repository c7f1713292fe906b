//! Facility applications: the public form, what it answers, and the city's view and decisions.

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::{ApplicationStatus, FacilityKind};
use connect_pki_store::ApplicationRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagerBody {
    pub name: String,
    pub login_id: String,
    pub(crate) email: String,
    pub(crate) phone: String,
}

/// A facility's application (public, no certificate).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationBody {
    pub name: String,
    /// `internal` (庁内, a city department) or `external` (庁外, an outside organisation).
    #[schema(example = "external")]
    pub(crate) kind: FacilityKind,
    pub(crate) address: String,
    /// The sponsoring city department (担当課); required for `external`.
    pub(crate) department: Option<String>,
    pub manager: ManagerBody,
    /// Must be `true`: use is limited to 重層的支援体制整備事業 duties.
    pub(crate) purpose_attested: bool,
    /// The version of the terms of use accepted, e.g. `2026-04-01`.
    pub(crate) terms_version: String,
}

impl From<ApplicationBody> for ApplicationForm {
    fn from(b: ApplicationBody) -> Self {
        ApplicationForm {
            name: b.name,
            kind: b.kind,
            address: b.address,
            department: b.department,
            manager_name: b.manager.name,
            manager_login_id: b.manager.login_id,
            manager_email: b.manager.email,
            manager_phone: b.manager.phone,
            purpose_attested: b.purpose_attested,
            terms_version: b.terms_version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApplicationCreated {
    /// The application number.
    pub id: i64,
    pub status: ApplicationStatus,
    /// Where the applicant can follow the decision (JSON); `status_page` for people.
    pub(crate) status_url: String,
    pub(crate) status_page: String,
}

connect_pki_domain::redacted_debug!(ApplicationCreated { id, status; status_url, status_page });

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApplicationView {
    pub id: i64,
    pub status: ApplicationStatus,
    pub name: String,
    pub(crate) kind: FacilityKind,
    pub(crate) address: String,
    pub(crate) department: Option<String>,
    pub(crate) manager_name: String,
    pub(crate) manager_login_id: String,
    pub(crate) manager_email: String,
    pub(crate) manager_phone: String,
    pub(crate) terms_version: String,
    pub(crate) created_at: String,
    pub(crate) decided_at: Option<String>,
    pub(crate) decision_reason: Option<String>,
    pub(crate) facility_id: Option<i64>,
}

impl From<ApplicationRecord> for ApplicationView {
    fn from(a: ApplicationRecord) -> Self {
        Self {
            id: a.id,
            status: a.status,
            name: a.form.name,
            kind: a.form.kind,
            address: a.form.address,
            department: a.form.department,
            manager_name: a.form.manager_name,
            manager_login_id: a.form.manager_login_id,
            manager_email: a.form.manager_email,
            manager_phone: a.form.manager_phone,
            terms_version: a.form.terms_version,
            created_at: rfc3339(a.created_at),
            decided_at: a.decided_at.map(rfc3339),
            decision_reason: a.decision_reason,
            facility_id: a.facility.map(|f| f.0),
        }
    }
}

/// What the public status URL shows: the decision, not the form.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApplicationDecision {
    pub id: i64,
    pub name: String,
    pub status: ApplicationStatus,
    pub(crate) created_at: String,
    pub(crate) decided_at: Option<String>,
    pub(crate) decision_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CodeView {
    /// The enrollment code, shown only in this response.
    pub(crate) code: String,
    pub(crate) expires_at: String,
    pub(crate) user_id: i64,
}

connect_pki_domain::redacted_debug!(CodeView { expires_at, user_id; code });

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApprovalView {
    pub(crate) facility_id: i64,
    pub(crate) manager_user_id: i64,
    pub(crate) enrollment_code: CodeView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Shown to the applicant.
    pub(crate) reason: String,
}
