//! Atomic operations. Each public method is one transaction that carries its
//! own audit records: it either happens whole or not at all.

use serde_json::json;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::{DeviceId, FacilityId, FacilityStatus, Serial, UserId, UserStatus};

use crate::audit::{self, AuditEntry};
use crate::records::{
    CertificateRecord, DeviceRef, FacilityRecord, Identity, NewCertificate, NewFacility, NewUser, UserRecord,
};
use crate::{Store, StoreError, WriteTx, secs};

/// What `init` creates besides the CA: the city's own facility and its first
/// `admin_division` user.
#[derive(Debug, Clone)]
pub struct BootstrapInput {
    pub facility: NewFacility,
    pub admin: NewUser,
    pub device_label: String,
}

impl Store {
    /// Creates the city facility, the bootstrap admin, their device and its
    /// certificate, in one transaction. `sign` is called with the new ids and
    /// returns the certificate to store. Refuses a database that already has
    /// users.
    pub async fn bootstrap<E, F>(
        &self,
        input: &BootstrapInput,
        now: OffsetDateTime,
        sign: F,
    ) -> Result<(FacilityRecord, UserRecord, DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
        F: FnOnce(&DeviceRef) -> Result<NewCertificate, E>,
    {
        let mut tx = self.begin_write().await.map_err(E::from)?;
        let users: i64 = sqlx::query("select count(*) as n from users")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(|e| E::from(e.into()))?;
        if users > 0 {
            return Err(E::from(StoreError::AlreadyInitialised));
        }
        let actor = "system:init";
        let facility = insert_facility(&mut tx, self, &input.facility, FacilityStatus::Approved, actor, now).await?;
        let user = insert_user(&mut tx, self, facility.id, &input.admin, UserStatus::Active, actor, now).await?;
        let mut entries = Vec::new();
        let device = insert_device(&mut tx, &user, &input.device_label, actor, now, &mut entries).await?;
        let cert = sign(&device)?;
        insert_certificate(&mut tx, &device, &cert, actor, now, &mut entries).await?;
        audit::append_all(&mut tx, self.backend, now, &entries).await?;
        tx.commit().await.map_err(|e| E::from(e.into()))?;
        Ok((facility, user, device, cert))
    }

    /// Creates an approved facility.
    pub async fn create_facility(
        &self,
        new: &NewFacility,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<FacilityRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let f = insert_facility(&mut tx, self, new, FacilityStatus::Approved, actor, now).await?;
        tx.commit().await?;
        Ok(f)
    }

    /// Registers a user in `facility`.
    pub async fn create_user(
        &self,
        facility: FacilityId,
        new: &NewUser,
        status: UserStatus,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let u = insert_user(&mut tx, self, facility, new, status, actor, now).await?;
        tx.commit().await?;
        Ok(u)
    }

    /// Creates a device for `user` and stores the certificate `sign` returns
    /// for it, in one transaction.
    pub async fn add_device<E, F>(
        &self,
        user: UserId,
        label: &str,
        actor: &str,
        now: OffsetDateTime,
        sign: F,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
        F: FnOnce(&DeviceRef) -> Result<NewCertificate, E>,
    {
        let mut tx = self.begin_write().await.map_err(E::from)?;
        let user = user_by_id(&mut tx, user).await?.ok_or(StoreError::NotFound("user")).map_err(E::from)?;
        let mut entries = Vec::new();
        let device = insert_device(&mut tx, &user, label, actor, now, &mut entries).await.map_err(E::from)?;
        let cert = sign(&device)?;
        insert_certificate(&mut tx, &device, &cert, actor, now, &mut entries).await.map_err(E::from)?;
        audit::append_all(&mut tx, self.backend, now, &entries).await.map_err(E::from)?;
        tx.commit().await.map_err(|e| E::from(e.into()))?;
        Ok((device, cert))
    }

    /// One facility.
    pub async fn facility(&self, id: FacilityId) -> Result<Option<FacilityRecord>, StoreError> {
        let row = sqlx::query(&format!("select {} from facilities f where f.id = $1", FacilityRecord::COLUMNS))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(FacilityRecord::from_row).transpose()
    }

    /// One user.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        user_by_id(&mut conn, id).await
    }

    /// One certificate by serial.
    pub async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let row =
            sqlx::query(&format!("select {} from certificates c where c.serial = $1", CertificateRecord::COLUMNS))
                .bind(serial.to_hex())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(CertificateRecord::from_row).transpose()
    }

    /// The holder of a certificate: device, user and facility.
    pub async fn identity_by_serial(&self, serial: &Serial) -> Result<Option<Identity>, StoreError> {
        let sql = format!(
            "select {}, {}, {}, d.id as d_id, d.status as d_status \
             from certificates c join devices d on d.id = c.device_id \
             join users u on u.id = d.user_id join facilities f on f.id = u.facility_id \
             where c.serial = $1",
            CertificateRecord::COLUMNS,
            UserRecord::COLUMNS,
            FacilityRecord::COLUMNS
        );
        let row = sqlx::query(&sql).bind(serial.to_hex()).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Identity {
            certificate: CertificateRecord::from_row(&row)?,
            device: DeviceId(row.try_get("d_id")?),
            device_status: row.try_get("d_status")?,
            user: UserRecord::from_row(&row)?,
            facility: FacilityRecord::from_row(&row)?,
        }))
    }
}

