//! Emergency reports and their escalations: the hold that a report puts on a
//! device, the queue, claims and resolutions — each one transaction with its
//! audit rows and feed rows.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::{EMERGENCY_HOLD, HOLD_LIMIT};
use connect_pki_domain::escalation::{Outcome, Queue};
use connect_pki_domain::hold::{Lifter, hold_limit_reaches, report_takes_over};
use connect_pki_domain::{
    AuditAction, CertStatus, DeviceId, DomainError, EscalationStatus, FacilityId, Serial, UserId,
};

use crate::audit::AuditEntry;
use crate::certificates::{change_where, serials_where};
use crate::error::Conflict;
use crate::holds;
use crate::notifications::{Target, enqueue};
use crate::records::text;
use crate::status::{self, Request, touched_states};
use crate::{Store, StoreError, WriteTx, instant, secs};

/// A stored escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRecord {
    pub id: i64,
    pub device: DeviceId,
    pub facility: FacilityId,
    pub channel: String,
    pub reported_by: Option<UserId>,
    pub queue: Queue,
    pub status: EscalationStatus,
    pub outcome: Option<String>,
    pub note: String,
    pub escalate_at: Option<OffsetDateTime>,
    pub claimed_by: Option<UserId>,
    pub claimed_at: Option<OffsetDateTime>,
    pub resolved_by: Option<UserId>,
    pub resolved_at: Option<OffsetDateTime>,
    pub resolution_note: Option<String>,
    pub created_at: OffsetDateTime,
}

/// What opening an escalation did.
#[derive(Debug, Clone)]
pub struct OpenedEscalation {
    pub escalation: EscalationRecord,
    /// The device's certificates the report put on hold.
    pub held: Vec<Serial>,
    /// Holds of the device that only its facility's suspension kept, now
    /// kept by the report too (no feed row: their status did not change).
    pub taken_over: Vec<Serial>,
}

/// A new report.
#[derive(Debug, Clone)]
pub struct NewEscalation {
    pub device: DeviceId,
    pub channel: &'static str,
    pub reported_by: Option<UserId>,
    pub queue: Queue,
    pub escalate_at: Option<OffsetDateTime>,
    pub note: String,
    pub actor: String,
    /// Who is told, queued in the same transaction.
    pub notify: Vec<Target>,
    /// What they are told (a JSON object; the delivery adds the escalation id).
    pub payload: String,
    /// A report 行政管理課 took by telephone: who called and where to call back.
    pub phone_call: Option<PhoneCall>,
}

/// Who reported a device by telephone, recorded with the report and in its audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCall {
    pub caller: String,
    pub callback: String,
}

const COLUMNS: &str = "id, device_id, facility_id, channel, reported_by, queue, status, outcome, note, escalate_at, \
     claimed_by, claimed_at, resolved_by, resolved_at, resolution_note, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<EscalationRecord, StoreError> {
    let t = |c: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        r.try_get::<Option<i64>, _>(c)?.map(instant).transpose()
    };
    let u = |c: &str| -> Result<Option<UserId>, StoreError> { Ok(r.try_get::<Option<i64>, _>(c)?.map(UserId)) };
    Ok(EscalationRecord {
        id: r.try_get("id")?,
        device: DeviceId(r.try_get("device_id")?),
        facility: FacilityId(r.try_get("facility_id")?),
        channel: r.try_get("channel")?,
        reported_by: u("reported_by")?,
        queue: crate::records::text(r, "queue")?,
        status: crate::records::text(r, "status")?,
        outcome: r.try_get("outcome")?,
        note: r.try_get("note")?,
        escalate_at: t("escalate_at")?,
        claimed_by: u("claimed_by")?,
        claimed_at: t("claimed_at")?,
        resolved_by: u("resolved_by")?,
        resolved_at: t("resolved_at")?,
        resolution_note: r.try_get("resolution_note")?,
        created_at: instant(r.try_get("created_at")?)?,
    })
}

