//! Certificate status changes — revoke, hold, release, lost device, retirement,
//! deletion — and the change feed every instance follows.
//!
//! Each change is one transaction: a guarded `update … where status in (…)`
//! (so two racing callers cannot both win), its audit row, and one
//! `cert_events` row per certificate. Event ids are taken under the same
//! PostgreSQL advisory lock as the audit chain, held to commit, so ids become
//! visible in increasing order and a follower that has seen id N has seen
//! everything before it.

use serde_json::json;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::certificate::Change;
use connect_pki_domain::user as domain_user;
use connect_pki_domain::{CertStatus, DeviceId, DomainError, Reason, Serial, UserId, UserStatus};

use crate::audit::{self, AuditEntry};
use crate::ops::user_by_id;
use crate::records::{CertificateRecord, opt_text, text};
use crate::status::{self, Request};
use crate::{Backend, Store, StoreError, WriteTx, instant, secs};

/// One change of a certificate's status, as the feed carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEvent {
    pub id: i64,
    pub serial: Serial,
    pub status: CertStatus,
    pub reason: Option<Reason>,
    pub at: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// The result of a status change on one certificate.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub certificate: CertificateRecord,
    /// False when the certificate already was in the requested state.
    pub changed: bool,
}

/// A valid certificate that should not be (`connect-pki check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offender {
    pub serial: Serial,
    pub why: String,
}

async fn certificate_in(tx: &mut AnyConnection, serial: &Serial) -> Result<CertificateRecord, StoreError> {
    let row = sqlx::query(&format!("select {} from certificates c where c.serial = $1", CertificateRecord::COLUMNS))
        .bind(serial.to_hex())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("certificate"))?;
    CertificateRecord::from_row(&row)
}

/// Serials of the certificates matching `condition` (a condition on `c`,
/// with `$1` bound to `arg`).
pub(crate) async fn serials_where(tx: &mut WriteTx, condition: &str, arg: i64) -> Result<Vec<Serial>, StoreError> {
    let rows = sqlx::query(&format!("select c.serial from certificates c where {condition} order by c.serial"))
        .bind(arg)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| text(r, "serial")).collect()
}

/// Revokes every certificate matching `condition` that the lifecycle lets
/// be revoked; returns the serials that changed.
pub(crate) async fn revoke_where(
    tx: &mut WriteTx,
    condition: &str,
    arg: i64,
    reason: Reason,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let serials = serials_where(tx, condition, arg).await?;
    let req = Request { change: Change::Revoke(reason), only_from: None, actor, detail: json!({}) };
    Ok(status::apply(tx, &serials, &req, now).await?.into_iter().map(|t| t.serial).collect())
}

