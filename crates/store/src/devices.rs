//! Devices: added with their first certificate, listed with their
//! certificates, and reported lost (every certificate revoked with
//! keyCompromise).

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, DeviceId, FacilityId, Reason, Serial, UserId};

use crate::SignDevice;
use crate::audit::AuditEntry;
use crate::certificates::{insert_certificate, revoke_where};
use crate::records::{CertificateRecord, DeviceRef, NewCertificate, UserRecord, user_by_id};
use crate::{Conflict, Store, StoreError, WriteTx, instant, secs};

/// A device with its certificates, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub user: UserId,
    pub facility: FacilityId,
    pub label: String,
    pub status: connect_pki_domain::DeviceStatus,
    pub created_at: OffsetDateTime,
    pub certificates: Vec<CertificateRecord>,
}

/// A user with their devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithDevices {
    pub user: UserRecord,
    pub devices: Vec<DeviceRecord>,
}

impl Store {
    /// Creates a device for `user` and stores the certificate `sign` returns
    /// for it, in one transaction.
    pub async fn add_device<E>(
        &self,
        user: UserId,
        label: &str,
        actor: &str,
        now: OffsetDateTime,
        sign: impl SignDevice<E>,
    ) -> Result<(DeviceRef, NewCertificate), E>
    where
        E: From<StoreError>,
    {
        self.write(async |tx| {
            let user = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
            let mut entries = Vec::new();
            let device = insert_device(tx, &user, label, false, actor, now, &mut entries).await?;
            let cert = sign(&device)?;
            insert_certificate(tx, &device, &cert, actor, now, &mut entries).await?;
            tx.audit_all(now, &entries).await?;
            Ok((device, cert))
        })
        .await
    }

    /// Reports a device lost: every valid or held certificate of it revoked
    /// with keyCompromise, the device marked lost. Repeating is safe.
    pub async fn device_lost(
        &self,
        device: DeviceId,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        self.device_out(device, DeviceOut::Lost, actor, now).await
    }

    /// Takes a device out of use: lost (keyCompromise) or retired — wiped
    /// or handed back, as its device-management system reports it
    /// (cessationOfOperation). Every valid or held certificate of it is
    /// revoked and the device marked; repeating is safe.
    pub async fn device_out(
        &self,
        device: DeviceId,
        out: DeviceOut,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        self.device_out_once(device, out, actor, now, None).await
    }

    /// [`Self::device_out`] as a signed webhook asked for it: its signature
    /// is recorded in the same transaction, and one already seen within the
    /// window refuses the whole call ([`Conflict::Replayed`]).
    pub async fn device_out_once(
        &self,
        device: DeviceId,
        out: DeviceOut,
        actor: &str,
        now: OffsetDateTime,
        once: Option<&Once>,
    ) -> Result<Vec<Serial>, StoreError> {
        // A lost device stays lost: a later "retired" does not hide it.
        let (status, from, reason, action) = match out {
            DeviceOut::Lost => ("lost", "<> 'lost'", Reason::KeyCompromise, AuditAction::DeviceLost),
            DeviceOut::Retired => ("retired", "= 'active'", Reason::CessationOfOperation, AuditAction::DeviceRetire),
        };
        self.write(async |tx| {
            if let Some(once) = once {
                first_time(tx, once, now).await?;
            }
            let row = sqlx::query(
                "select d.status, u.id as u_id, u.facility_id from devices d join users u on u.id = d.user_id \
                 where d.id = $1",
            )
            .bind(device.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound("device"))?;
            let (user, facility): (i64, i64) = (row.try_get("u_id")?, row.try_get("facility_id")?);
            let marked = tx
                .update_at(
                    &format!("update devices set status = '{status}', updated_at = $1 where id = $2 and status {from}"),
                    now,
                    device.0,
                )
                .await?;
            let revoked = revoke_where(tx, "c.device_id = $1", device.0, reason, actor, now).await?;
            if marked > 0 || !revoked.is_empty() {
                let entry = AuditEntry::ok(
                    actor,
                    action,
                    format!("device:{device}"),
                    json!({"revoked": revoked}),
                    Some(FacilityId(facility)),
                    Some(UserId(user)),
                );
                tx.audit(now, &entry).await?;
            }
            Ok(revoked)
        })
        .await
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

    /// People of any facility whose name, login ID or device label contains
    /// `q` (case-insensitive; at most `limit`), with their devices: 行政管理課
    /// finding the caller's device during a night-time call. Two queries,
    /// however many match.
    pub async fn search_people(&self, q: &str, limit: i64) -> Result<Vec<UserWithDevices>, StoreError> {
        let pattern = format!("%{}%", q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let matching = format!(
            "select u.id from users u where u.status in ('invited', 'active') and (lower(u.display_name) like $1 escape '\\' \
             or lower(u.login_id) like $1 escape '\\' or exists (select 1 from devices d where d.user_id = u.id \
             and lower(d.label) like $1 escape '\\')) order by u.id limit {}",
            limit.clamp(1, 500)
        );
        let sql = format!("select {} from users u where u.id in ({matching}) order by u.id", UserRecord::COLUMNS);
        let users = sqlx::query(&sql).bind(&pattern).fetch_all(&self.pool).await?;
        let mut out: Vec<UserWithDevices> = users
            .iter()
            .map(|r| UserRecord::from_row(r).map(|user| UserWithDevices { user, devices: Vec::new() }))
            .collect::<Result<_, _>>()?;
        for d in self.devices_where(&format!("u.id in ({matching})"), pattern).await? {
            if let Some(u) = out.iter_mut().find(|u| u.user.id == d.user) {
                u.devices.push(d);
            }
        }
        Ok(out)
    }

    /// One user's devices with their certificates.
    pub async fn devices_of(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.devices_where("d.user_id = $1", user.0).await
    }

    /// One device with its certificates.
    pub async fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.devices_where("d.id = $1", id.0).await?.into_iter().next())
    }

