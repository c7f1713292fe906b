//! The notification outbox and delivery log.

use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{FacilityId, NotifyChannel};

use crate::{Backend, Store, StoreError, WriteTx, instant, secs};

/// Where a notification goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `webhook` or `email`.
    pub channel: NotifyChannel,
    /// URL or e-mail address.
    pub target: String,
}

connect_pki_domain::redacted_debug!(Target { channel; target });

/// A notification, pending or delivered.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    /// The escalation it tells of; `None` for an expiry notice.
    pub escalation: Option<i64>,
    pub event: String,
    pub channel: NotifyChannel,
    pub target: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

connect_pki_domain::redacted_debug!(NotificationRecord { id, escalation, event, channel, payload, status, attempts, last_error, created_at, delivered_at; target });

const COLUMNS: &str =
    "id, escalation_id, event, channel, target, payload, status, attempts, last_error, created_at, delivered_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<NotificationRecord, StoreError> {
    Ok(NotificationRecord {
        id: r.try_get("id")?,
        escalation: r.try_get("escalation_id")?,
        event: r.try_get("event")?,
        channel: crate::records::text(r, "channel")?,
        target: r.try_get("target")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get::<i64, _>("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: instant(r.try_get("created_at")?)?,
        delivered_at: r.try_get::<Option<i64>, _>("delivered_at")?.map(instant).transpose()?,
    })
}

/// Queues one notification per target inside `tx`.
pub(crate) async fn enqueue(
    tx: &mut WriteTx,
    escalation: Option<i64>,
    event: &str,
    targets: &[Target],
    payload: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for t in targets {
        sqlx::query(
            "insert into notifications (escalation_id, event, channel, target, payload, status, next_attempt_at, created_at) \
             values ($1, $2, $3, $4, $5, 'pending', $6, $6)",
        )
        .bind(escalation)
        .bind(event)
        .bind(t.channel.as_str())
        .bind(&t.target)
        .bind(payload)
        .bind(secs(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Leases up to `limit` pending notifications of `channel` due at `now`
    /// to `owner` until `now + lease`, oldest first. A notification leased to one
    /// instance is skipped by the others until its lease runs out (which only
    /// happens when the instance died while delivering), so each is sent by
    /// one instance at a time.
    pub async fn lease_notifications(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease: time::Duration,
        channel: NotifyChannel,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let pick = "select id from notifications where status = 'pending' and next_attempt_at <= $3 \
                    and (lease_until is null or lease_until < $3) and channel = $5 order by id limit $4";
        let sql = |lock: &str| {
            format!(
                "update notifications set lease_owner = $1, lease_until = $2 where id in ({pick}{lock}) returning {COLUMNS}"
            )
        };
        let bind = |sql| {
            sqlx::query(sql).bind(owner).bind(secs(now + lease)).bind(secs(now)).bind(limit).bind(channel.as_str())
        };
        let rows = match self.backend {
            // Rows another instance is leasing right now are skipped, not waited for.
            Backend::Postgres => bind(&sql(" for update skip locked")).fetch_all(&self.pool).await?,
            Backend::Sqlite => {
                let sql = sql("");
                self.write(async |tx| bind(&sql).fetch_all(&mut **tx).await.map_err(StoreError::from)).await?
            }
        };
        let mut out: Vec<NotificationRecord> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
        out.sort_by_key(|n| n.id);
        Ok(out)
    }

    /// Moves the lease `owner` holds on notification `id` on to `until`, while
    /// it is still sending; false when `owner` no longer holds it. Outside the
    /// writer lock, as the delivery record.
    pub async fn renew_notification_lease(
        &self,
        id: i64,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let update = sqlx::query(
            "update notifications set lease_until = $1 where id = $2 and lease_owner = $3 and status = 'pending'",
        )
        .bind(secs(until))
        .bind(id)
        .bind(owner);
        let changed =
            self.write_aside(async |tx| Ok::<_, StoreError>(update.execute(&mut **tx).await?.rows_affected())).await?;
        Ok(changed > 0)
    }

    /// Records a delivery attempt by the lease holder `owner`: delivered, to
    /// be retried at `retry_at`, or given up (`retry_at` None after a
    /// failure). Returns false, changing nothing, when `owner` no longer holds
    /// the lease — so one instance's failure never overwrites another's
    /// `delivered`.
    pub async fn record_delivery(
        &self,
        id: i64,
        owner: &str,
        error: Option<&str>,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (status, next) = match (error, retry_at) {
            (None, _) => ("delivered", now),
            (Some(_), Some(at)) => ("pending", at),
            (Some(_), None) => ("failed", now),
        };
        let update = sqlx::query(
            "update notifications set status = $1, attempts = attempts + 1, last_error = coalesce($2, last_error), next_attempt_at = $3, \
             delivered_at = case when $1 = 'delivered' then $4 else delivered_at end, lease_owner = null, lease_until = null \
             where id = $5 and lease_owner = $6 and status = 'pending'",
        )
        .bind(status)
        .bind(error)
        .bind(secs(next))
        .bind(secs(now))
        .bind(id)
        .bind(owner);
        let changed =
            self.write_aside(async |tx| Ok::<_, StoreError>(update.execute(&mut **tx).await?.rows_affected())).await?;
        Ok(changed > 0)
    }

    /// The delivery log of an escalation.
    pub async fn notifications(&self, escalation: i64) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(&format!("select {COLUMNS} from notifications where escalation_id = $1 order by id"))
            .bind(escalation)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// E-mail addresses of the active managers of a facility.
    pub async fn manager_emails(&self, facility: FacilityId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "select email from users where facility_id = $1 and role = 'facility_manager' and status = 'active' \
             and email is not null and email <> '' order by id",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("email")?)).collect()
    }
}
