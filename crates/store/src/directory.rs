//! Applications, facilities, users and devices: the
//! operations of everyday administration (DESIGN §3). Each is one transaction
//! with its audit rows.

use serde_json::json;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::{
    DeviceId, FacilityId, FacilityKind, FacilityStatus, Reason, Role, Serial, UserId, UserStatus,
};

use crate::audit::{self, AuditEntry};
use crate::issuance::{NewCode, insert_code};
use crate::ops::{insert_facility, insert_user};
use crate::records::{CertificateRecord, FacilityRecord, NewFacility, NewUser, UserRecord, text};
use crate::revocation::revoke_where;
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
