//! JSON shapes of the API: request bodies and responses, with their OpenAPI
//! schemas. Times are RFC 3339 UTC strings; serials lowercase hex.
//! Applications and the escalation queue have files of their own; the rest
//! (callers, facilities, users, devices, certificates, audit) is here.

mod applications;
mod escalations;

pub use applications::*;
pub use escalations::*;

use connect_pki_domain::{CertStatus, DeviceStatus, FacilityKind, FacilityStatus, Reason, Role, UserStatus};
use connect_pki_store::{AuditRecord, CertificateRecord, DeviceRecord, FacilityRecord, UserRecord, UserWithDevices};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub(crate) use connect_pki_domain::clock::rfc3339;

/// `{"error": {"code", "message"}}`
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code, e.g. `forbidden`, `invalid`, `conflict`.
    pub(crate) code: String,
    /// What went wrong and what to do about it.
    pub(crate) message: String,
}

/// The caller as the service sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    pub(crate) user_id: i64,
    pub login_id: Option<String>,
    pub(crate) display_name: Option<String>,
    #[schema(value_type = String, example = "facility_manager")]
    pub(crate) role: Role,
    pub(crate) facility_id: i64,
    pub(crate) facility_name: String,
    pub(crate) device_id: i64,
    pub serial: String,
    pub not_after: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacilityView {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub(crate) kind: FacilityKind,
    pub(crate) address: String,
    pub(crate) department: Option<String>,
    pub status: FacilityStatus,
}

