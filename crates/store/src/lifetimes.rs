//! A facility's own certificate lifetimes (issue 26, item 4): read inside
//! the transaction that signs a device's certificate, so a change applies
//! to the next certificate and never to half of one.

use connect_pki_domain::lifetime::FacilityLifetimes;
use connect_pki_domain::{AuditAction, FacilityId};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::{Store, StoreError};

fn days(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<u32>, StoreError> {
    let d: Option<i64> = row.try_get(col)?;
    d.map(|d| u32::try_from(d).map_err(|_| StoreError::Corrupt(format!("{col}: {d}")))).transpose()
}

/// The lifetimes in a row that selected `f.lifetime_days` and
/// `f.managed_lifetime_days` (a query that already joins the facility).
pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<FacilityLifetimes, StoreError> {
    Ok(FacilityLifetimes {
        by_hand_days: days(row, "lifetime_days")?,
        managed_days: days(row, "managed_lifetime_days")?,
    })
}

/// The lifetimes of `facility`, in a transaction or on a connection.
pub(crate) async fn of_facility(
    conn: &mut sqlx::AnyConnection,
    facility: FacilityId,
) -> Result<FacilityLifetimes, StoreError> {
    let row = sqlx::query("select lifetime_days, managed_lifetime_days from facilities where id = $1")
        .bind(facility.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("facility"))?;
    from_row(&row)
}

impl Store {
    /// A facility's own lifetimes (none set: the service's apply).
    pub async fn facility_lifetimes(&self, facility: FacilityId) -> Result<FacilityLifetimes, StoreError> {
        let mut conn = self.pool.acquire().await?;
        of_facility(&mut conn, facility).await
    }

    /// Sets a facility's own lifetimes, audited.
    pub async fn set_facility_lifetimes(
        &self,
        facility: FacilityId,
        to: FacilityLifetimes,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            let from = of_facility(tx, facility).await?;
            sqlx::query(
                "update facilities set lifetime_days = $1, managed_lifetime_days = $2, updated_at = $3 where id = $4",
            )
            .bind(to.by_hand_days.map(i64::from))
            .bind(to.managed_days.map(i64::from))
            .bind(crate::secs(now))
            .bind(facility.0)
            .execute(&mut **tx)
            .await?;
            let detail =
                json!({"from": [from.by_hand_days, from.managed_days], "to": [to.by_hand_days, to.managed_days]});
            let entry = AuditEntry::ok(
                actor,
                AuditAction::FacilityLifetimes,
                format!("facility:{}", facility.0),
                detail,
                Some(facility),
                None,
            );
            tx.audit(now, &entry).await?;
            Ok(())
        })
        .await
    }
}
