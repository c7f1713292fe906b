//! Tickets of the emergency page: proof, for a few minutes and one report,
//! that a person signed in. Kept in the database so that the second step may
//! reach another instance than the first.

use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::UserId;

use crate::{Store, StoreError, secs};

impl Store {
    /// Records a ticket (by its hash) for `user` until `expires_at`, and
    /// forgets tickets that ran out.
    pub async fn issue_report_ticket(
        &self,
        token_hash: &str,
        user: UserId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            sqlx::query("delete from report_tickets where expires_at <= $1").bind(secs(now)).execute(&mut **tx).await?;
            sqlx::query("insert into report_tickets (token_hash, user_id, expires_at) values ($1, $2, $3)")
                .bind(token_hash)
                .bind(user.0)
                .bind(secs(expires_at))
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Uses up a ticket: its user if it exists and has not run out. Of two
    /// requests with one ticket, one gets it.
    pub async fn take_report_ticket(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError> {
        self.write(async |tx| {
            let row = sqlx::query("delete from report_tickets where token_hash = $1 returning user_id, expires_at")
                .bind(token_hash)
                .fetch_optional(&mut **tx)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let (user, expires_at): (i64, i64) = (row.try_get("user_id")?, row.try_get("expires_at")?);
            Ok((expires_at > secs(now)).then_some(UserId(user)))
        })
        .await
    }
}
