//! Issuing certificates to devices: enrollment codes, their redemption (a
//! new device and its first certificate) and renewal. Each is one write
//! transaction with its audit rows; what may be issued to whom is decided
//! under the writer lock, so a retirement, loss report or closure that
//! commits first is always seen.

use serde_json::json;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::certificate::Change;
use connect_pki_domain::enrollment::{CodeState, MAX_FAILED_ATTEMPTS, Refusal, code_state};
use connect_pki_domain::user as domain_user;
use connect_pki_domain::{CertStatus, DeviceId, FacilityId, FacilityStatus, Serial, UserId, UserStatus};

use crate::audit::{self, AuditEntry};
use crate::ops::{insert_certificate, insert_device, user_by_id};
use crate::records::{DeviceRef, NewCertificate, UserRecord, text};
use crate::status::{self, Request};
use crate::{Store, StoreError, instant, secs};

/// A new enrollment code's stored half.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub user: UserId,
    /// SHA-256 (hex) of the normalised secret.
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
}

/// A redemption attempt.
#[derive(Debug, Clone)]
pub struct Redemption {
    pub code_id: i64,
    pub secret_hash: String,
    /// Argon2id PHC string, when the caller chose a password.
    pub password_hash: Option<String>,
    pub device_label: String,
    /// Who tried, for the audit log (`public:{address}`).
    pub actor: String,
}

