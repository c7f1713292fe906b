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
        self.change_certificate_if(serial, change, actor, now, |_| Ok(())).await
    }

    /// Revokes, holds or releases one certificate, if `allowed` lets the
    /// caller act on its holder (checked in the transaction, on the holder
    /// as it is then). The certificate is read once: that read seeds the
    /// guarded update, and the answer is built from it and the change. A
    /// revoke of a superseded certificate whose device has a newer one in
    /// force is refused, naming it (`domain::certificate::revoke_instead`).
    pub async fn change_certificate_if<E>(
        &self,
        serial: &Serial,
        change: Change,
        actor: &str,
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
            let req = Request::new(BulkChange::any(change), actor, json!({}));
            let known = status::Known {
                status: certificate.status,
                reason: certificate.reason,
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
    pub async fn next_crl_number(&self, position: i64) -> Result<Result<i64, i64>, StoreError> {
        self.write(async |tx| {
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

/// A certificate a CRL we published lists, as that CRL says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub serial: Serial,
    pub reason: Reason,
    pub revoked_at: OffsetDateTime,
    /// The generation of the issuing CA whose CRL listed it.
    pub ca_generation: i64,
    /// The latest it can expire (its issuing CA's end), for one the
    /// database does not know and so cannot say.
    pub expires_by: OffsetDateTime,
}

/// What [`Store::reapply_published`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reapplied {
    /// Certificates whose status moved back to what the CRL said.
    pub changed: Vec<Serial>,
    /// Serials the CRL lists that this database has never seen (issued
    /// after the backup it was restored from): each is now a row of
    /// `recovered_revocations`, revoked (or held) for good.
    pub unknown: Vec<Serial>,
    /// The CRL number before it was raised to the published one, if it was lower.
    pub raised_from: Option<i64>,
}

impl Store {
    /// Brings a database restored from a backup up to the newest CRL this
    /// instance published (`number`, listing `listed`): every revocation and
    /// hold on it is applied again where the database has the certificate in
    /// a state the CRL overrides (`domain::certificate::reapply_listed`), and
    /// the CRL number is raised to `number` so the next CRL is numbered above
    /// it. One transaction, with a summary audit record besides the changes' own.
    ///
    /// Only a database whose CRL number is below `number` is behind the CRL:
    /// numbers are taken from the database before a CRL is signed, so a
    /// database that has given out `number` has seen everything that CRL
    /// lists, and may since have lifted a hold on it (a crash before the
    /// next CRL was kept, or an instance whose kept CRL is old); that is
    /// left alone.
    pub async fn reapply_published(
        &self,
        number: i64,
        listed: &[Listed],
        now: OffsetDateTime,
    ) -> Result<Reapplied, StoreError> {
        self.write(async |tx| {
            let before: i64 = sqlx::query("select crl_number from crl_state where id = 1")
                .fetch_one(&mut **tx)
                .await?
                .try_get("crl_number")?;
            if before >= number {
                return Ok(Reapplied::default());
            }
            let detail = json!({"because": "published CRL", "crl_number": number});
            let pairs: Vec<(Serial, Reason)> = listed.iter().map(|l| (l.serial.clone(), l.reason)).collect();
            let (changed, unknown) = apply_listed(tx, &pairs, "system:restore", &detail, now).await?;
            for l in listed.iter().filter(|l| unknown.contains(&l.serial)) {
                record_recovered(tx, l, number, now).await?;
            }
            sqlx::query("update crl_state set crl_number = $1 where id = 1").bind(number).execute(&mut **tx).await?;
            {
                let hex = |v: &[Serial]| v.iter().map(Serial::to_hex).collect::<Vec<_>>();
                let entry = AuditEntry {
                    actor: "system:restore".into(),
                    action: AuditAction::CrlReapply,
                    target: format!("crl:{number}"),
                    outcome: "ok".into(),
                    detail: json!({
                        "crl_number": number,
                        "crl_number_before": before,
                        "reapplied": hex(&changed),
                        "unknown": hex(&unknown),
                    }),
                    facility: None,
                    user: None,
                };
                tx.audit(now, &entry).await?;
            }
            Ok(Reapplied { changed, unknown, raised_from: Some(before) })
        })
        .await
    }
}

impl Store {
    /// Writes back revocations the database lost (a restore, a failover to a
    /// replica that missed the last commits, a hand edit) while an instance
    /// still enforces them: each of `lost` that the database holds in force
    /// is revoked again with its reason (superseded again if it was
    /// superseded), through the status primitive, so the feed, the audit log
    /// and every instance see it. Returns the certificates changed.
    pub async fn write_back_revocations(
        &self,
        lost: &[(Serial, Reason)],
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        let lost: Vec<(Serial, Reason)> = lost.iter().filter(|(_, r)| *r != Reason::CertificateHold).cloned().collect();
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        let detail = json!({"because": "the database had lost this revocation; written back"});
        self.write(async |tx| Ok(apply_listed(tx, &lost, actor, &detail, now).await?.0)).await
    }

    /// Keeps revocations whose certificates the database no longer has at
    /// all (it went back to before they were issued) as rows of
    /// `recovered_revocations`, with an audit record naming them.
    pub async fn recover_revocations(
        &self,
        lost: &[Listed],
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if lost.is_empty() {
            return Ok(());
        }
        self.write(async |tx| {
            for l in lost {
                record_recovered(tx, l, 0, now).await?;
            }
            let entry = AuditEntry {
                actor: actor.into(),
                action: AuditAction::RevocationsWriteBack,
                target: "recovered_revocations".into(),
                outcome: "ok".into(),
                detail: json!({
                    "because": "the database went back to before these certificates were issued",
                    "recovered": lost.iter().map(|l| l.serial.to_hex()).collect::<Vec<_>>(),
                }),
                facility: None,
                user: None,
            };
            tx.audit(now, &entry).await?;
            Ok(())
        })
        .await
    }
}

/// Applies each listed status (`domain::certificate::reapply_listed`) to the
/// certificates the database holds; returns (changed, unknown).
async fn apply_listed(
    tx: &mut WriteTx,
    listed: &[(Serial, Reason)],
    actor: &str,
    detail: &serde_json::Value,
    now: OffsetDateTime,
) -> Result<(Vec<Serial>, Vec<Serial>), StoreError> {
    let serials: Vec<Serial> = listed.iter().map(|(s, _)| s.clone()).collect();
    let known = known_serials(tx, &serials).await?;
    let mut groups: Vec<(BulkChange, Vec<Serial>)> = Vec::new();
    let mut unknown = Vec::new();
    for (serial, reason) in listed {
        if !known.contains(serial) {
            unknown.push(serial.clone());
            continue;
        }
        let step = connect_pki_domain::certificate::reapply_listed(*reason);
        match groups.iter_mut().find(|(s, _)| *s == step) {
            Some((_, group)) => group.push(serial.clone()),
            None => groups.push((step, vec![serial.clone()])),
        }
    }
    let mut changed = Vec::new();
    for (step, group) in groups {
        let req = Request::new(step, actor, detail.clone());
        changed.extend(status::apply(tx, &group, &req, now).await?.into_iter().map(|t| t.serial));
    }
    Ok((changed, unknown))
}

/// Keeps the revocation of a certificate the database never saw, as the
/// published CRL `crl_number` listed it.
async fn record_recovered(
    tx: &mut WriteTx,
    l: &Listed,
    crl_number: i64,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let status = match l.reason {
        Reason::CertificateHold => CertStatus::OnHold,
        Reason::Superseded => CertStatus::Superseded,
        _ => CertStatus::Revoked,
    };
    sqlx::query(
        "insert into recovered_revocations \
         (serial, ca_generation, status, reason, revoked_at, not_after, crl_number, recorded_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (serial) do nothing",
    )
    .bind(l.serial.to_hex())
    .bind(l.ca_generation)
    .bind(status.as_str())
    .bind(l.reason.as_str())
    .bind(secs(l.revoked_at))
    .bind(secs(l.expires_by.max(l.revoked_at)))
    .bind(crl_number)
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which of `serials` the database holds.
async fn known_serials(tx: &mut WriteTx, serials: &[Serial]) -> Result<std::collections::BTreeSet<Serial>, StoreError> {
    serials_in(tx, "certificates", serials).await
}

/// Which of `serials` are in the `serial` column of `table`.
pub(crate) async fn serials_in(
    tx: &mut WriteTx,
    table: &str,
    serials: &[Serial],
) -> Result<std::collections::BTreeSet<Serial>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    for chunk in serials.chunks(400) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("select serial from {table} where serial in ({})", marks.join(", "));
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(text(&row, "serial")?);
        }
    }
    Ok(out)
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