async fn escalation_in(tx: &mut WriteTx, id: i64) -> Result<EscalationRecord, StoreError> {
    let row = sqlx::query(&format!("select {COLUMNS} from escalations where id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("escalation"))?;
    from_row(&row)
}

/// Figures for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub open_escalations: i64,
    pub oldest_open_created_at: Option<OffsetDateTime>,
    pub holds: i64,
    /// (reason, certificates) for every certificate no longer valid.
    pub revoked_by_reason: Vec<(String, i64)>,
}

/// Puts every valid certificate of a device on hold; returns the serials
/// that changed.
async fn hold_device(
    tx: &mut WriteTx,
    device: DeviceId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let req = Request::new(EMERGENCY_HOLD, actor, json!({"because": "emergency report"}));
    change_where(tx, "c.device_id = $1", device.0, &req, now).await
}

/// The device's holds that the report takes over (`domain::hold::report_takes_over`):
/// those only its facility's suspension keeps, which the resume would
/// otherwise release although the device is lost.
async fn take_over(tx: &mut WriteTx, device: DeviceId) -> Result<Vec<Serial>, StoreError> {
    let on_hold = CertStatus::OnHold;
    let serials =
        serials_where(tx, &format!("c.device_id = $1 and c.status = '{}'", on_hold.as_str()), device.0).await?;
    let keepers = holds::keepers(tx, &serials).await?;
    Ok(serials
        .into_iter()
        .filter(|s| report_takes_over(on_hold, keepers.get(s).map(Vec::as_slice).unwrap_or_default()))
        .collect())
}

/// Why a device's certificates could not be held: some already are, or
/// none is left to hold.
async fn nothing_to_hold(tx: &mut WriteTx, device: DeviceId) -> Result<StoreError, StoreError> {
    let on_hold: i64 = sqlx::query("select count(*) as n from certificates where device_id = $1 and status = $2")
        .bind(device.0)
        .bind(CertStatus::OnHold.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    let status = if on_hold > 0 { "already on hold" } else { "revoked or has no valid certificate" };
    Ok(DomainError::InvalidTransition { from: status, to: "on_hold" }.into())
}

async fn insert_escalation(
    tx: &mut WriteTx,
    new: &NewEscalation,
    facility: FacilityId,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "insert into escalations (device_id, facility_id, channel, reported_by, queue, status, note, escalate_at, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8) returning id",
    )
    .bind(new.device.0)
    .bind(facility.0)
    .bind(new.channel)
    .bind(new.reported_by.map(|u| u.0))
    .bind(new.queue.as_str())
    .bind(&new.note)
    .bind(new.escalate_at.map(secs))
    .bind(secs(now))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

/// Remembers which certificates escalation `id` put on hold: only its
/// resolution lifts them, and its release lifts no others.
async fn record_holds(tx: &mut WriteTx, id: i64, held: &[Serial]) -> Result<(), StoreError> {
    for serial in held {
        sqlx::query("insert into escalation_holds (escalation_id, serial) values ($1, $2)")
            .bind(id)
            .bind(serial.to_hex())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Carries out what `outcome` does to the escalated device and its
/// certificates; returns the serials that changed.
async fn apply_outcome(
    tx: &mut WriteTx,
    e: &EscalationRecord,
    outcome: Outcome,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let changed = match outcome.certificates() {
        Some(change) => {
            // A release names its escalation in each certificate's audit row.
            let detail = match outcome {
                Outcome::Released | Outcome::Rejected => json!({"escalation_id": e.id, "outcome": outcome.as_str()}),
                Outcome::Revoked => json!({}),
            };
            // Holds a suspension also keeps stay until the facility resumes.
            let req = Request::new(change, actor, detail).lifted_by(Lifter::Escalation(e.id));
            // A release lifts the holds this report placed, not every hold
            // of the device: one placed directly, before or beside the
            // report, stays for whoever placed it to lift. The escalation is
            // already resolved here, so the release is not refused as one of
            // its holds.
            let (scope, arg) = match outcome {
                Outcome::Released | Outcome::Rejected => {
                    ("c.serial in (select serial from escalation_holds where escalation_id = $1)", e.id)
                }
                Outcome::Revoked => ("c.device_id = $1", e.device.0),
            };
            change_where(tx, scope, arg, &req, now).await?
        }
        None => Vec::new(),
    };
    if outcome.device_lost() {
        tx.update_at("update devices set status = 'lost', updated_at = $1 where id = $2", now, e.device.0).await?;
    }
    Ok(changed)
}

impl Store {
    /// Opens an escalation for a lost device and puts its valid certificates
    /// on hold, in one transaction; holds of the device that only its
    /// facility's suspension keeps are taken over. Refuses a device with
    /// nothing left to hold.
    pub async fn open_escalation(
        &self,
        new: &NewEscalation,
        now: OffsetDateTime,
    ) -> Result<OpenedEscalation, StoreError> {
        self.write(async |tx| {
            let row = sqlx::query(
                "select u.facility_id, d.status from devices d join users u on u.id = d.user_id where d.id = $1",
            )
            .bind(new.device.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound("device"))?;
            let facility = FacilityId(row.try_get("facility_id")?);
            let held = hold_device(tx, new.device, &new.actor, now).await?;
            let taken_over = take_over(tx, new.device).await?;
            if held.is_empty() && taken_over.is_empty() {
                return Err(nothing_to_hold(tx, new.device).await?);
            }
            let id = insert_escalation(tx, new, facility, now).await?;
            record_holds(tx, id, &held).await?;
            record_holds(tx, id, &taken_over).await?;
            let mut detail = json!({"device_id": new.device, "channel": new.channel, "queue": new.queue.as_str(),
                                "held": held, "taken_over": taken_over});
            if let Some(call) = &new.phone_call {
                detail["caller"] = json!(call.caller);
                detail["callback"] = json!(call.callback);
            }
            let entry = AuditEntry::ok(
                new.actor.clone(),
                AuditAction::EscalationOpen,
                format!("escalation:{id}"),
                detail,
                Some(facility),
                new.reported_by,
            );
            tx.audit(now, &entry).await?;
            enqueue(tx, Some(id), "opened", &new.notify, &new.payload, now).await?;
            Ok(OpenedEscalation { escalation: escalation_in(tx, id).await?, held, taken_over })
        })
        .await
    }

    /// Escalations, most urgent first (行政管理課's queue, then oldest).
    pub async fn escalations(
        &self,
        facility: Option<FacilityId>,
        open_only: bool,
    ) -> Result<Vec<EscalationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from escalations where ($1 = 0 or facility_id = $1) and ($2 = 0 or status <> 'resolved') \
             order by case status when 'open' then 0 when 'claimed' then 1 else 2 end, \
             case queue when 'admin_division' then 0 else 1 end, created_at limit 500"
        ))
        .bind(facility.map_or(0, |f| f.0))
        .bind(i64::from(open_only))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The escalations about one device, oldest first.
    pub async fn escalations_of_device(&self, device: DeviceId) -> Result<Vec<EscalationRecord>, StoreError> {
        let rows =
            sqlx::query(&format!("select {COLUMNS} from escalations where device_id = $1 order by created_at, id"))
                .bind(device.0)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// One escalation.
    pub async fn escalation(&self, id: i64) -> Result<Option<EscalationRecord>, StoreError> {
        let row = sqlx::query(&format!("select {COLUMNS} from escalations where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Claims an open escalation. Of two racing claims exactly one wins; the
    /// other gets a conflict naming who holds it.
    pub async fn claim_escalation(
        &self,
        id: i64,
        by: UserId,
        note: &str,
        now: OffsetDateTime,
    ) -> Result<EscalationRecord, StoreError> {
        self.write(async |tx| {
            let current = escalation_in(tx, id).await?;
            let changed = sqlx::query(
                "update escalations set status = 'claimed', claimed_by = $1, claimed_at = $2, updated_at = $2 \
                 where id = $3 and status = 'open'",
            )
            .bind(by.0)
            .bind(secs(now))
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed == 0 {
                // Read again: on PostgreSQL the claim that won may have committed
                // after `current` was read.
                let now_is = escalation_in(tx, id).await?;
                return Err(match now_is.claimed_by {
                    Some(by) => Conflict::AlreadyClaimed { escalation: id, by },
                    None => Conflict::NotOpen { escalation: id, status: now_is.status.to_string() },
                }
                .into());
            }
            let entry = AuditEntry::ok(
                format!("user:{by}"),
                AuditAction::EscalationClaim,
                format!("escalation:{id}"),
                json!({"note": note}),
                Some(current.facility),
                Some(by),
            );
            tx.audit(now, &entry).await?;
            escalation_in(tx, id).await
        })
        .await
    }

    /// Resolves a claimed escalation: revoked (the device's held and valid
    /// certificates revoked, keyCompromise), released (its holds valid
    /// again — those its facility's suspension keeps when the facility
    /// resumes) or rejected (certificates left as they are).
    pub async fn resolve_escalation(
        &self,
        id: i64,
        outcome: Outcome,
        by: UserId,
        note: &str,
        now: OffsetDateTime,
    ) -> Result<(EscalationRecord, Vec<Serial>), StoreError> {
        self.write(async |tx| {
            let current = escalation_in(tx, id).await?;
            let changed = sqlx::query(
                "update escalations set status = 'resolved', outcome = $1, resolved_by = $2, resolved_at = $3, \
                 resolution_note = $4, updated_at = $3 where id = $5 and status = 'claimed'",
            )
            .bind(outcome.as_str())
            .bind(by.0)
            .bind(secs(now))
            .bind(note)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed == 0 {
                let from = if current.status == EscalationStatus::Open { "open (claim it first)" } else { "resolved" };
                return Err(DomainError::InvalidTransition { from, to: "resolved" }.into());
            }
            let actor = format!("user:{by}");
            let changed_serials = apply_outcome(tx, &current, outcome, &actor, now).await?;
            let entry = AuditEntry::ok(
                actor,
                AuditAction::EscalationResolve,
                format!("escalation:{id}"),
                json!({"outcome": outcome.as_str(), "note": note, "certificates": changed_serials}),
                Some(current.facility),
                Some(by),
            );
            tx.audit(now, &entry).await?;
            Ok((escalation_in(tx, id).await?, changed_serials))
        })
        .await
    }

    /// Open escalations in a facility manager's queue whose SLA has passed at `now`.
    pub async fn overdue_escalations(&self, now: OffsetDateTime) -> Result<Vec<EscalationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from escalations where status = 'open' and queue = 'manager' and escalate_at is not null \
             and escalate_at <= $1 order by id"
        ))
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves one escalation past its SLA to 行政管理課 and queues its
    /// notifications, in one transaction — if it is still open, still in the
    /// manager's queue and due. Of several instances doing this at once,
    /// exactly one moves it; the others get `None`.
    pub async fn escalate(
        &self,
        id: i64,
        notify: &[Target],
        payload: &str,
        now: OffsetDateTime,
    ) -> Result<Option<EscalationRecord>, StoreError> {
        self.write(async |tx| {
            let moved = sqlx::query(
                "update escalations set queue = 'admin_division', updated_at = $1 where id = $2 and status = 'open' \
                 and queue = 'manager' and escalate_at is not null and escalate_at <= $1 returning id",
            )
            .bind(secs(now))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            if moved.is_none() {
                return Ok(None);
            }
            let e = escalation_in(tx, id).await?;
            let entry = AuditEntry::ok(
                "system:sla",
                AuditAction::EscalationEscalate,
                format!("escalation:{id}"),
                json!({"reason": "not claimed by the facility manager within the SLA"}),
                Some(e.facility),
                None,
            );
            tx.audit(now, &entry).await?;
            enqueue(tx, Some(id), "escalated", notify, payload, now).await?;
            Ok(Some(e))
        })
        .await
    }

    /// Revokes (keyCompromise) every hold older than `held_before`: a hold is
    /// never left forgotten. A suspended facility's holds wait for its
    /// resume, and a report's hold counts from the report
    /// (`domain::hold::hold_limit_reaches`). Returns the serials.
    pub async fn revoke_expired_holds(
        &self,
        held_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        // Which states the hold limit touches is the domain's to say; the
        // statement only narrows the candidates to them.
        let sql = format!(
            "select c.serial, c.revoked_at from certificates c where {} and c.revoked_at <= $1 order by c.serial",
            touched_states(&HOLD_LIMIT)
        );
        self.write(async |tx| {
            let rows = sqlx::query(&sql).bind(secs(held_before)).fetch_all(&mut **tx).await?;
            let held: Vec<(Serial, OffsetDateTime)> = rows
                .iter()
                .map(|r| Ok((text(r, "serial")?, instant(r.try_get("revoked_at")?)?)))
                .collect::<Result<_, StoreError>>()?;
            let serials: Vec<Serial> = held.iter().map(|(s, _)| s.clone()).collect();
            let keepers = holds::keepers(tx, &serials).await?;
            let due: Vec<Serial> = held
                .into_iter()
                .filter(|(s, since)| {
                    hold_limit_reaches(*since, keepers.get(s).map(Vec::as_slice).unwrap_or_default(), held_before)
                })
                .map(|(s, _)| s)
                .collect();
            let req = Request::new(HOLD_LIMIT, "system:hold-limit", json!({"because": "hold limit"}));
            Ok(status::apply(tx, &due, &req, now).await?.into_iter().map(|t| t.serial).collect())
        })
        .await
    }

    /// Counts for the operations view.
    pub async fn figures(&self) -> Result<Figures, StoreError> {
        let row =
            sqlx::query("select count(*) as n, min(created_at) as oldest from escalations where status <> 'resolved'")
                .fetch_one(&self.pool)
                .await?;
        let holds: i64 = sqlx::query("select count(*) as n from certificates where status = 'on_hold'")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let reasons = sqlx::query(
            "select revocation_reason as reason, count(*) as n from certificates where status in ('revoked', 'superseded') group by revocation_reason",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Figures {
            open_escalations: row.try_get("n")?,
            oldest_open_created_at: row.try_get::<Option<i64>, _>("oldest")?.map(instant).transpose()?,
            holds,
            revoked_by_reason: reasons
                .iter()
                .map(|r| Ok((r.try_get::<Option<String>, _>("reason")?.unwrap_or_default(), r.try_get("n")?)))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
