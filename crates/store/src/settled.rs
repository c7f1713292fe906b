//! Reports settled by their device's revocation: when a manager (or
//! 行政管理課) reports a device lost or revokes its certificate after a
//! report about it came in, the report is closed in the same transaction,
//! so nobody works an emergency already handled and the SLA never moves
//! it to 行政管理課 as 【至急】. Called by the certificate and device
//! changes; apart from `escalations` so that neither imports the other.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, CertStatus, DeviceId, FacilityId, UserId};

use crate::audit::AuditEntry;
use crate::{StoreError, WriteTx, secs};

/// What closes a report its device's own revocation settled.
const SETTLED: &str = "端末の証明書が失効されたため、届出を終了しました（対応済み）。";

/// Closes the open or claimed reports of `device` once nothing of it is in
/// force any more: a manager (or 行政管理課) revoked it or reported it lost
/// after the report came in. The report is resolved as revoked, by `actor`
/// when it names a user, so the SLA never moves it to 行政管理課 as 【至急】
/// and nobody works an emergency already handled. Returns the reports
/// closed.
pub(crate) async fn reports_of_stopped(
    tx: &mut WriteTx,
    device: DeviceId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<i64>, StoreError> {
    let live = CertStatus::ALL.iter().filter(|s| connect_pki_domain::certificate::in_force(**s));
    let live = live.map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "select e.id, e.facility_id from escalations e where e.device_id = $1 and e.status in ('open', 'claimed') \
         and not exists (select 1 from certificates c where c.device_id = e.device_id and c.status in ({live})) \
         order by e.id"
    );
    let rows = sqlx::query(&sql).bind(device.0).fetch_all(&mut **tx).await?;
    let by = actor.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok());
    let mut settled = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, facility): (i64, i64) = (row.try_get("id")?, row.try_get("facility_id")?);
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
            Some(FacilityId(facility)),
            by.map(UserId),
        );
        tx.audit(now, &entry).await?;
        settled.push(id);
    }
    Ok(settled)
}
