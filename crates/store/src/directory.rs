//! Applications, facilities, users, enrollment codes and devices: the
//! operations of everyday administration (DESIGN §3). Each is one transaction
//! with its audit rows.

use serde_json::json;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::enrollment::{CodeState, MAX_FAILED_ATTEMPTS, Refusal, code_state};
use connect_pki_domain::{
    CertStatus, DeviceId, FacilityId, FacilityKind, FacilityStatus, Reason, Role, Serial, UserId, UserStatus,
};

use connect_pki_domain::certificate::Change;
use connect_pki_domain::user as domain_user;

use crate::audit::{self, AuditEntry};
use crate::ops::{insert_certificate, insert_device, insert_facility, insert_user, user_by_id};
use crate::records::{
    CertificateRecord, DeviceRef, FacilityRecord, NewCertificate, NewFacility, NewUser, UserRecord, text,
};
use crate::revocation::revoke_where;
use crate::status::{self, Request};
use crate::{Store, StoreError, instant, secs};

/// A stored application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    pub id: i64,
    pub status_token: String,
    pub form: ApplicationForm,
    pub status: String,
    pub decision_reason: Option<String>,
    pub facility: Option<FacilityId>,
    pub created_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
}

/// What approving an application created.
#[derive(Debug, Clone)]
pub struct Approval {
    pub facility: FacilityRecord,
    pub manager: UserRecord,
    pub code_id: i64,
}

/// A device with its certificates, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub user: UserId,
    pub facility: FacilityId,
    pub label: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub certificates: Vec<CertificateRecord>,
}

/// A user with their devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithDevices {
    pub user: UserRecord,
    pub devices: Vec<DeviceRecord>,
}

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

/// The outcome of closing or changing a facility.
#[derive(Debug, Clone)]
pub struct FacilityChange {
    pub facility: FacilityRecord,
    /// Certificates revoked by the change (closing only).
    pub revoked: Vec<Serial>,
}

const APPLICATION_COLUMNS: &str = "id, status_token, name, kind, address, department, manager_name, manager_login_id, \
     manager_email, manager_phone, purpose_attested, terms_version, status, decision_reason, facility_id, created_at, decided_at";

fn application_from_row(row: &sqlx::any::AnyRow) -> Result<ApplicationRecord, StoreError> {
    let decided_at: Option<i64> = row.try_get("decided_at")?;
    Ok(ApplicationRecord {
        id: row.try_get("id")?,
        status_token: row.try_get("status_token")?,
        form: ApplicationForm {
            name: row.try_get("name")?,
            kind: text::<FacilityKind>(row, "kind")?,
            address: row.try_get("address")?,
            department: row.try_get("department")?,
            manager_name: row.try_get("manager_name")?,
            manager_login_id: row.try_get("manager_login_id")?,
            manager_email: row.try_get("manager_email")?,
            manager_phone: row.try_get("manager_phone")?,
            purpose_attested: row.try_get::<i64, _>("purpose_attested")? == 1,
            terms_version: row.try_get("terms_version")?,
        },
        status: row.try_get("status")?,
        decision_reason: row.try_get("decision_reason")?,
        facility: row.try_get::<Option<i64>, _>("facility_id")?.map(FacilityId),
        created_at: instant(row.try_get("created_at")?)?,
        decided_at: decided_at.map(instant).transpose()?,
    })
}

async fn login_taken(conn: &mut AnyConnection, login_id: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("select 1 as one from users where login_id = $1").bind(login_id).fetch_optional(conn).await?;
    Ok(row.is_some())
}

