//! Facilities: creation and their lifecycle (approved, suspended, closed).
//! Each status change carries out what it means for the facility's
//! certificates in the same transaction: suspending holds the valid ones and
//! keeps the held ones (`domain::hold`), resuming releases the holds the
//! suspension placed that nobody else keeps, closing revokes them all.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::hold::{Lifter, SUSPENSION_HOLD, SUSPENSION_RELEASE, suspension_keeps};
use connect_pki_domain::{AuditAction, CertStatus, FacilityId, FacilityStatus, Reason, Serial, UserStatus};

use crate::audit::AuditEntry;
use crate::certificates::{change_where, revoke_where};
use crate::error::Conflict;
use crate::holds;
use crate::records::{FacilityRecord, NewFacility, facility_by_id, text};
use crate::status::{self, Request};
use crate::{Store, StoreError, WriteTx, secs};

/// The outcome of closing or changing a facility.
#[derive(Debug, Clone)]
pub struct FacilityChange {
    pub facility: FacilityRecord,
    /// Certificates revoked by the change (closing only).
    pub revoked: Vec<Serial>,
    /// Certificates put on hold (suspending only).
    pub held: Vec<Serial>,
    /// Certificates released (resuming only).
    pub released: Vec<Serial>,
}

/// The certificates of the facility's users (`$1`: the facility).
const FACILITY_CERTIFICATES: &str =
    "c.device_id in (select d.id from devices d join users u on u.id = d.user_id where u.facility_id = $1)";

/// How much of a facility is in use, for the city's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FacilityCounts {
    pub facility: FacilityId,
    /// Users invited or active.
    pub users: i64,
    /// Devices in use (not lost or retired).
    pub devices: i64,
    /// Certificates valid and not expired.
    pub valid: i64,
    /// Certificates on hold.
    pub on_hold: i64,
}

impl FacilityCounts {
    /// The counts of a facility with nothing in it.
    pub fn empty(facility: FacilityId) -> Self {
        Self { facility, users: 0, devices: 0, valid: 0, on_hold: 0 }
    }
}

