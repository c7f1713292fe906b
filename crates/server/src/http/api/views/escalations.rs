//! Emergency reports and the escalation queue.

use connect_pki_domain::{EscalationStatus, Queue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rfc3339;

/// A lost-device report by its user (public: the device is gone).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyBody {
    pub login_id: String,
    pub(crate) password: String,
    pub(crate) device_id: i64,
}

connect_pki_domain::redacted_debug!(EmergencyBody { login_id, device_id; password });

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EmergencyCreated {
    pub(crate) escalation_id: i64,
    /// Certificates put on hold by this report (already refused everywhere).
    pub(crate) held_serials: Vec<String>,
    /// `manager` (business hours) or `admin_division` (行政管理課).
    pub(crate) queue: Queue,
}

/// A report made for someone (manager: own facility; 行政管理課: e.g. by phone).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationBody {
    pub(crate) device_id: i64,
    #[serde(default)]
    pub(crate) note: String,
    /// 電話での届出 (行政管理課): who called, and the number to call them
    /// back. Both or neither; recorded with the report and in its audit row.
    pub(crate) caller_name: Option<String>,
    pub(crate) callback_number: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    #[serde(default)]
    pub(crate) note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `revoked`, `released` or `rejected`.
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EscalationView {
    pub id: i64,
    pub(crate) device_id: i64,
    pub(crate) facility_id: i64,
    /// `self`, `manager` or `phone`.
    pub(crate) channel: String,
    pub(crate) reported_by: Option<i64>,
    pub(crate) queue: Queue,
    pub status: EscalationStatus,
    pub(crate) outcome: Option<String>,
    pub(crate) note: String,
    pub(crate) escalate_at: Option<String>,
    pub(crate) claimed_by: Option<i64>,
    pub(crate) claimed_at: Option<String>,
    pub(crate) resolved_by: Option<i64>,
    pub(crate) resolved_at: Option<String>,
    pub(crate) resolution_note: Option<String>,
    pub(crate) created_at: String,
    /// Certificates changed by this call (open: held; resolve: revoked or released).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) serials: Option<Vec<String>>,
}

impl From<connect_pki_store::EscalationRecord> for EscalationView {
    fn from(e: connect_pki_store::EscalationRecord) -> Self {
        Self {
            id: e.id,
            device_id: e.device.0,
            facility_id: e.facility.0,
            channel: e.channel,
            reported_by: e.reported_by.map(|u| u.0),
            queue: e.queue,
            status: e.status,
            outcome: e.outcome,
            note: e.note,
            escalate_at: e.escalate_at.map(rfc3339),
            claimed_by: e.claimed_by.map(|u| u.0),
            claimed_at: e.claimed_at.map(rfc3339),
            resolved_by: e.resolved_by.map(|u| u.0),
            resolved_at: e.resolved_at.map(rfc3339),
            resolution_note: e.resolution_note,
            created_at: rfc3339(e.created_at),
            serials: None,
        }
    }
}
