//! What keeps a certificate on hold besides a direct hold: the escalations
//! whose reports hold it (`escalation_holds`), the suspension of its
//! facility (`suspension_holds`) and 行政管理課's own direct hold
//! (`city_holds`). Read under the writer lock, so what a
//! release, a report or the hold limit decides on (`domain::hold`) is what
//! every earlier writer committed. Not an `impl Store`: the operations of
//! `status.rs`, `escalations.rs` and `facilities.rs` call these inside their
//! own transactions.

use std::collections::BTreeMap;

use sqlx::Row;

use connect_pki_domain::hold::Keeper;
use connect_pki_domain::{FacilityId, FacilityStatus, Serial};

use crate::records::text;
use crate::{StoreError, WriteTx, instant};

/// Statements bind at most this many serials at once.
const CHUNK: usize = 400;

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The keepers of each of `serials` that has any: open or claimed
/// escalations (oldest first), then the facility's suspension, then 行政管理課.
pub(crate) async fn keepers(tx: &mut WriteTx, serials: &[Serial]) -> Result<BTreeMap<Serial, Vec<Keeper>>, StoreError> {
    let mut out: BTreeMap<Serial, Vec<Keeper>> = BTreeMap::new();
    for chunk in serials.chunks(CHUNK) {
        let sql = format!(
            "select h.serial, e.id, e.created_at from escalation_holds h join escalations e on e.id = h.escalation_id \
             where e.status in ('open', 'claimed') and h.serial in ({}) order by e.id",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            let keeper = Keeper::Escalation { id: row.try_get("id")?, since: instant(row.try_get("created_at")?)? };
            out.entry(text(&row, "serial")?).or_default().push(keeper);
        }
        let sql = format!(
            "select h.serial, h.facility_id from suspension_holds h join facilities f on f.id = h.facility_id \
             where f.status = $1 and h.serial in ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(FacilityStatus::Suspended.as_str());
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            let keeper = Keeper::Suspension(FacilityId(row.try_get("facility_id")?));
            out.entry(text(&row, "serial")?).or_default().push(keeper);
        }
        let sql = format!("select serial from city_holds where serial in ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.entry(text(&row, "serial")?).or_default().push(Keeper::City);
        }
    }
    Ok(out)
}

/// Records that 行政管理課 keeps the holds of those of `serials` on hold
/// (placed now, or already on hold: it takes them over).
pub(crate) async fn keep_for_city(tx: &mut WriteTx, serials: &[Serial], now: i64) -> Result<(), StoreError> {
    for chunk in serials.chunks(CHUNK) {
        let sql = format!(
            "insert into city_holds (serial, held_at) select serial, $1 from certificates \
             where status = 'on_hold' and serial in ({}) on conflict (serial) do nothing",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(now);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Forgets 行政管理課's holds of `serials`, released now.
pub(crate) async fn forget_city_holds(tx: &mut WriteTx, serials: &[Serial]) -> Result<(), StoreError> {
    for chunk in serials.chunks(CHUNK) {
        let sql = format!("delete from city_holds where serial in ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records that the suspension of `facility` keeps `serial`, and whether its
/// resume releases it. A row already there (a certificate kept since an
/// earlier start-up catch-up) keeps the larger claim: a hold the suspension
/// placed stays its to release.
pub(crate) async fn keep_for_suspension(
    tx: &mut WriteTx,
    facility: FacilityId,
    kept: &[(Serial, bool)],
) -> Result<(), StoreError> {
    // A facility's thousands of certificates in a few statements.
    for chunk in kept.chunks(CHUNK / 4) {
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3)).collect();
        let sql = format!(
            "insert into suspension_holds (facility_id, serial, release_on_resume) values {} \
             on conflict (facility_id, serial) do update set release_on_resume = 1 \
             where excluded.release_on_resume = 1",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(facility.0);
        for (serial, release_on_resume) in chunk {
            q = q.bind(serial.to_hex()).bind(i64::from(*release_on_resume));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An escalation let go of a hold that the suspension of `facility` still
/// keeps: the resume releases it.
pub(crate) async fn release_on_resume(
    tx: &mut WriteTx,
    facility: FacilityId,
    serial: &Serial,
) -> Result<(), StoreError> {
    sqlx::query("update suspension_holds set release_on_resume = 1 where facility_id = $1 and serial = $2")
        .bind(facility.0)
        .bind(serial.to_hex())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends what the suspension of `facility` keeps: deletes its rows and
/// returns the serials its resume is to release.
pub(crate) async fn end_suspension(tx: &mut WriteTx, facility: FacilityId) -> Result<Vec<Serial>, StoreError> {
    let rows = sqlx::query("delete from suspension_holds where facility_id = $1 returning serial, release_on_resume")
        .bind(facility.0)
        .fetch_all(&mut **tx)
        .await?;
    let mut out = Vec::new();
    for row in &rows {
        if row.try_get::<i64, _>("release_on_resume")? == 1 {
            out.push(text(row, "serial")?);
        }
    }
    out.sort();
    Ok(out)
}
