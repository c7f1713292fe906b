//! What the store hands out and takes in: plain records in domain types.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use connect_pki_domain::{
    CertStatus, DeviceId, FacilityId, FacilityKind, FacilityStatus, Reason, Role, Serial, UserId, UserStatus,
};

use crate::{StoreError, instant};

/// A facility to create.
#[derive(Debug, Clone)]
pub struct NewFacility {
    pub name: String,
    pub kind: FacilityKind,
    pub address: String,
    pub department: Option<String>,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub login_id: String,
    pub display_name: String,
    pub email: String,
    pub role: Role,
}

/// A certificate to store, as signed by the CA.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub serial: Serial,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The generation of the issuing CA that signed it (1: the CA `init` made).
    pub ca_generation: i64,
}

/// The ids a device certificate is issued for, known only inside the
/// transaction that creates the device.
#[derive(Debug, Clone)]
pub struct DeviceRef {
    pub facility: FacilityId,
    pub user: UserId,
    pub device: DeviceId,
    pub login_id: String,
    /// Enrolled by a device-management system (EST): the short lifetime.
    pub managed: bool,
    /// The facility's own lifetimes, read in the same transaction.
    pub lifetimes: connect_pki_domain::lifetime::FacilityLifetimes,
}

/// Signs the certificate of a device whose row a write transaction has just
/// created (or whose certificate it renews): the device id goes into the
/// certificate, so signing happens inside the transaction, and an error
/// rolls it back.
pub trait SignDevice<E>: FnOnce(&DeviceRef) -> Result<NewCertificate, E> {}

impl<E, F: FnOnce(&DeviceRef) -> Result<NewCertificate, E>> SignDevice<E> for F {}

/// A stored facility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityRecord {
    pub id: FacilityId,
    pub name: String,
    pub kind: FacilityKind,
    pub address: String,
    pub department: Option<String>,
    pub status: FacilityStatus,
}

/// A stored user. Personal fields are `None` once the user is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub facility: FacilityId,
    pub login_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
}

impl UserRecord {
    /// Whom an action on this user (or on their devices and certificates)
    /// touches, as the policy sees it.
    pub fn target(&self) -> connect_pki_domain::Target {
        connect_pki_domain::Target { facility: self.facility, role: self.role }
    }
}

/// A stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub serial: Serial,
    pub device: DeviceId,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub status: CertStatus,
    pub reason: Option<Reason>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who holds a certificate: certificate → device → user → facility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub certificate: CertificateRecord,
    pub device: DeviceId,
    pub device_status: connect_pki_domain::DeviceStatus,
    pub user: UserRecord,
    pub facility: FacilityRecord,
}

pub(crate) fn text<T: std::str::FromStr<Err = connect_pki_domain::DomainError>>(
    row: &AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e: connect_pki_domain::DomainError| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_text<T: std::str::FromStr<Err = connect_pki_domain::DomainError>>(
    row: &AnyRow,
    col: &str,
) -> Result<Option<T>, StoreError> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| s.parse())
        .transpose()
        .map_err(|e: connect_pki_domain::DomainError| StoreError::Corrupt(format!("{col}: {e}")))
}

impl FacilityRecord {
    pub(crate) const COLUMNS: &'static str = "f.id as f_id, f.name as f_name, f.kind as f_kind, f.address as f_address, f.department as f_department, f.status as f_status";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: FacilityId(row.try_get("f_id")?),
            name: row.try_get("f_name")?,
            kind: text(row, "f_kind")?,
            address: row.try_get("f_address")?,
            department: row.try_get("f_department")?,
            status: text(row, "f_status")?,
        })
    }
}

impl UserRecord {
    pub(crate) const COLUMNS: &'static str = "u.id as u_id, u.facility_id as u_facility, u.login_id as u_login, \
         u.display_name as u_name, u.email as u_email, u.role as u_role, u.status as u_status";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: UserId(row.try_get("u_id")?),
            facility: FacilityId(row.try_get("u_facility")?),
            login_id: row.try_get("u_login")?,
            display_name: row.try_get("u_name")?,
            email: row.try_get("u_email")?,
            role: text(row, "u_role")?,
            status: text(row, "u_status")?,
        })
    }
}

impl CertificateRecord {
    pub(crate) const COLUMNS: &'static str = "c.serial as c_serial, c.device_id as c_device, c.der as c_der, \
         c.not_before as c_not_before, c.not_after as c_not_after, c.status as c_status, \
         c.revocation_reason as c_reason, c.revoked_at as c_revoked_at";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let revoked_at: Option<i64> = row.try_get("c_revoked_at")?;
        Ok(Self {
            serial: text(row, "c_serial")?,
            device: DeviceId(row.try_get("c_device")?),
            der: row.try_get("c_der")?,
            not_before: instant(row.try_get("c_not_before")?)?,
            not_after: instant(row.try_get("c_not_after")?)?,
            status: text(row, "c_status")?,
            reason: opt_text(row, "c_reason")?,
            revoked_at: revoked_at.map(instant).transpose()?,
        })
    }
}

/// One user, read on `conn` (a pool connection or a write transaction).
pub(crate) async fn user_by_id(conn: &mut AnyConnection, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    let row = sqlx::query(&format!("select {} from users u where u.id = $1", UserRecord::COLUMNS))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(UserRecord::from_row).transpose()
}

/// One facility, read on `conn`.
pub(crate) async fn facility_by_id(
    conn: &mut AnyConnection,
    id: FacilityId,
) -> Result<Option<FacilityRecord>, StoreError> {
    let row = sqlx::query(&format!("select {} from facilities f where f.id = $1", FacilityRecord::COLUMNS))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(FacilityRecord::from_row).transpose()
}

/// One certificate, read on `conn`.
pub(crate) async fn certificate_by_serial(
    conn: &mut AnyConnection,
    serial: &Serial,
) -> Result<Option<CertificateRecord>, StoreError> {
    let row = sqlx::query(&format!("select {} from certificates c where c.serial = $1", CertificateRecord::COLUMNS))
        .bind(serial.to_hex())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(CertificateRecord::from_row).transpose()
}

/// `'a', 'b'`: a list of the domain's own textual forms (never user input)
/// for an SQL `in (…)`, so that which states a statement touches is said
/// once, in the domain.
pub(crate) fn quoted<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}
