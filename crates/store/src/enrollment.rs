//! Issuing certificates to devices: enrollment codes, their redemption (a
//! new device and its first certificate) and renewal. Each is one write
//! transaction with its audit rows. The store reads the facts under the
//! writer lock — so a retirement, loss report or closure that commits first
//! is always seen — and the domain (`domain::enrollment`, `domain::user`)
//! decides what may be issued to whom, and which refusal comes first.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::{BulkChange, Change};
use connect_pki_domain::enrollment::{
    Channel, RENEWAL_WINDOW, RedemptionFacts, Refusal, RenewalFacts, Verdict, check_renewal, check_renewal_rate,
    judge_redemption,
};
use connect_pki_domain::renewal::{Handover, Terms};
use connect_pki_domain::user as domain_user;
use connect_pki_domain::{AuditAction, CertStatus, DeviceId, FacilityId, Serial, UserId, UserStatus};

use crate::SignDevice;
use crate::audit::AuditEntry;
use crate::certificates::insert_certificate;
use crate::devices::insert_device;
use crate::error::Conflict;
use crate::handovers;
use crate::records::{DeviceRef, NewCertificate, UserRecord, text, user_by_id};
use crate::status::{self, Request};
use crate::{Store, StoreError, WriteTx, instant, secs};

/// A new enrollment code's stored half.
#[derive(Clone)]
pub struct NewCode {
    pub user: UserId,
    /// SHA-256 (hex) of the normalised secret.
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
}

connect_pki_domain::redacted_debug!(NewCode { user, expires_at; secret_hash });

/// A redemption attempt.
#[derive(Clone)]
pub struct Redemption {
    pub code_id: i64,
    pub secret_hash: String,
    /// Argon2id PHC string, when the caller chose a password.
    pub password_hash: Option<String>,
    pub device_label: String,
    /// Who tried, for the audit log (`public:{address}`).
    pub actor: String,
    pub channel: Channel,
}

connect_pki_domain::redacted_debug!(Redemption { code_id, password_hash, device_label, actor, channel; secret_hash });

/// A redemption attempt's facts and the code's holder, read under the
/// writer lock in one round trip; `None` for an unknown code.
async fn read_redemption(
    tx: &mut WriteTx,
    r: &Redemption,
) -> Result<Option<(RedemptionFacts, UserRecord)>, StoreError> {
    let row = sqlx::query(&format!(
        "select e.code_hash, e.expires_at, e.redeemed_at, f.status as facility_status, \
         coalesce((select c.failed from code_failures c where c.code_id = e.id and c.source = $2), 0) \
         as failed_attempts, \
         cast(case when u.password_hash is null then 0 else 1 end as bigint) as has_password, {} \
         from enrollment_codes e join users u on u.id = e.user_id join facilities f on f.id = u.facility_id \
         where e.id = $1",
        UserRecord::COLUMNS
    ))
    .bind(r.code_id)
    .bind(&r.actor)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user = UserRecord::from_row(&row)?;
    let facts = RedemptionFacts {
        expires_at: instant(row.try_get("expires_at")?)?,
        redeemed: row.try_get::<Option<i64>, _>("redeemed_at")?.is_some(),
        failed_attempts: row.try_get("failed_attempts")?,
        secret_matches: row.try_get::<String, _>("code_hash")? == r.secret_hash,
        user: user.status,
        facility: text(&row, "facility_status")?,
        has_password: row.try_get::<i64, _>("has_password")? != 0,
        password_given: r.password_hash.is_some(),
        channel: r.channel,
    };
    Ok(Some((facts, user)))
}

/// The audit record of a redemption attempt with `outcome`.
fn redemption_entry(r: &Redemption, user: &UserRecord, outcome: String) -> AuditEntry {
    AuditEntry {
        outcome,
        ..AuditEntry::ok(
            r.actor.clone(),
            AuditAction::EnrollmentRedeem,
            format!("enrollment_code:{}", r.code_id),
            json!({}),
            Some(user.facility),
            Some(user.id),
        )
    }
}

/// The audit record of an attempt at a code id that does not exist.
fn unknown_code_entry(r: &Redemption) -> AuditEntry {
    AuditEntry {
        outcome: "unknown code".into(),
        ..AuditEntry::ok(
            r.actor.clone(),
            AuditAction::EnrollmentRedeem,
            format!("enrollment_code:{}", r.code_id),
            json!({}),
            None,
            None,
        )
    }
}

