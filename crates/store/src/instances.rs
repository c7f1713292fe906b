//! Heartbeats of the running instances: the feed position each has applied.
//!
//! Written outside the writer lock (bookkeeping, never a revocation's
//! queue). Times are the database's clock in milliseconds, so instances whose
//! clocks disagree still agree on who was seen when.

use sqlx::Row;

use crate::{Backend, Store, StoreError};

/// An instance that had not applied a feed position when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub id: String,
    /// The feed position it had applied at its last heartbeat.
    pub applied: i64,
    /// Milliseconds since that heartbeat, by the database's clock.
    pub seen_ms_ago: i64,
}

/// Instances not seen for this long are removed from the table.
const FORGET_AFTER_MS: i64 = 86_400_000;

fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "cast(floor(extract(epoch from clock_timestamp()) * 1000) as bigint)",
        Backend::Sqlite => "cast((julianday('now') - 2440587.5) * 86400000 as integer)",
    }
}

impl Store {
    /// Records that instance `id` has applied the feed up to `applied`.
    pub async fn heartbeat(&self, id: &str, applied: i64) -> Result<(), StoreError> {
        let now = now_ms(self.backend);
        let sql = format!(
            "insert into instances (id, applied, seen_at, started_at) values ($1, $2, {now}, {now}) \
             on conflict (id) do update set applied = excluded.applied, seen_at = excluded.seen_at"
        );
        let upsert = sqlx::query(&sql).bind(id).bind(applied);
        self.write_aside(async |tx| Ok::<_, StoreError>(upsert.execute(&mut **tx).await.map(|_| ())?)).await
    }

    /// Removes instance `id` (it stops) and every instance not seen for a day.
    pub async fn forget_instance(&self, id: &str) -> Result<(), StoreError> {
        let sql = format!("delete from instances where id = $1 or seen_at < {} - $2", now_ms(self.backend));
        let delete = sqlx::query(&sql).bind(id).bind(FORGET_AFTER_MS);
        self.write_aside(async |tx| Ok::<_, StoreError>(delete.execute(&mut **tx).await.map(|_| ())?)).await
    }

    /// The instances seen within the last `within_ms` that had not applied
    /// the feed up to `position` at their last heartbeat, oldest heartbeat first.
    pub async fn instances_behind(&self, position: i64, within_ms: i64) -> Result<Vec<Behind>, StoreError> {
        let now = now_ms(self.backend);
        let sql = format!(
            "select id, applied, {now} - seen_at as ago from instances \
             where applied < $1 and seen_at >= {now} - $2 order by seen_at, id"
        );
        let rows = sqlx::query(&sql).bind(position).bind(within_ms).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Behind { id: r.try_get("id")?, applied: r.try_get("applied")?, seen_ms_ago: r.try_get("ago")? })
            })
            .collect()
    }
}