impl Store {
    /// Stores a new enrollment code for `user`.
    pub async fn create_enrollment_code(
        &self,
        code: &NewCode,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let user = user_by_id(&mut tx, code.user).await?.ok_or(StoreError::NotFound("user"))?;
        if matches!(user.status, UserStatus::Retired | UserStatus::Deleted) {
            return Err(connect_pki_domain::DomainError::InvalidTransition {
                from: user.status.as_str(),
                to: "enrollment",
            }
            .into());
        }
        let id = insert_code(&mut tx, self, code, &user, actor, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Redeems an enrollment code: checks it, counts a wrong secret (and
    /// commits that count even though the call fails), sets the first
    /// password, activates the user, creates the device and stores the
    /// certificate `sign` returns — all in one transaction.
    pub async fn redeem_enrollment_code<E, F>(
        &self,
        r: &Redemption,
        now: OffsetDateTime,
        sign: F,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
        F: FnOnce(&DeviceRef) -> Result<NewCertificate, E>,
    {
        let mut tx = self.begin_write().await.map_err(E::from)?;
        // Everything the decision needs, in one round trip.
        let row = sqlx::query(&format!(
            "select e.code_hash, e.expires_at, e.failed_attempts, e.redeemed_at, f.status as facility_status, \
             cast(case when u.password_hash is null then 0 else 1 end as bigint) as has_password, {} \
             from enrollment_codes e join users u on u.id = e.user_id join facilities f on f.id = u.facility_id \
             where e.id = $1",
            UserRecord::COLUMNS
        ))
        .bind(r.code_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| E::from(e.into()))?;
        let refuse = |refusal: Refusal| E::from(StoreError::Enrollment(refusal));
        let Some(row) = row else {
            return Err(refuse(Refusal::WrongCode { attempts_left: MAX_FAILED_ATTEMPTS }));
        };
        let get = |col: &str| row.try_get::<i64, _>(col).map_err(|e| E::from(e.into()));
        let failed = get("failed_attempts")?;
        let expires_at = instant(get("expires_at")?).map_err(E::from)?;
        let redeemed = row.try_get::<Option<i64>, _>("redeemed_at").map_err(|e| E::from(e.into()))?.is_some();
        let stored_hash: String = row.try_get("code_hash").map_err(|e| E::from(e.into()))?;
        let user = UserRecord::from_row(&row).map_err(E::from)?;
        let facility_status: FacilityStatus = text(&row, "facility_status").map_err(E::from)?;
        let has_password = get("has_password")? != 0;
        let audit_refusal = |outcome: String| AuditEntry {
            actor: r.actor.clone(),
            action: "enrollment.redeem".into(),
            target: format!("enrollment_code:{}", r.code_id),
            outcome,
            detail: json!({}),
            facility: Some(user.facility),
            user: Some(user.id),
        };
        let state = code_state(expires_at, redeemed, failed, now);
        if state == CodeState::Usable && stored_hash != r.secret_hash {
            sqlx::query("update enrollment_codes set failed_attempts = failed_attempts + 1 where id = $1")
                .bind(r.code_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| E::from(e.into()))?;
            let left = MAX_FAILED_ATTEMPTS - failed - 1;
            audit::append(&mut tx, self.backend, now, &audit_refusal(format!("wrong code ({left} tries left)")))
                .await
                .map_err(E::from)?;
            tx.commit().await.map_err(|e| E::from(e.into()))?;
            return Err(refuse(if left <= 0 { Refusal::Locked } else { Refusal::WrongCode { attempts_left: left } }));
        }
        let refusal = match state {
            CodeState::Usable => None,
            CodeState::Redeemed => Some(Refusal::Redeemed),
            CodeState::Expired => Some(Refusal::Expired),
            CodeState::Locked => Some(Refusal::Locked),
        };
        let refusal = refusal.or((!domain_user::may_receive_certificates(user.status))
            .then_some(Refusal::AccountClosed(user.status.as_str())));
        let refusal = refusal.or((facility_status != FacilityStatus::Approved)
            .then_some(Refusal::FacilityNotActive(facility_status.as_str())));
        let refusal = refusal.or((!has_password && r.password_hash.is_none()).then_some(Refusal::PasswordRequired));
        if let Some(refusal) = refusal {
            // Nothing changes; the refusal itself is still on record.
            audit::append(&mut tx, self.backend, now, &audit_refusal(refusal.to_string())).await.map_err(E::from)?;
            tx.commit().await.map_err(|e| E::from(e.into()))?;
            return Err(refuse(refusal));
        }
        let used = sqlx::query("update enrollment_codes set redeemed_at = $1 where id = $2 and redeemed_at is null")
            .bind(secs(now))
            .bind(r.code_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| E::from(e.into()))?
            .rows_affected();
        if used == 0 {
            return Err(refuse(Refusal::Redeemed));
        }
        if !has_password {
            sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
                .bind(r.password_hash.as_deref())
                .bind(secs(now))
                .bind(user.id.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| E::from(e.into()))?;
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
                .execute(&mut *tx)
                .await
                .map_err(|e| E::from(e.into()))?;
        }
        let mut entries = vec![AuditEntry {
            detail: json!({"password_set": !has_password, "activated": user.status == UserStatus::Invited}),
            ..audit_refusal("ok".into())
        }];
        let device =
            insert_device(&mut tx, &user, &r.device_label, &r.actor, now, &mut entries).await.map_err(E::from)?;
        let cert = sign(&device)?;
        insert_certificate(&mut tx, &device, &cert, &r.actor, now, &mut entries).await.map_err(E::from)?;
        audit::append_all(&mut tx, self.backend, now, &entries).await.map_err(E::from)?;
        tx.commit().await.map_err(|e| E::from(e.into()))?;
        Ok((device, cert))
    }

    /// The password hash of a user, for checking a sign-in.
    pub async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("select password_hash from users where id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        Ok(row.try_get("password_hash")?)
    }

    /// Renews the certificate `old` of a device: stores the certificate
    /// `sign` returns for the same device and marks `old` superseded.
    pub async fn renew_certificate<E, F>(
        &self,
        old: &Serial,
        actor: &str,
        now: OffsetDateTime,
        sign: F,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
        F: FnOnce(&DeviceRef) -> Result<NewCertificate, E>,
    {
        let mut tx = self.begin_write().await.map_err(E::from)?;
        let row = sqlx::query(
            "select c.status, d.id as d_id, d.status as d_status, u.id as u_id, u.facility_id, u.login_id, \
             u.status as u_status, f.status as f_status \
             from certificates c join devices d on d.id = c.device_id join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id where c.serial = $1",
        )
        .bind(old.to_hex())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| E::from(e.into()))?
        .ok_or(StoreError::NotFound("certificate"))
        .map_err(E::from)?;
        let status: CertStatus = text(&row, "status").map_err(E::from)?;
        let device_status: String = row.try_get("d_status").map_err(|e| E::from(e.into()))?;
        let user_status: UserStatus = text(&row, "u_status").map_err(E::from)?;
        let facility_status: FacilityStatus = text(&row, "f_status").map_err(E::from)?;
        // Read under the writer lock: a loss report, retirement or closure
        // either committed before (and is seen here) or waits until after
        // this commit (and then revokes the new certificate too).
        if status != CertStatus::Valid
            || device_status != "active"
            || !domain_user::may_receive_certificates(user_status)
            || facility_status != FacilityStatus::Approved
        {
            return Err(E::from(StoreError::from(connect_pki_domain::DomainError::CertificateNotUsable {
                serial: old.clone(),
                status: if status != CertStatus::Valid {
                    status.as_str()
                } else if device_status != "active" {
                    "of a device that is no longer active"
                } else if facility_status != FacilityStatus::Approved {
                    "of a facility that is not active"
                } else {
                    "of a retired user"
                },
            })));
        }
        let device = DeviceRef {
            facility: FacilityId(row.try_get("facility_id").map_err(|e| E::from(e.into()))?),
            user: UserId(row.try_get("u_id").map_err(|e| E::from(e.into()))?),
            device: DeviceId(row.try_get("d_id").map_err(|e| E::from(e.into()))?),
            login_id: row.try_get::<Option<String>, _>("login_id").map_err(|e| E::from(e.into()))?.unwrap_or_default(),
        };
        let cert = sign(&device)?;
        let mut entries = Vec::new();
        insert_certificate(&mut tx, &device, &cert, actor, now, &mut entries).await.map_err(E::from)?;
        audit::append_all(&mut tx, self.backend, now, &entries).await.map_err(E::from)?;
        let req = Request {
            change: Change::Supersede,
            only_from: None,
            actor,
            detail: json!({"new_serial": cert.serial, "device_id": device.device}),
        };
        let superseded = status::apply(&mut tx, std::slice::from_ref(old), &req, now).await.map_err(E::from)?;
        if superseded.is_empty() {
            return Err(E::from(StoreError::Conflict(format!("certificate {old} changed during renewal"))));
        }
        tx.commit().await.map_err(|e| E::from(e.into()))?;
        Ok((device, cert))
    }
}

pub(crate) async fn insert_code(
    tx: &mut AnyConnection,
    store: &Store,
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
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    audit::append(
        tx,
        store.backend,
        now,
        &AuditEntry::ok(
            actor,
            "enrollment_code.create",
            format!("enrollment_code:{id}"),
            json!({"expires_at": secs(code.expires_at)}),
            Some(user.facility),
            Some(user.id),
        ),
    )
    .await?;
    Ok(id)
}