pub(crate) async fn user_by_id(conn: &mut AnyConnection, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    let row = sqlx::query(&format!("select {} from users u where u.id = $1", UserRecord::COLUMNS))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(UserRecord::from_row).transpose()
}

pub(crate) async fn insert_facility(
    tx: &mut AnyConnection,
    store: &Store,
    new: &NewFacility,
    status: FacilityStatus,
    actor: &str,
    now: OffsetDateTime,
) -> Result<FacilityRecord, StoreError> {
    let id: i64 = sqlx::query(
        "insert into facilities (name, kind, address, department, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $6) returning id",
    )
    .bind(&new.name)
    .bind(new.kind.as_str())
    .bind(&new.address)
    .bind(new.department.as_deref())
    .bind(status.as_str())
    .bind(secs(now))
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    let record = FacilityRecord {
        id: FacilityId(id),
        name: new.name.clone(),
        kind: new.kind,
        address: new.address.clone(),
        department: new.department.clone(),
        status,
    };
    let entry = AuditEntry::ok(
        actor,
        "facility.create",
        format!("facility:{id}"),
        json!({"name": new.name, "kind": new.kind, "status": status}),
        Some(record.id),
        None,
    );
    audit::append(tx, store.backend, now, &entry).await?;
    Ok(record)
}

pub(crate) async fn insert_user(
    tx: &mut AnyConnection,
    store: &Store,
    facility: FacilityId,
    new: &NewUser,
    status: UserStatus,
    actor: &str,
    now: OffsetDateTime,
) -> Result<UserRecord, StoreError> {
    let id: i64 = sqlx::query(
        "insert into users (facility_id, login_id, display_name, email, role, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning id",
    )
    .bind(facility.0)
    .bind(&new.login_id)
    .bind(&new.display_name)
    .bind(&new.email)
    .bind(new.role.as_str())
    .bind(status.as_str())
    .bind(secs(now))
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("login ID {:?} is already taken", new.login_id)),
        other => other,
    })?
    .try_get("id")?;
    let record = UserRecord {
        id: UserId(id),
        facility,
        login_id: Some(new.login_id.clone()),
        display_name: Some(new.display_name.clone()),
        email: Some(new.email.clone()),
        role: new.role,
        status,
    };
    let entry = AuditEntry::ok(
        actor,
        "user.create",
        format!("user:{id}"),
        json!({"login_id": new.login_id, "role": new.role, "status": status}),
        Some(facility),
        Some(record.id),
    );
    audit::append(tx, store.backend, now, &entry).await?;
    Ok(record)
}

/// Inserts a device; its audit entry is pushed onto `audit` for the caller to
/// append with the rest of the transaction's entries.
pub(crate) async fn insert_device(
    tx: &mut AnyConnection,
    user: &UserRecord,
    label: &str,
    actor: &str,
    now: OffsetDateTime,
    audit: &mut Vec<AuditEntry>,
) -> Result<DeviceRef, StoreError> {
    let id: i64 = sqlx::query(
        "insert into devices (user_id, label, status, created_at, updated_at) values ($1, $2, 'active', $3, $3) returning id",
    )
    .bind(user.id.0)
    .bind(label)
    .bind(secs(now))
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    audit.push(AuditEntry::ok(
        actor,
        "device.create",
        format!("device:{id}"),
        json!({"label": label}),
        Some(user.facility),
        Some(user.id),
    ));
    Ok(DeviceRef {
        facility: user.facility,
        user: user.id,
        device: DeviceId(id),
        login_id: user.login_id.clone().unwrap_or_default(),
    })
}

/// Inserts a certificate with its feed row; its audit entry is pushed onto `audit`.
pub(crate) async fn insert_certificate(
    tx: &mut WriteTx,
    device: &DeviceRef,
    cert: &NewCertificate,
    actor: &str,
    now: OffsetDateTime,
    audit: &mut Vec<AuditEntry>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into certificates (serial, device_id, der, not_before, not_after, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, 'valid', $6, $6)",
    )
    .bind(cert.serial.to_hex())
    .bind(device.device.0)
    .bind(&cert.der)
    .bind(secs(cert.not_before))
    .bind(secs(cert.not_after))
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    crate::status::insert_events(tx, &[(cert.serial.clone(), connect_pki_domain::CertStatus::Valid, None)], now)
        .await?;
    audit.push(AuditEntry::ok(
        actor,
        "certificate.issue",
        format!("certificate:{}", cert.serial),
        json!({"device_id": device.device, "not_after": secs(cert.not_after)}),
        Some(device.facility),
        Some(device.user),
    ));
    Ok(())
}

impl Store {
    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }
}