    pub(crate) async fn devices_where<T>(&self, condition: &str, arg: T) -> Result<Vec<DeviceRecord>, StoreError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
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
                    status: crate::records::text(row, "d_status")?,
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

/// Inserts a device; its audit entry is pushed onto `audit` for the caller to
/// append with the rest of the transaction's entries.
pub(crate) async fn insert_device(
    tx: &mut WriteTx,
    user: &UserRecord,
    label: &str,
    managed: bool,
    actor: &str,
    now: OffsetDateTime,
    audit: &mut Vec<AuditEntry>,
) -> Result<DeviceRef, StoreError> {
    let id: i64 = sqlx::query(
        "insert into devices (user_id, label, status, created_at, updated_at, managed) \
         values ($1, $2, 'active', $3, $3, $4) returning id",
    )
    .bind(user.id.0)
    .bind(label)
    .bind(secs(now))
    .bind(i64::from(managed))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    audit.push(AuditEntry::ok(
        actor,
        AuditAction::DeviceCreate,
        format!("device:{id}"),
        // The label ("花子のiPhone") is personal data, erased with the user;
        // the chain keeps only ids.
        json!({}),
        Some(user.facility),
        Some(user.id),
    ));
    Ok(DeviceRef {
        facility: user.facility,
        user: user.id,
        device: DeviceId(id),
        login_id: user.login_id.clone().unwrap_or_default(),
        managed,
        lifetimes: crate::lifetimes::of_facility(tx, user.facility).await?,
    })
}

/// How a device goes out of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOut {
    /// Lost or stolen: its key may be in someone's hands.
    Lost,
    /// Wiped, retired or handed back: its key is gone with it.
    Retired,
}

/// A signed request that must be carried out at most once within `window`.
#[derive(Debug, Clone)]
pub struct Once {
    pub sender: UserId,
    pub signature: String,
    pub window: time::Duration,
}

/// Records `once`'s signature, forgetting those older than the window;
/// refuses one already recorded.
async fn first_time(tx: &mut WriteTx, once: &Once, now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query("delete from mdm_webhook_replays where seen_at < $1")
        .bind(secs(now - once.window))
        .execute(&mut **tx)
        .await?;
    let added = sqlx::query(
        "insert into mdm_webhook_replays (sender_id, signature, seen_at) values ($1, $2, $3) \
         on conflict (sender_id, signature) do nothing",
    )
    .bind(once.sender.0)
    .bind(&once.signature)
    .bind(secs(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if added == 0 {
        return Err(Conflict::Replayed.into());
    }
    Ok(())
}