impl Store {
    /// Records a validated application from the public form.
    pub async fn submit_application(
        &self,
        form: &ApplicationForm,
        status_token: &str,
        client: &str,
        now: OffsetDateTime,
    ) -> Result<ApplicationRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        if login_taken(&mut tx, &form.manager_login_id).await? {
            return Err(StoreError::Conflict(format!("login ID {:?} is already taken", form.manager_login_id)));
        }
        let id: i64 = sqlx::query(
            "insert into applications (status_token, name, kind, address, department, manager_name, manager_login_id, \
             manager_email, manager_phone, purpose_attested, terms_version, client_addr, status, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, 'pending', $12, $12) returning id",
        )
        .bind(status_token)
        .bind(&form.name)
        .bind(form.kind.as_str())
        .bind(&form.address)
        .bind(form.department.as_deref())
        .bind(&form.manager_name)
        .bind(&form.manager_login_id)
        .bind(&form.manager_email)
        .bind(&form.manager_phone)
        .bind(&form.terms_version)
        .bind(client)
        .bind(secs(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let entry = AuditEntry {
            actor: format!("public:{client}"),
            action: "application.submit".into(),
            target: format!("application:{id}"),
            outcome: "ok".into(),
            detail: json!({"name": form.name, "kind": form.kind, "manager_login_id": form.manager_login_id,
                           "terms_version": form.terms_version, "purpose_attested": true}),
            facility: None,
            user: None,
        };
        audit::append(&mut tx, self.backend, now, &entry).await?;
        tx.commit().await?;
        self.application(id).await?.ok_or(StoreError::NotFound("application"))
    }

    /// One application by number.
    pub async fn application(&self, id: i64) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    /// One application by its status token (the public status page).
    pub async fn application_by_token(&self, token: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where status_token = $1"))
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    /// Applications, oldest first, optionally of one status.
    pub async fn applications(&self, status: Option<&str>) -> Result<Vec<ApplicationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {APPLICATION_COLUMNS} from applications where ($1 = '' or status = $1) order by id limit 1000"
        ))
        .bind(status.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(application_from_row).collect()
    }

    /// Approves a pending application: the facility, its manager (invited)
    /// and the manager's first enrollment code, in one transaction.
    pub async fn approve_application(
        &self,
        id: i64,
        decided_by: UserId,
        code: impl FnOnce(UserId) -> NewCode,
        now: OffsetDateTime,
    ) -> Result<Approval, StoreError> {
        let mut tx = self.begin_write().await?;
        let app = decide(&mut tx, id, "approved", decided_by, None, now).await?;
        let actor = format!("user:{decided_by}");
        let new = NewFacility {
            name: app.form.name.clone(),
            kind: app.form.kind,
            address: app.form.address.clone(),
            department: app.form.department.clone(),
        };
        let facility = insert_facility(&mut tx, self, &new, FacilityStatus::Approved, &actor, now).await?;
        let manager = NewUser {
            login_id: app.form.manager_login_id.clone(),
            display_name: app.form.manager_name.clone(),
            email: app.form.manager_email.clone(),
            role: Role::FacilityManager,
        };
        let manager = insert_user(&mut tx, self, facility.id, &manager, UserStatus::Invited, &actor, now).await?;
        sqlx::query("update applications set facility_id = $1 where id = $2")
            .bind(facility.id.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let code_id = insert_code(&mut tx, self, &code(manager.id), &manager, &actor, now).await?;
        audit::append(
            &mut tx,
            self.backend,
            now,
            &AuditEntry {
                actor,
                action: "application.approve".into(),
                target: format!("application:{id}"),
                outcome: "ok".into(),
                detail: json!({"facility_id": facility.id, "manager_user_id": manager.id}),
                facility: Some(facility.id),
                user: Some(manager.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Approval { facility, manager, code_id })
    }

    /// Rejects a pending application with a reason.
    pub async fn reject_application(
        &self,
        id: i64,
        decided_by: UserId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<ApplicationRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        decide(&mut tx, id, "rejected", decided_by, Some(reason), now).await?;
        audit::append(
            &mut tx,
            self.backend,
            now,
            &AuditEntry::ok(
                format!("user:{decided_by}"),
                "application.reject",
                format!("application:{id}"),
                json!({"reason": reason}),
                None,
                None,
            ),
        )
        .await?;
        tx.commit().await?;
        self.application(id).await?.ok_or(StoreError::NotFound("application"))
    }

    /// Every facility, by id.
    pub async fn facilities(&self) -> Result<Vec<FacilityRecord>, StoreError> {
        let rows = sqlx::query(&format!("select {} from facilities f order by f.id", FacilityRecord::COLUMNS))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(FacilityRecord::from_row).collect()
    }

    /// Moves a facility through its lifecycle. Closing revokes every
    /// certificate of its users (cessationOfOperation) in the same transaction.
    pub async fn change_facility_status(
        &self,
        id: FacilityId,
        to: FacilityStatus,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<FacilityChange, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!("select {} from facilities f where f.id = $1", FacilityRecord::COLUMNS))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("facility"))?;
        let mut facility = FacilityRecord::from_row(&row)?;
        facility.status.transition(to)?;
        // The status guard makes a concurrent change of the same facility
        // update nothing instead of overwriting.
        let changed = sqlx::query("update facilities set status = $1, updated_at = $2 where id = $3 and status = $4")
            .bind(to.as_str())
            .bind(secs(now))
            .bind(id.0)
            .bind(facility.status.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict(format!("facility {id} changed concurrently; reload and retry")));
        }
        let from = facility.status;
        facility.status = to;
        let revoked = if to == FacilityStatus::Closed {
            revoke_where(
                &mut tx,
                "c.device_id in (select d.id from devices d join users u on u.id = d.user_id where u.facility_id = $1)",
                id.0,
                Reason::CessationOfOperation,
                actor,
                now,
            )
            .await?
        } else {
            Vec::new()
        };
        audit::append(
            &mut tx,
            self.backend,
            now,
            &AuditEntry {
                actor: actor.into(),
                action: format!(
                    "facility.{}",
                    match to {
                        FacilityStatus::Approved => "resume",
                        FacilityStatus::Suspended => "suspend",
                        FacilityStatus::Closed => "close",
                    }
                ),
                target: format!("facility:{id}"),
                outcome: "ok".into(),
                detail: json!({"from": from, "to": to, "revoked": revoked.len()}),
                facility: Some(id),
                user: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(FacilityChange { facility, revoked })
    }

    /// Users of a facility with their devices and certificates.
    pub async fn users_with_devices(&self, facility: FacilityId) -> Result<Vec<UserWithDevices>, StoreError> {
        let users =
            sqlx::query(&format!("select {} from users u where u.facility_id = $1 order by u.id", UserRecord::COLUMNS))
                .bind(facility.0)
                .fetch_all(&self.pool)
                .await?;
        let mut out: Vec<UserWithDevices> = users
            .iter()
            .map(|r| UserRecord::from_row(r).map(|user| UserWithDevices { user, devices: Vec::new() }))
            .collect::<Result<_, _>>()?;
        let devices = self.devices_where("u.facility_id = $1", facility.0).await?;
        for d in devices {
            if let Some(u) = out.iter_mut().find(|u| u.user.id == d.user) {
                u.devices.push(d);
            }
        }
        Ok(out)
    }

    /// One device with its certificates.
    pub async fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.devices_where("d.id = $1", id.0).await?.into_iter().next())
    }

