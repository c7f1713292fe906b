//! Certificates: issue (`insert_certificate`), status changes through the
//! one primitive (`status::apply`), reads by serial and holder, the change
//! feed every instance follows and CRL numbering.
//!
//! Feed ids are taken under the writer lock, held to commit, so ids become
//! visible in increasing order and a follower that has seen id N has seen
//! everything before it.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::{BulkChange, Change, in_force, revoke_instead};
use connect_pki_domain::hold::Lifter;
use connect_pki_domain::{AuditAction, CertStatus, DeviceId, Reason, Serial};

use crate::audit::AuditEntry;
use crate::error::Conflict;
use crate::records::{
    CertificateRecord, DeviceRef, FacilityRecord, Identity, NewCertificate, UserRecord, certificate_by_serial,
    opt_text, quoted, text,
};
use crate::status::{self, Request};
use crate::{Backend, Store, StoreError, WriteTx, instant, secs};

/// The feed's head as one read sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedHead {
    /// The newest feed position committed.
    pub last: i64,
    /// The feed position the newest CRL number was given out at: never past
    /// `last` unless the database lost feed rows it had.
    pub crl_position: i64,
    /// Which database this is: made at its creation (and, on PostgreSQL, the
    /// object ids of the database and the feed table). It changes when
    /// another database, or a dump restored into a new one, is put under a
    /// running instance.
    pub incarnation: String,
}

impl FeedHead {
    /// Whether this head shows a database that went back behind an instance
    /// that applied the feed up to `applied` on the database `incarnation`.
    pub fn went_back_from(&self, applied: i64, incarnation: &str) -> bool {
        self.last < applied || self.crl_position > self.last || self.incarnation != incarnation
    }
}

/// One change of a certificate's status, as the feed carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEvent {
    pub id: i64,
    pub serial: Serial,
    pub status: CertStatus,
    pub reason: Option<Reason>,
    pub at: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The generation of the issuing CA that signed the certificate.
    pub ca_generation: i64,
}

/// The result of a status change on one certificate.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub certificate: CertificateRecord,
    /// False when the certificate already was in the requested state.
    pub changed: bool,
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

/// Applies `req` to every certificate matching `condition` (as for
/// [`serials_where`]); returns the serials that changed.
pub(crate) async fn change_where(
    tx: &mut WriteTx,
    condition: &str,
    arg: i64,
    req: &Request<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let serials = serials_where(tx, condition, arg).await?;
    Ok(status::apply(tx, &serials, req, now).await?.into_iter().map(|t| t.serial).collect())
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
    let req = Request::new(BulkChange::any(Change::Revoke(reason)), actor, json!({}));
    change_where(tx, condition, arg, &req, now).await
}

/// The certificates of `device` other than `except` that are in force, newest first.
async fn in_force_on_device(tx: &mut WriteTx, device: DeviceId, except: &Serial) -> Result<Vec<Serial>, StoreError> {
    let states = CertStatus::ALL.iter().filter(|s| in_force(**s)).map(|s| s.as_str());
    let sql = format!(
        "select c.serial from certificates c where c.device_id = $1 and c.serial <> $2 and c.status in ({}) \
         order by c.created_at desc, c.serial desc",
        quoted(states)
    );
    let rows = sqlx::query(&sql).bind(device.0).bind(except.to_hex()).fetch_all(&mut **tx).await?;
    rows.iter().map(|r| text(r, "serial")).collect()
}

/// The holder of a certificate, in one query.
async fn identity_of(conn: &mut sqlx::AnyConnection, serial: &Serial) -> Result<Option<Identity>, StoreError> {
    let sql = format!(
        "select {}, {}, {}, d.id as d_id, d.status as d_status \
         from certificates c join devices d on d.id = c.device_id \
         join users u on u.id = d.user_id join facilities f on f.id = u.facility_id \
         where c.serial = $1",
        CertificateRecord::COLUMNS,
        UserRecord::COLUMNS,
        FacilityRecord::COLUMNS
    );
    let row = sqlx::query(&sql).bind(serial.to_hex()).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Identity {
        certificate: CertificateRecord::from_row(&row)?,
        device: DeviceId(row.try_get("d_id")?),
        device_status: crate::records::text(&row, "d_status")?,
        user: UserRecord::from_row(&row)?,
        facility: FacilityRecord::from_row(&row)?,
    }))
}