impl From<FacilityRecord> for FacilityView {
    fn from(f: FacilityRecord) -> Self {
        Self { id: f.id.0, name: f.name, kind: f.kind, address: f.address, department: f.department, status: f.status }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacilityChangeView {
    pub(crate) facility: FacilityView,
    /// Certificates revoked by the change (closing only).
    pub(crate) revoked_serials: Vec<String>,
    /// Certificates put on hold by the change (suspending only).
    pub(crate) held_serials: Vec<String>,
    /// Certificates released by the change (resuming only).
    pub(crate) released_serials: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub(crate) display_name: String,
    pub login_id: String,
    pub(crate) email: String,
    /// `staff` (default) or `facility_manager`; `admin_division` may also grant city roles.
    #[schema(value_type = Option<String>)]
    pub(crate) role: Option<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub id: i64,
    pub(crate) facility_id: i64,
    pub login_id: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) role: Role,
    pub status: UserStatus,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id.0,
            facility_id: u.facility.0,
            login_id: u.login_id,
            display_name: u.display_name,
            email: u.email,
            role: u.role,
            status: u.status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CertificateView {
    pub serial: String,
    pub(crate) device_id: i64,
    pub status: CertStatus,
    /// RFC 5280 reason name when not valid.
    pub(crate) reason: Option<Reason>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) not_before: String,
    pub not_after: String,
}

impl From<CertificateRecord> for CertificateView {
    fn from(c: CertificateRecord) -> Self {
        Self {
            serial: c.serial.to_hex(),
            device_id: c.device.0,
            status: c.status,
            reason: c.reason,
            revoked_at: c.revoked_at.map(rfc3339),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeviceView {
    pub id: i64,
    pub(crate) user_id: i64,
    pub(crate) facility_id: i64,
    pub(crate) label: String,
    pub status: DeviceStatus,
    pub(crate) created_at: String,
    pub(crate) certificates: Vec<CertificateView>,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        Self {
            id: d.id.0,
            user_id: d.user.0,
            facility_id: d.facility.0,
            label: d.label,
            status: d.status,
            created_at: rfc3339(d.created_at),
            certificates: d.certificates.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserWithDevicesView {
    #[serde(flatten)]
    pub(crate) user: UserView,
    pub(crate) devices: Vec<DeviceView>,
}

impl From<UserWithDevices> for UserWithDevicesView {
    fn from(u: UserWithDevices) -> Self {
        Self { user: u.user.into(), devices: u.devices.into_iter().map(Into::into).collect() }
    }
}

/// Redeem an enrollment code (public, authenticated by the code alone).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// As handed out, e.g. `ABCD-EFGH-JKMN-PQRS`: the secret alone, found by its hash.
    pub(crate) code: String,
    /// PKCS#10 request (PEM). Its key is certified; its subject must be empty or `CN=<login ID>`.
    pub(crate) csr: Option<String>,
    /// `true` to have the key generated here and delivered as PKCS#12.
    #[serde(default)]
    pub(crate) generate_key: bool,
    /// `p256` (default) or `rsa2048`, with `generate_key`.
    pub(crate) key_type: Option<String>,
    /// Account password (10+ characters); required on the user's first enrollment.
    pub(crate) password: Option<String>,
    /// A name for the device, e.g. `相談室PC-2`.
    pub(crate) device_label: Option<String>,
}

connect_pki_domain::redacted_debug!(EnrollBody { csr, generate_key, key_type, device_label; code, password });

#[derive(Serialize, ToSchema)]
pub(crate) struct EnrollResponse {
    pub(crate) device_id: i64,
    pub serial: String,
    /// With a CSR: the certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<String>,
    /// With a CSR: the issuing CA and root (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    /// With `generate_key`: the PKCS#12 file, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pkcs12: Option<String>,
    /// With `generate_key`: its password, shown only in this response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12_password: Option<String>,
}

connect_pki_domain::redacted_debug!(EnrollResponse { device_id, serial, certificate, chain; pkcs12, pkcs12_password });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// A new PKCS#10 request (PEM) from the device.
    pub(crate) csr: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenewResponse {
    pub(crate) device_id: i64,
    pub serial: String,
    pub(crate) certificate: String,
    pub(crate) chain: String,
    /// The certificate presented for this call, now superseded.
    pub(crate) superseded_serial: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditView {
    pub id: i64,
    pub at: String,
    pub(crate) actor: String,
    pub(crate) action: connect_pki_domain::AuditAction,
    pub(crate) target: String,
    pub(crate) outcome: String,
    #[schema(value_type = Object)]
    pub(crate) detail: serde_json::Value,
    pub(crate) facility_id: Option<i64>,
    pub(crate) user_id: Option<i64>,
    /// This record's link in the hash chain.
    pub(crate) hash: String,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.entry.actor,
            action: r.entry.action,
            target: r.entry.target,
            outcome: r.entry.outcome,
            detail: r.entry.detail,
            facility_id: r.entry.facility.map(|f| f.0),
            user_id: r.entry.user.map(|u| u.0),
            hash: r.hash,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// RFC 5280 reason name: `keyCompromise`, `affiliationChanged`, `superseded`,
    /// `cessationOfOperation`, `privilegeWithdrawn` or `unspecified`.
    #[schema(example = "keyCompromise")]
    pub(crate) reason: Reason,
}

/// A certificate's status after a revoke, hold or release call.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevocationView {
    pub serial: String,
    pub status: CertStatus,
    pub(crate) reason: Option<Reason>,
    pub(crate) revoked_at: Option<String>,
    /// False when the certificate already was in that state (the call changed nothing).
    pub(crate) changed: bool,
    /// Where the other instances were (only with `revoke_waits_for_every_instance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instances: Option<InstancesView>,
}

impl From<connect_pki_ra::certificates::Changed> for RevocationView {
    fn from(changed: connect_pki_ra::certificates::Changed) -> Self {
        let c = changed.outcome;
        Self {
            serial: c.certificate.serial.to_hex(),
            status: c.certificate.status,
            reason: c.certificate.reason,
            revoked_at: c.certificate.revoked_at.map(rfc3339),
            changed: c.changed,
            instances: changed.everywhere.map(InstancesView::from),
        }
    }
}

/// Whether every instance applied a change before the call answered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstancesView {
    /// The feed position that carries the change.
    pub(crate) position: i64,
    /// True when every live instance had applied it.
    pub(crate) all_applied: bool,
    /// Instances seen in the last minute that had not: they fail closed
    /// (OCSP tryLater, handshakes refused) until they catch up.
    pub(crate) not_applied: Vec<InstanceBehindView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceBehindView {
    /// host/process-random, as the instance names itself.
    pub(crate) id: String,
    /// The feed position it had applied at its last heartbeat.
    pub(crate) applied: i64,
    /// Milliseconds since that heartbeat.
    pub(crate) seen_ms_ago: i64,
}

impl From<connect_pki_ra::instances::Everywhere> for InstancesView {
    fn from(e: connect_pki_ra::instances::Everywhere) -> Self {
        Self {
            position: e.position,
            all_applied: e.not_applied.is_empty(),
            not_applied: e
                .not_applied
                .into_iter()
                .map(|b| InstanceBehindView { id: b.id, applied: b.applied, seen_ms_ago: b.seen_ms_ago })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LostView {
    pub(crate) device_id: i64,
    pub status: DeviceStatus,
    /// Certificates revoked by this call (keyCompromise).
    pub(crate) revoked_serials: Vec<String>,
    /// Where the other instances were (only with `revoke_waits_for_every_instance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instances: Option<InstancesView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireBody {
    /// RFC 3339; absent or past: retire now.
    pub at: Option<String>,
    /// Delete the account with the retirement (now, or when it runs): the
    /// personal data goes and the login ID is free again.
    pub delete_account: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetireView {
    pub(crate) user_id: i64,
    /// `retired` (done) or `scheduled`.
    pub status: String,
    pub(crate) retire_at: Option<String>,
    /// Certificates revoked by this call (affiliationChanged).
    pub(crate) revoked_serials: Vec<String>,
}

/// A scheduled retirement, cancelled before it ran.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetirementCancelledView {
    pub(crate) user_id: i64,
    /// When the retirement would have run (RFC 3339).
    pub(crate) cancelled_retire_at: String,
}

/// The terms of use in force, verbatim.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TermsOfUse {
    pub(crate) version: String,
    pub(crate) text: String,
}

/// Certificates running out within `within_days`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExpiringList {
    pub(crate) within_days: i64,
    /// Soonest first.
    pub(crate) certificates: Vec<ExpiringView>,
}

/// A device certificate in force that runs out soon, with whose it is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExpiringView {
    pub(crate) facility_id: i64,
    pub(crate) facility_name: String,
    pub(crate) user_id: i64,
    /// `null` once the holder's personal data is deleted.
    pub login_id: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) device_id: i64,
    pub(crate) device_label: String,
    pub serial: String,
    /// `valid` or `on_hold`.
    pub status: CertStatus,
    pub not_after: String,
    /// Whole days left (0 on the last day).
    pub(crate) days_left: i64,
    /// The notices (days before the end) already e-mailed to the facility's managers.
    pub(crate) notices_sent: Vec<u32>,
}

impl ExpiringView {
    pub(crate) fn of(e: connect_pki_store::ExpiringCertificate, now: OffsetDateTime) -> Self {
        let c = e.certificate;
        Self {
            facility_id: e.facility.id.0,
            facility_name: e.facility.name,
            user_id: e.user.id.0,
            login_id: e.user.login_id,
            display_name: e.user.display_name,
            device_id: e.device.0,
            device_label: e.device_label,
            serial: c.serial.to_hex(),
            status: c.status,
            not_after: rfc3339(c.not_after),
            days_left: connect_pki_domain::expiry::days_left(c.not_after, now),
            notices_sent: e.notices,
        }
    }
}