/// Retires `user` inside `tx` (see [`Store::retire_user`]).
async fn retire_in(
    tx: &mut WriteTx,
    user: UserId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
    let next = match domain_user::retire(u.status) {
        None => return Ok(Vec::new()),
        Some(next) => next,
    };
    sqlx::query("update users set status = $1, retire_at = null, updated_at = $2 where id = $3 and status = $4")
        .bind(next.as_str())
        .bind(secs(now))
        .bind(user.0)
        .bind(u.status.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("update devices set status = 'retired', updated_at = $1 where user_id = $2 and status = 'active'")
        .bind(secs(now))
        .bind(user.0)
        .execute(&mut **tx)
        .await?;
    let revoked = revoke_where(
        tx,
        "c.device_id in (select id from devices where user_id = $1)",
        user.0,
        Reason::AffiliationChanged,
        actor,
        now,
    )
    .await?;
    let backend = tx.backend;
    audit::append(
        tx,
        backend,
        now,
        &AuditEntry::ok(
            actor,
            "user.retire",
            format!("user:{user}"),
            json!({"revoked": revoked}),
            Some(u.facility),
            Some(user),
        ),
    )
    .await?;
    Ok(revoked)
}

impl Store {
    /// Revokes, holds or releases one certificate.
    pub async fn change_certificate(
        &self,
        serial: &Serial,
        change: Change,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<StatusChange, StoreError> {
        let mut tx = self.begin_write().await?;
        let req = Request { change, only_from: None, actor, detail: json!({}) };
        let changed = status::apply(&mut tx, std::slice::from_ref(serial), &req, now).await?;
        let certificate = certificate_in(&mut tx, serial).await?;
        tx.commit().await?;
        Ok(StatusChange { certificate, changed: !changed.is_empty() })
    }

    /// Reports a device lost: every valid or held certificate of it revoked
    /// with keyCompromise, the device marked lost. Repeating is safe.
    pub async fn device_lost(
        &self,
        device: DeviceId,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("select d.status, u.id as u_id, u.facility_id from devices d join users u on u.id = d.user_id where d.id = $1")
            .bind(device.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("device"))?;
        let (user, facility): (i64, i64) = (row.try_get("u_id")?, row.try_get("facility_id")?);
        let marked =
            sqlx::query("update devices set status = 'lost', updated_at = $1 where id = $2 and status <> 'lost'")
                .bind(secs(now))
                .bind(device.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let revoked = revoke_where(&mut tx, "c.device_id = $1", device.0, Reason::KeyCompromise, actor, now).await?;
        if marked > 0 || !revoked.is_empty() {
            audit::append(
                &mut tx,
                self.backend,
                now,
                &AuditEntry::ok(
                    actor,
                    "device.lost",
                    format!("device:{device}"),
                    json!({"revoked": revoked}),
                    Some(connect_pki_domain::FacilityId(facility)),
                    Some(UserId(user)),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// Retires a user now: account disabled, devices retired, every valid or
    /// held certificate revoked with affiliationChanged — one transaction.
    /// Retiring a retired user changes nothing.
    pub async fn retire_user(&self, user: UserId, actor: &str, now: OffsetDateTime) -> Result<Vec<Serial>, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = retire_in(&mut tx, user, actor, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Carries out a scheduled retirement if it is still scheduled and due at
    /// `now`; of several instances running it, one does it and the others
    /// find nothing to do. Returns `None` when nothing was due.
    pub async fn retire_if_due(&self, user: UserId, now: OffsetDateTime) -> Result<Option<Vec<Serial>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let due = sqlx::query(
            "select 1 as one from users where id = $1 and retire_at is not null and retire_at <= $2 \
             and status in ('invited', 'active')",
        )
        .bind(user.0)
        .bind(secs(now))
        .fetch_optional(&mut *tx)
        .await?;
        if due.is_none() {
            return Ok(None);
        }
        let revoked = retire_in(&mut tx, user, "system:scheduled-retirement", now).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    /// Schedules a retirement at `at` (a worker carries it out, also after downtime).
    pub async fn schedule_retirement(
        &self,
        user: UserId,
        at: OffsetDateTime,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let u = user_by_id(&mut tx, user).await?.ok_or(StoreError::NotFound("user"))?;
        if !matches!(u.status, UserStatus::Invited | UserStatus::Active) {
            return Err(DomainError::InvalidTransition { from: u.status.as_str(), to: "retired" }.into());
        }
        sqlx::query("update users set retire_at = $1, updated_at = $2 where id = $3")
            .bind(secs(at))
            .bind(secs(now))
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            self.backend,
            now,
            &AuditEntry::ok(
                actor,
                "user.retire_scheduled",
                format!("user:{user}"),
                json!({"at": secs(at)}),
                Some(u.facility),
                Some(user),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Users whose scheduled retirement is due.
    pub async fn due_retirements(&self, now: OffsetDateTime) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "select id from users where retire_at is not null and retire_at <= $1 and status in ('invited', 'active') order by retire_at",
        )
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(UserId(r.try_get("id")?))).collect()
    }

    /// The scheduled retirement of a user, if any.
    pub async fn retire_at(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query("select retire_at from users where id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        row.try_get::<Option<i64>, _>("retire_at")?.map(instant).transpose()
    }

    /// Deletes a retired user's personal data (login ID, name, e-mail,
    /// password, device labels) and marks them deleted. The rows and the audit
    /// trail stay. Only a retired user can be deleted; deleting twice is safe.
    pub async fn delete_user(&self, user: UserId, actor: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let u = user_by_id(&mut tx, user).await?.ok_or(StoreError::NotFound("user"))?;
        match u.status {
            UserStatus::Deleted => return Ok(()),
            UserStatus::Retired => {}
            other => {
                return Err(
                    DomainError::InvalidTransition { from: other.as_str(), to: "deleted (retire first)" }.into()
                );
            }
        }
        sqlx::query(
            "update users set login_id = null, display_name = null, email = null, password_hash = null, \
             status = 'deleted', updated_at = $1 where id = $2",
        )
        .bind(secs(now))
        .bind(user.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update devices set label = '', updated_at = $1 where user_id = $2")
            .bind(secs(now))
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("update enrollment_codes set expires_at = $1 where user_id = $2 and redeemed_at is null")
            .bind(secs(now))
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            self.backend,
            now,
            &AuditEntry::ok(
                actor,
                "user.delete",
                format!("user:{user}"),
                json!({"personal_data": "removed"}),
                Some(u.facility),
                Some(user),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every certificate's status with the feed position it reflects, read
    /// in one snapshot: the starting point of an in-memory index.
    pub async fn certificate_index(&self) -> Result<(i64, Vec<CertEvent>), StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => self.pool.begin_with("begin isolation level repeatable read").await?,
        };
        let last: i64 = sqlx::query("select coalesce(max(id), 0) as last from cert_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get("last")?;
        let rows = sqlx::query(
            "select serial, status, revocation_reason, coalesce(revoked_at, 0) as at, not_after from certificates",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(CertEvent {
                    id: last,
                    serial: text(r, "serial")?,
                    status: text(r, "status")?,
                    reason: opt_text(r, "revocation_reason")?,
                    at: instant(r.try_get("at")?)?,
                    not_after: instant(r.try_get("not_after")?)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((last, entries))
    }

    /// Feed rows after `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<CertEvent>, StoreError> {
        let rows = sqlx::query(
            "select e.id, e.serial, e.status, e.reason, e.at, c.not_after from cert_events e \
             join certificates c on c.serial = e.serial where e.id > $1 order by e.id limit $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CertEvent {
                    id: r.try_get("id")?,
                    serial: text(r, "serial")?,
                    status: text(r, "status")?,
                    reason: opt_text(r, "reason")?,
                    at: instant(r.try_get("at")?)?,
                    not_after: instant(r.try_get("not_after")?)?,
                })
            })
            .collect()
    }

    /// The time by which due work (scheduled retirements, SLAs, hold limits)
    /// is decided: the database's clock on PostgreSQL, so that instances whose
    /// clocks disagree still agree on what is due; `local` on SQLite, which
    /// only one instance uses.
    pub async fn due_clock(&self, local: OffsetDateTime) -> Result<OffsetDateTime, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(local),
            Backend::Postgres => instant(
                sqlx::query("select cast(floor(extract(epoch from clock_timestamp())) as bigint) as now")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("now")?,
            ),
        }
    }

    /// The newest feed position committed. A caller that reads it after its
    /// own commit gets a position at or past that commit: every writer holds
    /// the writer lock to commit, so feed ids become visible in order.
    pub async fn feed_head(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("select coalesce(max(id), 0) as last from cert_events")
            .fetch_one(&self.pool)
            .await?
            .try_get("last")?)
    }

    /// The next CRL number, for a CRL built from an index that reflects the
    /// feed up to `position`. Numbers are persisted before use, so they only
    /// ever increase, across restarts and instances; and a number is given
    /// only to an index at least as new as the one that got the previous
    /// number, so that a CRL with a higher number never lacks a revocation a
    /// lower-numbered one listed. An instance that is behind is told the
    /// position to catch up to first (`Err(position)`).
    pub async fn next_crl_number(&self, position: i64) -> Result<Result<i64, i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "update crl_state set crl_number = crl_number + 1, position = $1 where id = 1 and position <= $1 \
             returning crl_number",
        )
        .bind(position)
        .fetch_optional(&mut *tx)
        .await?;
        let out = match row {
            Some(row) => Ok(row.try_get("crl_number")?),
            None => Err(sqlx::query("select position from crl_state where id = 1")
                .fetch_one(&mut *tx)
                .await?
                .try_get("position")?),
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Valid certificates that should not be: of a retired or deleted user,
    /// a closed facility, or a device reported lost.
    pub async fn consistency_offenders(&self) -> Result<Vec<Offender>, StoreError> {
        let rows = sqlx::query(
            "select c.serial, u.status as u_status, f.status as f_status, d.status as d_status, u.id as u_id, f.id as f_id, d.id as d_id \
             from certificates c join devices d on d.id = c.device_id join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id \
             where c.status in ('valid', 'on_hold') \
               and (u.status in ('retired', 'deleted') or f.status = 'closed' or d.status = 'lost') order by c.serial",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (us, fs, ds): (String, String, String) =
                    (r.try_get("u_status")?, r.try_get("f_status")?, r.try_get("d_status")?);
                let why = if fs == "closed" {
                    format!("facility {} is closed", r.try_get::<i64, _>("f_id")?)
                } else if ds == "lost" {
                    format!("device {} was reported lost", r.try_get::<i64, _>("d_id")?)
                } else {
                    format!("user {} is {us}", r.try_get::<i64, _>("u_id")?)
                };
                Ok(Offender { serial: text(r, "serial")?, why })
            })
            .collect()
    }
}