impl Store {
    /// Revokes, holds or releases one certificate, whoever holds it (the
    /// CLI, the workers, tests): [`Self::change_certificate_if`] unchecked.
    pub async fn change_certificate(
        &self,
        serial: &Serial,
        change: Change,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<StatusChange, StoreError> {
        self.change_certificate_if(serial, change, actor, Lifter::Direct, now, |_| Ok(())).await
    }

    /// Revokes, holds or releases one certificate, if `allowed` lets the
    /// caller act on its holder (checked in the transaction, on the holder
    /// as it is then). The certificate is read once: that read seeds the
    /// guarded update, and the answer is built from it and the change. A
    /// revoke of a superseded certificate whose device has a newer one in
    /// force is refused, naming it (`domain::certificate::revoke_instead`).
    /// `on_behalf` says who holds or releases (`domain::hold`: a hold of
    /// 行政管理課 is lifted only by it).
    #[allow(clippy::too_many_arguments)]
    pub async fn change_certificate_if<E>(
        &self,
        serial: &Serial,
        change: Change,
        actor: &str,
        on_behalf: Lifter,
        now: OffsetDateTime,
        allowed: impl FnOnce(&Identity) -> Result<(), E>,
    ) -> Result<StatusChange, E>
    where
        E: From<StoreError>,
    {
        self.write(async |tx| {
            let holder = identity_of(tx, serial).await?.ok_or(StoreError::NotFound("certificate"))?;
            allowed(&holder)?;
            let mut certificate = holder.certificate;
            if certificate.status == CertStatus::Superseded {
                let in_force = in_force_on_device(tx, certificate.device, serial).await?;
                if let Some(newer) = revoke_instead(certificate.status, change, &in_force) {
                    return Err(StoreError::from(Conflict::SupersededBy {
                        serial: serial.clone(),
                        current: newer.clone(),
                    })
                    .into());
                }
            }
            let req = Request::new(BulkChange::any(change), actor, json!({})).lifted_by(on_behalf);
            let known = status::Known {
                status: certificate.status,
                reason: certificate.reason,
                device: certificate.device.0,
                user: holder.user.id.0,
                facility: holder.facility.id.0,
            };
            let changed = status::apply_known(tx, serial, known, &req, now).await?;
            if let Some(t) = changed.first() {
                certificate.status = t.to;
                certificate.reason = t.reason;
                // As the guarded update writes it: whole seconds, none once valid again.
                certificate.revoked_at = (t.to != CertStatus::Valid).then(|| crate::instant(secs(now))).transpose()?;
            }
            Ok(StatusChange { certificate, changed: !changed.is_empty() })
        })
        .await
    }

    /// One certificate by serial.
    pub async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        certificate_by_serial(&mut conn, serial).await
    }

    /// The holder of a certificate: device, user and facility.
    pub async fn identity_by_serial(&self, serial: &Serial) -> Result<Option<Identity>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        identity_of(&mut conn, serial).await
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
        // With the revocations kept from published CRLs of certificates the
        // database never saw: an index without them would un-revoke them.
        let rows = sqlx::query(
            "select serial, status, revocation_reason, coalesce(revoked_at, 0) as at, not_after, ca_generation \
             from certificates \
             union all \
             select r.serial, r.status, r.reason, r.revoked_at, r.not_after, r.ca_generation \
             from recovered_revocations r where not exists (select 1 from certificates c where c.serial = r.serial)",
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
                    ca_generation: r.try_get("ca_generation")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((last, entries))
    }