/// Records a refused attempt (counting a wrong secret first); the caller
/// commits it and then refuses. `None` when the attempt may go on.
async fn record_refusal(
    tx: &mut WriteTx,
    r: &Redemption,
    user: &UserRecord,
    verdict: Verdict,
    now: OffsetDateTime,
) -> Result<Option<Refusal>, StoreError> {
    let (refusal, outcome) = match verdict {
        Verdict::Redeem => return Ok(None),
        Verdict::WrongSecret { attempts_left } => {
            // Counted for this source (what locks), and in all (the record).
            sqlx::query(
                "insert into code_failures (code_id, source, failed) values ($1, $2, 1) \
                 on conflict (code_id, source) do update set failed = code_failures.failed + 1",
            )
            .bind(r.code_id)
            .bind(&r.actor)
            .execute(&mut **tx)
            .await?;
            sqlx::query("update enrollment_codes set failed_attempts = failed_attempts + 1 where id = $1")
                .bind(r.code_id)
                .execute(&mut **tx)
                .await?;
            (Refusal::WrongCode, format!("wrong code ({} tries left)", attempts_left.max(0)))
        }
        Verdict::Refuse(Refusal::WrongCode) => (Refusal::WrongCode, "wrong code for an unusable code".to_string()),
        // Nothing changes; the refusal itself is still on record.
        Verdict::Refuse(refusal) => (refusal, refusal.to_string()),
    };
    tx.audit(now, &redemption_entry(r, user, outcome)).await?;
    Ok(Some(refusal))
}

/// Sets the first password and activates the user as enrollment does.
async fn enroll_user(
    tx: &mut WriteTx,
    r: &Redemption,
    user: &UserRecord,
    has_password: bool,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if !has_password {
        sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
            .bind(r.password_hash.as_deref())
            .bind(secs(now))
            .bind(user.id.0)
            .execute(&mut **tx)
            .await?;
    }
    let activated = domain_user::after_enrollment(user.status);
    if activated != user.status {
        // Guarded on the status read: under the writer lock it cannot have
        // moved, and if it ever did, a retired user must stay retired.
        sqlx::query("update users set status = $1, updated_at = $2 where id = $3 and status = $4")
            .bind(activated.as_str())
            .bind(secs(now))
            .bind(user.id.0)
            .bind(user.status.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The facts of a certificate presented for renewal and the ids a new one
/// is issued for.
async fn read_renewal(
    tx: &mut WriteTx,
    old: &Serial,
    now: OffsetDateTime,
) -> Result<(RenewalFacts, DeviceRef), StoreError> {
    let row = sqlx::query(
        "select c.status, c.not_after, d.id as d_id, d.status as d_status, d.managed, u.id as u_id, u.facility_id, \
         u.login_id, u.status as u_status, f.status as f_status, f.lifetime_days, f.managed_lifetime_days \
         from certificates c join devices d on d.id = c.device_id join users u on u.id = d.user_id \
         join facilities f on f.id = u.facility_id where c.serial = $1",
    )
    .bind(old.to_hex())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("certificate"))?;
    let facts = RenewalFacts {
        certificate: text(&row, "status")?,
        expired: row.try_get::<i64, _>("not_after")? <= secs(now),
        device_active: row.try_get::<String, _>("d_status")? == "active",
        user: text(&row, "u_status")?,
        facility: text(&row, "f_status")?,
    };
    let device = DeviceRef {
        facility: FacilityId(row.try_get("facility_id")?),
        user: UserId(row.try_get("u_id")?),
        device: DeviceId(row.try_get("d_id")?),
        login_id: row.try_get::<Option<String>, _>("login_id")?.unwrap_or_default(),
        managed: row.try_get::<i64, _>("managed")? != 0,
        lifetimes: crate::lifetimes::from_row(&row)?,
    };
    Ok((facts, device))
}

/// How many times `device` renewed within the window before `now`, and
/// when the oldest of those was. Each renewal by the API supersedes exactly
/// one certificate at the time it happens, and a superseded certificate
/// never changes again, so its `revoked_at` is the renewal's time; a
/// browser renewal still waiting for its handover counts by its row.
async fn recent_renewals(
    tx: &mut WriteTx,
    device: DeviceId,
    now: OffsetDateTime,
) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "select count(*) as n, min(revoked_at) as oldest from certificates \
         where device_id = $1 and status = $2 and revoked_at > $3",
    )
    .bind(device.0)
    .bind(CertStatus::Superseded.as_str())
    .bind(secs(now - RENEWAL_WINDOW))
    .fetch_one(&mut **tx)
    .await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    let (done, done_oldest) = (row.try_get::<i64, _>("n")?, oldest.map(instant).transpose()?);
    let (waiting, waiting_oldest) = handovers::waiting_since(tx, device, now - RENEWAL_WINDOW).await?;
    let oldest = [done_oldest, waiting_oldest].into_iter().flatten().min();
    Ok((done + waiting, oldest))
}

impl Store {
    /// Stores a new enrollment code for `user`.
    pub async fn create_enrollment_code(
        &self,
        code: &NewCode,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        self.write(async |tx| {
            let user = user_by_id(tx, code.user).await?.ok_or(StoreError::NotFound("user"))?;
            domain_user::check_enrollment_code(user.status)?;
            insert_code(tx, code, &user, actor, now).await
        })
        .await
    }

