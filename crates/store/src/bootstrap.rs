//! `connect-pki init`'s part in the database: the city's own facility, its
//! first `admin_division` user, their device and its certificate.

use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{FacilityStatus, UserStatus};

use crate::SignDevice;
use crate::certificates::insert_certificate;
use crate::devices::insert_device;
use crate::facilities::insert_facility;
use crate::records::{DeviceRef, FacilityRecord, NewCertificate, NewFacility, NewUser, UserRecord};
use crate::users::insert_user;
use crate::{Store, StoreError};

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
    pub async fn bootstrap<E>(
        &self,
        input: &BootstrapInput,
        now: OffsetDateTime,
        sign: impl SignDevice<E>,
    ) -> Result<(FacilityRecord, UserRecord, DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
    {
        self.write(async |tx| {
            let users: i64 = sqlx::query("select count(*) as n from users")
                .fetch_one(&mut **tx)
                .await
                .and_then(|r| r.try_get("n"))
                .map_err(StoreError::from)?;
            if users > 0 {
                return Err(E::from(StoreError::AlreadyInitialised));
            }
            let actor = "system:init";
            let facility = insert_facility(tx, &input.facility, FacilityStatus::Approved, actor, now).await?;
            let user = insert_user(tx, facility.id, &input.admin, UserStatus::Active, actor, now).await?;
            let mut entries = Vec::new();
            let device = insert_device(tx, &user, &input.device_label, false, actor, now, &mut entries).await?;
            let cert = sign(&device)?;
            insert_certificate(tx, &device, &cert, actor, now, &mut entries).await?;
            tx.audit_all(now, &entries).await?;
            Ok((facility, user, device, cert))
        })
        .await
    }
}