    /// Feed rows after `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<CertEvent>, StoreError> {
        let rows = sqlx::query(
            "select e.id, e.serial, e.status, e.reason, e.at, c.not_after, c.ca_generation from cert_events e \
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
                    ca_generation: r.try_get("ca_generation")?,
                })
            })
            .collect()
    }

    /// The newest feed position committed, with what says whether the
    /// database is still the one it was (see [`FeedHead`]). A caller that
    /// reads it after its own commit gets a position at or past that commit:
    /// every writer holds the writer lock to commit, so feed ids become
    /// visible in order.
    pub async fn feed_head(&self) -> Result<FeedHead, StoreError> {
        let identity = match self.backend {
            Backend::Postgres => {
                "concat((select id from database_incarnation limit 1), ':', \
                 (select oid from pg_database where datname = current_database()), ':', 'cert_events'::regclass::oid)"
            }
            Backend::Sqlite => "(select id from database_incarnation limit 1)",
        };
        let row = sqlx::query(&format!(
            "select coalesce((select max(id) from cert_events), 0) as last, \
             coalesce((select position from crl_state where id = 1), 0) as crl_position, {identity} as incarnation"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(FeedHead {
            last: row.try_get("last")?,
            crl_position: row.try_get("crl_position")?,
            incarnation: row.try_get::<Option<String>, _>("incarnation")?.unwrap_or_default(),
        })
    }

    /// Records each issuing CA generation with its certificate's SHA-256 the
    /// first time it is served; returns the generations for which another
    /// CA is recorded already (generation, the one recorded) — two hosts that
    /// each made their own.
    pub async fn record_issuing_cas(
        &self,
        cas: &[(i64, String)],
        now: OffsetDateTime,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.write(async |tx| {
            let mut differ = Vec::new();
            for (generation, sha256) in cas {
                sqlx::query(
                    "insert into issuing_cas (generation, sha256, recorded_at) values ($1, $2, $3) \
                     on conflict (generation) do nothing",
                )
                .bind(generation)
                .bind(sha256)
                .bind(secs(now))
                .execute(&mut **tx)
                .await?;
                let recorded: String = sqlx::query("select sha256 from issuing_cas where generation = $1")
                    .bind(generation)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("sha256")?;
                if recorded != *sha256 {
                    differ.push((*generation, recorded));
                }
            }
            Ok(differ)
        })
        .await
    }

    /// The newest issuing CA generation an instance recorded (0: none yet).
    pub async fn newest_issuing_generation(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("select coalesce(max(generation), 0) as newest from issuing_cas")
            .fetch_one(&self.pool)
            .await?
            .try_get("newest")?)
    }

    /// Raises the CRL number to at least `number` (one a CRL already served
    /// carries), so the next CRL is numbered above it; and sets the position
    /// it was given at back to `position` (an index just reloaded) where the
    /// database lost the feed rows up to it, so the next CRL can be numbered.
    pub async fn raise_crl_number(&self, number: i64, position: i64) -> Result<(), StoreError> {
        self.write(async |tx| {
            sqlx::query(
                "update crl_state set crl_number = case when crl_number < $1 then $1 else crl_number end, \
                 position = case when position > $2 then $2 else position end where id = 1",
            )
            .bind(number)
            .bind(position)
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// The next CRL number, for a CRL built from an index that reflects the
    /// feed up to `position`. Numbers are persisted before use, so they only
    /// ever increase, across restarts and instances; and a number is given
    /// only to an index at least as new as the one that got the previous
    /// number, so that a CRL with a higher number never lacks a revocation a
    /// lower-numbered one listed. An instance that is behind is told the
    /// position to catch up to first (`Err(position)`).
    ///
    /// On SQLite (one instance) the number is committed without waiting for
    /// the disk: a power cut may take back the last number given, never a
    /// revocation (those commits are synced, and the WAL keeps order), and at
    /// start the number is raised above the CRL kept (synced) in the data
    /// directory before anything is numbered (`reapply_published`), so no
    /// number is ever given to two different CRLs. That is one sync fewer
    /// before a revoke call answers.
    pub async fn next_crl_number(&self, position: i64) -> Result<Result<i64, i64>, StoreError> {
        self.write_unsynced(async |tx| {
            let row = sqlx::query(
                "update crl_state set crl_number = crl_number + 1, position = $1 where id = 1 and position <= $1 \
                 returning crl_number",
            )
            .bind(position)
            .fetch_optional(&mut **tx)
            .await?;
            Ok(match row {
                Some(row) => Ok(row.try_get("crl_number")?),
                None => Err(sqlx::query("select position from crl_state where id = 1")
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("position")?),
            })
        })
        .await
    }
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
        "insert into certificates (serial, device_id, der, not_before, not_after, status, created_at, updated_at, \
         ca_generation) values ($1, $2, $3, $4, $5, 'valid', $6, $6, $7)",
    )
    .bind(cert.serial.to_hex())
    .bind(device.device.0)
    .bind(&cert.der)
    .bind(secs(cert.not_before))
    .bind(secs(cert.not_after))
    .bind(secs(now))
    .bind(cert.ca_generation)
    .execute(&mut **tx)
    .await?;
    status::insert_events(tx, &[(cert.serial.clone(), CertStatus::Valid, None)], now).await?;
    audit.push(AuditEntry::ok(
        actor,
        AuditAction::CertificateIssue,
        format!("certificate:{}", cert.serial),
        json!({"device_id": device.device, "not_after": secs(cert.not_after)}),
        Some(device.facility),
        Some(device.user),
    ));
    Ok(())
}