impl Store {
    /// The counts of every facility, by id.
    pub async fn facility_counts(&self, now: OffsetDateTime) -> Result<Vec<FacilityCounts>, StoreError> {
        let certs = "select count(*) from certificates c join devices d on d.id = c.device_id \
                     join users u on u.id = d.user_id where u.facility_id = f.id and c.status =";
        let rows = sqlx::query(&format!(
            "select f.id, \
             (select count(*) from users u where u.facility_id = f.id and u.status in ($1, $2)) as users, \
             (select count(*) from devices d join users u on u.id = d.user_id \
              where u.facility_id = f.id and d.status = 'active') as devices, \
             ({certs} $3 and c.not_after > $5) as valid, ({certs} $4) as on_hold \
             from facilities f order by f.id"
        ))
        .bind(UserStatus::Invited.as_str())
        .bind(UserStatus::Active.as_str())
        .bind(CertStatus::Valid.as_str())
        .bind(CertStatus::OnHold.as_str())
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FacilityCounts {
                    facility: FacilityId(r.try_get("id")?),
                    users: r.try_get("users")?,
                    devices: r.try_get("devices")?,
                    valid: r.try_get("valid")?,
                    on_hold: r.try_get("on_hold")?,
                })
            })
            .collect()
    }

    /// Creates an approved facility.
    pub async fn create_facility(
        &self,
        new: &NewFacility,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<FacilityRecord, StoreError> {
        self.write(async |tx| insert_facility(tx, new, FacilityStatus::Approved, actor, now).await).await
    }

    /// Every facility, by id.
    pub async fn facilities(&self) -> Result<Vec<FacilityRecord>, StoreError> {
        let rows = sqlx::query(&format!("select {} from facilities f order by f.id", FacilityRecord::COLUMNS))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(FacilityRecord::from_row).collect()
    }

    /// One facility.
    pub async fn facility(&self, id: FacilityId) -> Result<Option<FacilityRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        facility_by_id(&mut conn, id).await
    }

    /// Moves a facility through its lifecycle, with what the step means for
    /// its certificates (see the module).
    pub async fn change_facility_status(
        &self,
        id: FacilityId,
        to: FacilityStatus,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<FacilityChange, StoreError> {
        self.write(async |tx| {
            let mut facility = facility_by_id(tx, id).await?.ok_or(StoreError::NotFound("facility"))?;
            let from = facility.status;
            from.transition(to)?;
            // The status guard makes a concurrent change of the same facility
            // update nothing instead of overwriting.
            let changed =
                sqlx::query("update facilities set status = $1, updated_at = $2 where id = $3 and status = $4")
                    .bind(to.as_str())
                    .bind(secs(now))
                    .bind(id.0)
                    .bind(from.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
            if changed == 0 {
                return Err(Conflict::FacilityChanged { facility: id }.into());
            }
            facility.status = to;
            let mut change = FacilityChange { facility, revoked: Vec::new(), held: Vec::new(), released: Vec::new() };
            match to {
                FacilityStatus::Closed => {
                    let reason = Reason::CessationOfOperation;
                    change.revoked = revoke_where(tx, FACILITY_CERTIFICATES, id.0, reason, actor, now).await?;
                    holds::end_suspension(tx, id).await?;
                }
                FacilityStatus::Suspended => change.held = hold_for_suspension(tx, id, actor, now).await?,
                FacilityStatus::Approved => change.released = release_on_resume(tx, id, actor, now).await?,
            }
            tx.audit(now, &status_entry(actor, id, from, &change)).await?;
            Ok(change)
        })
        .await
    }

    /// Holds the valid certificates of every suspended facility, as its
    /// suspension would have: facilities suspended before suspensions held
    /// anything (migration 0009) kept theirs valid. Run at start; returns
    /// the serials it held.
    pub async fn hold_suspended_facilities(&self, now: OffsetDateTime) -> Result<Vec<Serial>, StoreError> {
        self.write(async |tx| {
            let rows = sqlx::query(
                "select distinct u.facility_id from certificates c join devices d on d.id = c.device_id \
                 join users u on u.id = d.user_id join facilities f on f.id = u.facility_id \
                 where f.status = $1 and c.status = $2 order by u.facility_id",
            )
            .bind(FacilityStatus::Suspended.as_str())
            .bind(CertStatus::Valid.as_str())
            .fetch_all(&mut **tx)
            .await?;
            let mut held = Vec::new();
            for row in &rows {
                let facility = FacilityId(row.try_get("facility_id")?);
                held.extend(hold_for_suspension(tx, facility, "system:suspension", now).await?);
            }
            Ok(held)
        })
        .await
    }
}

/// Puts the facility's valid certificates on hold and records what its
/// suspension keeps (`domain::hold::suspension_keeps`); returns the serials
/// put on hold.
async fn hold_for_suspension(
    tx: &mut WriteTx,
    id: FacilityId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let req = Request::new(SUSPENSION_HOLD, actor, json!({"because": "facility suspended"}));
    let held = change_where(tx, FACILITY_CERTIFICATES, id.0, &req, now).await?;
    let placed: BTreeSet<&Serial> = held.iter().collect();
    let rows = sqlx::query(&format!("select c.serial, c.status from certificates c where {FACILITY_CERTIFICATES}"))
        .bind(id.0)
        .fetch_all(&mut **tx)
        .await?;
    let mut kept = Vec::new();
    for row in &rows {
        let serial: Serial = text(row, "serial")?;
        if let Some(release) = suspension_keeps(text(row, "status")?, placed.contains(&serial)) {
            kept.push((serial, release));
        }
    }
    holds::keep_for_suspension(tx, id, &kept).await?;
    Ok(held)
}

/// Ends the facility's suspension and releases the holds it is to release
/// that no escalation keeps; returns the serials released.
async fn release_on_resume(
    tx: &mut WriteTx,
    id: FacilityId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let serials = holds::end_suspension(tx, id).await?;
    let req =
        Request::new(SUSPENSION_RELEASE, actor, json!({"because": "facility resumed"})).lifted_by(Lifter::Resume(id));
    Ok(status::apply(tx, &serials, &req, now).await?.into_iter().map(|t| t.serial).collect())
}

fn status_entry(actor: &str, id: FacilityId, from: FacilityStatus, change: &FacilityChange) -> AuditEntry {
    let to = change.facility.status;
    let action = match to {
        FacilityStatus::Approved => AuditAction::FacilityResume,
        FacilityStatus::Suspended => AuditAction::FacilitySuspend,
        FacilityStatus::Closed => AuditAction::FacilityClose,
    };
    let counts = (change.revoked.len(), change.held.len(), change.released.len());
    AuditEntry::ok(
        actor,
        action,
        format!("facility:{id}"),
        json!({"from": from, "to": to, "revoked": counts.0, "held": counts.1, "released": counts.2}),
        Some(id),
        None,
    )
}

pub(crate) async fn insert_facility(
    tx: &mut WriteTx,
    new: &NewFacility,
    status: FacilityStatus,
    actor: &str,
    now: OffsetDateTime,
) -> Result<FacilityRecord, StoreError> {
    let id: i64 = sqlx::query(
        "insert into facilities (name, kind, address, department, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $6) returning id",
    )
    .bind(&new.name)
    .bind(new.kind.as_str())
    .bind(&new.address)
    .bind(new.department.as_deref())
    .bind(status.as_str())
    .bind(secs(now))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    let record = FacilityRecord {
        id: FacilityId(id),
        name: new.name.clone(),
        kind: new.kind,
        address: new.address.clone(),
        department: new.department.clone(),
        status,
    };
    let entry = AuditEntry::ok(
        actor,
        AuditAction::FacilityCreate,
        format!("facility:{id}"),
        json!({"name": new.name, "kind": new.kind, "status": status}),
        Some(record.id),
        None,
    );
    tx.audit(now, &entry).await?;
    Ok(record)
}