    async fn devices_where(&self, condition: &str, arg: i64) -> Result<Vec<DeviceRecord>, StoreError> {
        let sql = format!(
            "select d.id as d_id, d.user_id as d_user, u.facility_id as d_facility, d.label as d_label, \
             d.status as d_status, d.created_at as d_created, {} \
             from devices d join users u on u.id = d.user_id left join certificates c on c.device_id = d.id \
             where {condition} order by d.id, c.created_at desc, c.serial",
            CertificateRecord::COLUMNS
        );
        let rows = sqlx::query(&sql).bind(arg).fetch_all(&self.pool).await?;
        let mut out: Vec<DeviceRecord> = Vec::new();
        for row in &rows {
            let id = DeviceId(row.try_get("d_id")?);
            if out.last().is_none_or(|d| d.id != id) {
                out.push(DeviceRecord {
                    id,
                    user: UserId(row.try_get("d_user")?),
                    facility: FacilityId(row.try_get("d_facility")?),
                    label: row.try_get("d_label")?,
                    status: row.try_get("d_status")?,
                    created_at: instant(row.try_get("d_created")?)?,
                    certificates: Vec::new(),
                });
            }
            let serial: Option<String> = row.try_get("c_serial")?;
            if serial.is_some()
                && let Some(d) = out.last_mut()
            {
                d.certificates.push(CertificateRecord::from_row(row)?);
            }
        }
        Ok(out)
    }

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

async fn decide(
    tx: &mut AnyConnection,
    id: i64,
    to: &'static str,
    by: UserId,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<ApplicationRecord, StoreError> {
    let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("application"))?;
    let app = application_from_row(&row)?;
    let changed = sqlx::query(
        "update applications set status = $1, decided_by = $2, decided_at = $3, decision_reason = $4, updated_at = $3 \
         where id = $5 and status = 'pending'",
    )
    .bind(to)
    .bind(by.0)
    .bind(secs(now))
    .bind(reason)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(connect_pki_domain::DomainError::InvalidTransition {
            from: if app.status == "approved" { "approved" } else { "rejected" },
            to,
        }
        .into());
    }
    Ok(app)
}

async fn insert_code(
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
