//! The notification outbox and delivery log.

use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::FacilityId;

use crate::{Store, StoreError, instant, secs};

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `webhook` or `email`.
    pub channel: &'static str,
    /// URL or e-mail address.
    pub target: String,
}

/// A notification, pending or delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    pub escalation: i64,
    pub event: String,
    pub channel: String,
    pub target: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

const COLUMNS: &str =
    "id, escalation_id, event, channel, target, payload, status, attempts, last_error, created_at, delivered_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<NotificationRecord, StoreError> {
    Ok(NotificationRecord {
        id: r.try_get("id")?,
        escalation: r.try_get("escalation_id")?,
        event: r.try_get("event")?,
        channel: r.try_get("channel")?,
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
    tx: &mut AnyConnection,
    escalation: i64,
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
        .bind(t.channel)
        .bind(&t.target)
        .bind(payload)
        .bind(secs(now))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Queues notifications on their own (for an escalation that moved queue).
    pub async fn enqueue_notifications(
        &self,
        escalation: i64,
        event: &str,
        targets: &[Target],
        payload: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        enqueue(&mut tx, escalation, event, targets, payload, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Pending notifications due at `now`, oldest first.
    pub async fn due_notifications(
        &self,
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from notifications where status = 'pending' and next_attempt_at <= $1 order by id limit $2"
        ))
        .bind(secs(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records a delivery attempt: delivered, to be retried at `retry_at`, or
    /// given up (`retry_at` None after a failure).
    pub async fn record_delivery(
        &self,
        id: i64,
        error: Option<&str>,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (status, next) = match (error, retry_at) {
            (None, _) => ("delivered", now),
            (Some(_), Some(at)) => ("pending", at),
            (Some(_), None) => ("failed", now),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "update notifications set status = $1, attempts = attempts + 1, last_error = coalesce($2, last_error), next_attempt_at = $3, \
             delivered_at = case when $1 = 'delivered' then $4 else delivered_at end where id = $5",
        )
        .bind(status)
        .bind(error)
        .bind(secs(next))
        .bind(secs(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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
