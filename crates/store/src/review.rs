//! Account review (棚卸し): the devices of people still active that nobody
//! has used for a while — by the recorded last use of any of their
//! certificates (a handshake on our listener, a relying party told `good`
//! by OCSP) or, never used, since they were registered — and the reviews a
//! facility's manager (or 行政管理課) recorded.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, DeviceId, FacilityId, UserId};

use crate::audit::AuditEntry;
use crate::notifications::{Target, enqueue};
use crate::records::quoted;
use crate::{Store, StoreError, WriteTx, instant, secs};

/// What a reminder counts its period from: the facility's newest review,
/// reminder or, never either, its creation.
const REMINDER_BASE: [AuditAction; 3] =
    [AuditAction::AccountReview, AuditAction::AccountReviewReminder, AuditAction::FacilityCreate];

/// The newest audit row among `actions` about `facility`, read in `tx`.
async fn newest(
    tx: &mut WriteTx,
    actions: &[AuditAction],
    facility: FacilityId,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let sql = format!(
        "select max(at) as at from audit_log where action in ({}) and facility_id = $1",
        quoted(actions.iter().map(|a| a.as_str()))
    );
    let row = sqlx::query(&sql).bind(facility.0).fetch_one(&mut **tx).await?;
    row.try_get::<Option<i64>, _>("at")?.map(instant).transpose()
}

/// A device nobody has used since `last_used` (or ever, since `created_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedDevice {
    pub device: DeviceId,
    pub label: String,
    pub user: UserId,
    pub facility: FacilityId,
    pub display_name: Option<String>,
    pub login_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
}

impl Store {
    /// Active devices of active or invited people (of `facility`, or of
    /// every facility) last used before `before`, or never and registered
    /// before it; longest unused first.
    pub async fn unused_devices(
        &self,
        facility: Option<FacilityId>,
        before: OffsetDateTime,
    ) -> Result<Vec<UnusedDevice>, StoreError> {
        let sql = "select d.id as d_id, d.label, d.created_at, u.id as u_id, u.facility_id, u.display_name, u.login_id, \
             (select max(h.last_ok_at) from certificates c join cert_handshakes h on h.serial = c.serial \
              where c.device_id = d.id) as hs, \
             (select max(o.last_good_at) from certificates c join rp_ocsp o on o.serial = c.serial \
              where c.device_id = d.id) as oc \
             from devices d join users u on u.id = d.user_id \
             where d.status = 'active' and u.status in ('invited', 'active') and ($1 = 0 or u.facility_id = $1) \
             order by d.id";
        let rows = sqlx::query(sql).bind(facility.map_or(0, |f| f.0)).fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in rows {
            let (hs, oc): (Option<i64>, Option<i64>) = (r.try_get("hs")?, r.try_get("oc")?);
            let last = hs.max(oc);
            let created: i64 = r.try_get("created_at")?;
            if last.unwrap_or(created) >= secs(before) {
                continue;
            }
            out.push(UnusedDevice {
                device: DeviceId(r.try_get("d_id")?),
                label: r.try_get("label")?,
                user: UserId(r.try_get("u_id")?),
                facility: FacilityId(r.try_get("facility_id")?),
                display_name: r.try_get("display_name")?,
                login_id: r.try_get("login_id")?,
                created_at: instant(created)?,
                last_used: last.map(instant).transpose()?,
            });
        }
        out.sort_by_key(|d| d.last_used.unwrap_or(d.created_at));
        Ok(out)
    }

    /// For every facility, what its next reminder counts from (see
    /// [`REMINDER_BASE`]): one read, so the worker takes the writer lock
    /// only for a facility whose reminder is due.
    pub async fn reminder_bases(&self) -> Result<Vec<(FacilityId, OffsetDateTime)>, StoreError> {
        let sql = format!(
            "select facility_id, max(at) as at from audit_log where action in ({}) and facility_id is not null \
             group by facility_id",
            quoted(REMINDER_BASE.iter().map(|a| a.as_str()))
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((FacilityId(r.try_get("facility_id")?), instant(r.try_get("at")?)?))).collect()
    }

    /// Since when `facility`'s review period runs: its last review, or its
    /// creation when never reviewed.
    pub async fn review_since(&self, facility: FacilityId) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query("select max(at) as at from audit_log where action in ($1, $2) and facility_id = $3")
            .bind(AuditAction::AccountReview.as_str())
            .bind(AuditAction::FacilityCreate.as_str())
            .bind(facility.0)
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<i64>, _>("at")?.map(instant).transpose()
    }

    /// When `facility`'s accounts were last reviewed, if ever.
    pub async fn last_review(&self, facility: FacilityId) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query("select max(at) as at from audit_log where action = $1 and facility_id = $2")
            .bind(AuditAction::AccountReview.as_str())
            .bind(facility.0)
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<i64>, _>("at")?.map(instant).transpose()
    }

    /// Reminds `facility`'s managers (`targets`) by e-mail that its review
    /// is due — neither reviewed nor reminded within `period` — queued with
    /// its audit row in one write transaction, so of several instances one
    /// sends it. Returns whether it was queued.
    pub async fn remind_review(
        &self,
        facility: FacilityId,
        targets: &[Target],
        payload: &str,
        period: time::Duration,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.write(async |tx| {
            // Checked again under the writer lock: of several instances, one queues it.
            let since = newest(tx, &REMINDER_BASE, facility).await?;
            if !connect_pki_domain::user::review_due(since, now, period) {
                return Ok(false);
            }
            let entry = AuditEntry::ok(
                "system:review",
                AuditAction::AccountReviewReminder,
                format!("facility:{facility}"),
                json!({"count": targets.len()}),
                Some(facility),
                None,
            );
            tx.audit(now, &entry).await?;
            enqueue(tx, None, "review_due", targets, payload, now).await?;
            Ok(true)
        })
        .await
    }

    /// Records that `actor` reviewed `facility`'s accounts, with how many
    /// devices were found unused then (the audit log is the record).
    pub async fn record_review(
        &self,
        facility: FacilityId,
        unused: usize,
        actor: &str,
        reviewer: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            let entry = AuditEntry::ok(
                actor,
                AuditAction::AccountReview,
                format!("facility:{facility}"),
                json!({"count": unused}),
                Some(facility),
                Some(reviewer),
            );
            tx.audit(now, &entry).await
        })
        .await
    }
}