    /// The code whose secret hashes to `secret_hash` (SHA-256 of 80 random
    /// bits: a lookup, not a guess anyone can aim).
    pub async fn code_id_by_secret(&self, secret_hash: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("select id from enrollment_codes where code_hash = $1")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("id")).transpose()?)
    }

    /// Whether code `id` exists and its secret hashes to `secret_hash`: a read
    /// without the writer lock, only to decide whether the caller's password
    /// is worth hashing. The redemption decides again under the lock.
    pub async fn code_secret_matches(&self, id: i64, secret_hash: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("select code_hash from enrollment_codes where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<String, _>("code_hash")? == secret_hash,
            None => false,
        })
    }

    /// Redeems an enrollment code: checks it, counts a wrong secret (and
    /// commits that count even though the call fails), sets the first
    /// password, activates the user, creates the device and stores the
    /// certificate `sign` returns — all in one transaction.
    pub async fn redeem_enrollment_code<E>(
        &self,
        r: &Redemption,
        now: OffsetDateTime,
        sign: impl SignDevice<E>,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
    {
        // A refusal is committed (its audit row, a counted wrong secret) and
        // then returned, so it travels as `Ok(Err(refusal))` through `write`.
        let outcome = self
            .write(async |tx| -> Result<Result<(DeviceRef, NewCertificate), Refusal>, E> {
                let Some((facts, user)) = read_redemption(tx, r).await? else {
                    // On record like a wrong secret, and as costly, so the
                    // answer's timing does not tell which ids exist.
                    tx.audit(now, &unknown_code_entry(r)).await?;
                    return Ok(Err(Refusal::WrongCode));
                };
                if let Some(refusal) = record_refusal(tx, r, &user, judge_redemption(&facts, now), now).await? {
                    return Ok(Err(refusal));
                }
                let redeem = "update enrollment_codes set redeemed_at = $1 where id = $2 and redeemed_at is null";
                let used = tx.update_at(redeem, now, r.code_id).await?;
                if used == 0 {
                    return Ok(Err(Refusal::Redeemed));
                }
                enroll_user(tx, r, &user, facts.has_password, now).await?;
                let activated = user.status == UserStatus::Invited;
                let detail = json!({"password_set": !facts.has_password, "activated": activated});
                let mut entries = vec![AuditEntry { detail, ..redemption_entry(r, &user, "ok".into()) }];
                let device =
                    insert_device(tx, &user, &r.device_label, r.channel.managed(), &r.actor, now, &mut entries).await?;
                let cert = sign(&device)?;
                insert_certificate(tx, &device, &cert, &r.actor, now, &mut entries).await?;
                tx.audit_all(now, &entries).await?;
                Ok(Ok((device, cert)))
            })
            .await?;
        outcome.map_err(|refusal| E::from(StoreError::Enrollment(refusal)))
    }

    /// Renews the certificate `old` of a device: stores the certificate
    /// `sign` returns for the same device and hands over from `old` as
    /// `terms` say — superseded now, or once the new one is used
    /// (`handovers.rs`) — unless the device renewed `terms.per_hour` times
    /// within the last hour.
    pub async fn renew_certificate<E>(
        &self,
        old: &Serial,
        terms: Terms,
        actor: &str,
        now: OffsetDateTime,
        sign: impl SignDevice<E>,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
    {
        self.write(async |tx| {
            // Read under the writer lock: a loss report, retirement or closure
            // either committed before (and is seen here) or waits until after
            // this commit (and then revokes the new certificate too).
            let (facts, device) = read_renewal(tx, old, now).await?;
            check_renewal(old, &facts).map_err(StoreError::from)?;
            // Counted here, under the writer lock, rather than by a keyed
            // limiter in memory: the count holds across instances and
            // restarts, follows the injected clock, costs no table that
            // grows with the devices, and is the database's own record.
            let (recent, oldest) = recent_renewals(tx, device.device, now).await?;
            check_renewal_rate(recent, oldest, terms.per_hour, now).map_err(StoreError::TooManyRenewals)?;
            let cert = sign(&device)?;
            let mut entries = Vec::new();
            insert_certificate(tx, &device, &cert, actor, now, &mut entries).await?;
            tx.audit_all(now, &entries).await?;
            match terms.handover {
                Handover::Now => {
                    let detail = json!({"new_serial": cert.serial, "device_id": device.device});
                    let req = Request::new(BulkChange::any(Change::Supersede), actor, detail);
                    let superseded = status::apply(tx, std::slice::from_ref(old), &req, now).await?;
                    if superseded.is_empty() {
                        return Err(E::from(Conflict::RenewalRaced { serial: old.clone() }.into()));
                    }
                }
                Handover::OnFirstUse { by } => {
                    handovers::wait(tx, old, &cert.serial, device.device, actor, by, now).await?;
                }
            }
            Ok((device, cert))
        })
        .await
    }
}

pub(crate) async fn insert_code(
    tx: &mut WriteTx,
    code: &NewCode,
    user: &UserRecord,
    actor: &str,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query(
        "insert into enrollment_codes (user_id, code_hash, expires_at, created_at) values ($1, $2, $3, $4) returning id",
    )
    .bind(code.user.0)
    .bind(&code.secret_hash)
    .bind(secs(code.expires_at))
    .bind(secs(now))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    let entry = AuditEntry::ok(
        actor,
        AuditAction::EnrollmentCodeCreate,
        format!("enrollment_code:{id}"),
        json!({"expires_at": secs(code.expires_at)}),
        Some(user.facility),
        Some(user.id),
    );
    tx.audit(now, &entry).await?;
    Ok(id)
}
