//! Reports settled by their device's revocation: when a manager (or
//! 行政管理課) reports a device lost or revokes its certificate after a
//! report about it came in, the report is closed in the same transaction,
//! so nobody works an emergency already handled and the SLA never moves
//! it to 行政管理課 as 【至急】. Called by the certificate status
//! primitive (`status.rs`) for every change that leaves a device
//! with nothing in force; apart from `escalations` so that neither imports
//! the other.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::in_force;
use connect_pki_domain::{AuditAction, CertStatus, DeviceId, FacilityId, UserId};

use crate::audit::AuditEntry;
use crate::records::quoted;
use crate::{StoreError, WriteTx, secs};

/// Devices per statement (well inside both backends' bound-parameter limits).
const CHUNK: usize = 400;

/// What closes a report its device's own revocation settled.
const SETTLED: &str = "端末の証明書が失効されたため、届出を終了しました（対応済み）。";

/// Closes the open or claimed reports of each of `devices` that has
/// nothing in force any more: whoever revoked it or reported it lost after
/// the report came in, one certificate or in bulk (retirement, deletion, a
/// facility closed, the hold limit). The report is resolved as revoked, by
/// `actor` when it names a user, so the SLA never moves it to 行政管理課 as
/// 【至急】 and nobody works an emergency already handled. Returns the
/// reports closed.
pub(crate) async fn reports_of_stopped(
    tx: &mut WriteTx,
    devices: &BTreeSet<DeviceId>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<i64>, StoreError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let live = quoted(CertStatus::ALL.iter().filter(|s| in_force(**s)).map(|s| s.as_str()));
    let mut settled = Vec::new();
    let devices: Vec<DeviceId> = devices.iter().copied().collect();
    for chunk in devices.chunks(CHUNK) {
        let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "select e.id, e.facility_id from escalations e where e.device_id in ({list}) \
             and e.status in ('open', 'claimed') \
             and not exists (select 1 from certificates c where c.device_id = e.device_id and c.status in ({live})) \
             order by e.id"
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q.bind(d.0);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let (id, facility): (i64, i64) = (row.try_get("id")?, row.try_get("facility_id")?);
            close(tx, id, FacilityId(facility), actor, now).await?;
            settled.push(id);
        }
    }
    Ok(settled)
}

async fn close(
    tx: &mut WriteTx,
    id: i64,
    facility: FacilityId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let by = actor.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok());
    sqlx::query(
        "update escalations set status = 'resolved', outcome = 'revoked', resolved_by = $1, resolved_at = $2, \
         resolution_note = $3, updated_at = $2 where id = $4 and status in ('open', 'claimed')",
    )
    .bind(by)
    .bind(secs(now))
    .bind(SETTLED)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    let entry = AuditEntry::ok(
        actor,
        AuditAction::EscalationResolve,
        format!("escalation:{id}"),
        json!({"outcome": "revoked", "note": SETTLED, "settled_by": "the device's revocation"}),
        Some(facility),
        by.map(UserId),
    );
    tx.audit(now, &entry).await
}
