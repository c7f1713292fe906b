//! The emergency sign-in's throttle: per account and source network, with a
//! ceiling per account (`domain::sign_in` decides). An attempt is counted in
//! the write transaction that decides whether its password may be checked,
//! before the check, so parallel guesses serialise on the writer lock and
//! each sees the ones before it.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::sign_in::{Decision, SOURCE_MEMORY, Throttle, decide};
use connect_pki_domain::{AuditAction, DomainError, FacilityId, UserId, UserStatus};

use crate::audit::AuditEntry;
use crate::records::UserRecord;
use crate::{Store, StoreError, WriteTx, instant, secs};

/// Whether an emergency sign-in attempt may check its password.
#[derive(Debug, Clone)]
pub enum SignInGate {
    /// No account has this login ID.
    Unknown,
    /// The source or the account must wait; recorded, not checked.
    Refused,
    /// Counted as a failed check until [`Store::sign_in_succeeded`]; the
    /// account has no password yet when `password_hash` is `None`.
    Check { user: UserRecord, password_hash: Option<String> },
}

/// The `emergency.sign_in` audit record of an attempt on `user`.
fn sign_in_entry(actor: &str, user: &UserRecord, outcome: String, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        outcome,
        ..AuditEntry::ok(
            actor,
            AuditAction::EmergencySignIn,
            format!("user:{}", user.id),
            detail,
            Some(user.facility),
            Some(user.id),
        )
    }
}

/// The throttle state of `user` and `source`, read under the writer lock.
async fn read_throttle(tx: &mut WriteTx, user: UserId, source: &str) -> Result<Throttle, StoreError> {
    let account = sqlx::query("select failed_logins, sign_in_window_start from users where id = $1")
        .bind(user.0)
        .fetch_one(&mut **tx)
        .await?;
    let row = sqlx::query(
        "select failures, blocked_until, last_failure_at from sign_in_sources where user_id = $1 and source = $2",
    )
    .bind(user.0)
    .bind(source)
    .fetch_optional(&mut **tx)
    .await?;
    let opt = |v: Option<i64>| v.map(instant).transpose();
    let mut t = Throttle {
        account_checks: account.try_get("failed_logins")?,
        account_window_start: opt(account.try_get("sign_in_window_start")?)?,
        ..Throttle::default()
    };
    if let Some(row) = row {
        t.source_failures = row.try_get("failures")?;
        t.source_blocked_until = opt(row.try_get("blocked_until")?)?;
        t.source_last_failure = Some(instant(row.try_get("last_failure_at")?)?);
    }
    Ok(t)
}

/// Stores the state `decide` returned for a check about to run.
async fn count_check(tx: &mut WriteTx, user: UserId, source: &str, t: &Throttle) -> Result<(), StoreError> {
    sqlx::query("update users set failed_logins = $1, sign_in_window_start = $2 where id = $3")
        .bind(t.account_checks)
        .bind(t.account_window_start.map(secs))
        .bind(user.0)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "insert into sign_in_sources (user_id, source, failures, blocked_until, last_failure_at) \
         values ($1, $2, $3, $4, $5) on conflict (user_id, source) do update set failures = excluded.failures, \
         blocked_until = excluded.blocked_until, last_failure_at = excluded.last_failure_at",
    )
    .bind(user.0)
    .bind(source)
    .bind(t.source_failures)
    .bind(t.source_blocked_until.map(secs))
    .bind(t.source_last_failure.map(secs).unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Counts an emergency sign-in attempt from `source` on `login_id` and
    /// decides whether its password may be checked; every outcome is in the
    /// audit log (`emergency.sign_in`).
    /// `typed` is what the audit log keeps of `login_id` when no account has
    /// it: a keyed hash, not what was typed.
    pub async fn begin_sign_in(
        &self,
        login_id: &str,
        typed: &str,
        source: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<SignInGate, StoreError> {
        self.write(async |tx| {
            let row = sqlx::query(&format!(
                "select {}, u.password_hash from users u where u.login_id = $1",
                UserRecord::COLUMNS
            ))
            .bind(login_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else {
                let detail = json!({"login_id_hmac": typed});
                let entry = AuditEntry {
                    outcome: "unknown login ID".into(),
                    ..AuditEntry::ok(
                        actor,
                        AuditAction::EmergencySignIn,
                        "user:unknown",
                        detail,
                        None::<FacilityId>,
                        None,
                    )
                };
                tx.audit(now, &entry).await?;
                return Ok(SignInGate::Unknown);
            };
            let user = UserRecord::from_row(&row)?;
            let password_hash: Option<String> = row.try_get("password_hash")?;
            // Sources quiet for longer than the domain remembers are dropped,
            // so the table holds at most a week of each account's sources.
            sqlx::query("delete from sign_in_sources where user_id = $1 and last_failure_at <= $2")
                .bind(user.id.0)
                .bind(secs(now - SOURCE_MEMORY))
                .execute(&mut **tx)
                .await?;
            let throttle = read_throttle(tx, user.id, source).await?;
            match decide(&throttle, now) {
                Decision::Refuse(why) => {
                    let detail = json!({"source": source});
                    tx.audit(now, &sign_in_entry(actor, &user, why.to_string(), detail)).await?;
                    Ok(SignInGate::Refused)
                }
                Decision::Check(next) => {
                    count_check(tx, user.id, source, &next).await?;
                    let detail = json!({"source": source, "failures_from_source": next.source_failures});
                    tx.audit(now, &sign_in_entry(actor, &user, "password checked".into(), detail)).await?;
                    Ok(SignInGate::Check { user, password_hash })
                }
            }
        })
        .await
    }

    /// Sets a person's password anew (their manager reset it): the hash
    /// replaced, every source's failed attempts forgotten so the person can
    /// sign in at once, audited without the password.
    pub async fn reset_password(
        &self,
        user: UserId,
        password_hash: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            let u = crate::records::user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
            if !matches!(u.status, UserStatus::Invited | UserStatus::Active) {
                return Err(DomainError::InvalidTransition { from: u.status.as_str(), to: "a new password" }.into());
            }
            sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
                .bind(password_hash)
                .bind(secs(now))
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            sqlx::query("delete from sign_in_sources where user_id = $1").bind(user.0).execute(&mut **tx).await?;
            let entry = AuditEntry::ok(
                actor,
                AuditAction::UserPasswordReset,
                format!("user:{user}"),
                json!({}),
                Some(u.facility),
                Some(user),
            );
            tx.audit(now, &entry).await
        })
        .await
    }

    /// The password checked by [`Store::begin_sign_in`] was right: `source`
    /// starts afresh for `user` (the account's ceiling keeps its count).
    pub async fn sign_in_succeeded(
        &self,
        user: &UserRecord,
        source: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            sqlx::query("delete from sign_in_sources where user_id = $1 and source = $2")
                .bind(user.id.0)
                .bind(source)
                .execute(&mut **tx)
                .await?;
            tx.audit(now, &sign_in_entry(actor, user, "ok".into(), json!({"source": source}))).await
        })
        .await
    }
}
