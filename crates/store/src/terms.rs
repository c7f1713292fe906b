//! Which version of the terms of use (利用規約) each facility manager accepted.
//! The applicant accepts at application; approval records it for the
//! manager it creates, and a later version is accepted on the manager's next
//! visit to the console.

use serde_json::json;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, FacilityId, UserId};

use crate::audit::AuditEntry;
use crate::{Store, StoreError, WriteTx, secs};

impl Store {
    /// Whether `user` has accepted `version`.
    pub async fn accepted_terms(&self, user: UserId, version: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("select 1 from terms_acceptances where user_id = $1 and version = $2")
            .bind(user.0)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records that `user` accepted `version`, with its audit record; false
    /// (and no record) when they already had.
    pub async fn accept_terms(
        &self,
        user: UserId,
        facility: FacilityId,
        actor: &str,
        version: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.write(async |tx| {
            if !record_acceptance(tx, user, version, now).await? {
                return Ok(false);
            }
            let entry = AuditEntry::ok(
                actor,
                AuditAction::TermsAccept,
                format!("user:{user}"),
                json!({"version": version}),
                Some(facility),
                Some(user),
            );
            tx.audit(now, &entry).await?;
            Ok(true)
        })
        .await
    }
}

/// Inserts the acceptance unless it is there; whether it was new.
pub(crate) async fn record_acceptance(
    tx: &mut WriteTx,
    user: UserId,
    version: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "insert into terms_acceptances (user_id, version, accepted_at) values ($1, $2, $3) \
         on conflict (user_id, version) do nothing",
    )
    .bind(user.0)
    .bind(version)
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
