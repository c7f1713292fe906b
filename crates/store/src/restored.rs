//! What a database that went back lost, put back — never undone.
//!
//! A restored backup, a failover to a replica that missed commits or a hand
//! edit can leave the database behind what the service published and what
//! its instances enforce. Three things come back here, each in one
//! transaction, audited:
//!
//! * revocations of the newest CRL an instance kept (`reapply_published`):
//!   applied again where the database has the certificate, and a row of
//!   `recovered_revocations` where it never saw it;
//! * revocations an instance's index holds that the database lost
//!   (`write_back_revocations`, `recover_revocations`; the responder's
//!   `writeback`);
//! * certificates issued after a backup, from the issuance journal the
//!   server appends to before each issuance answers (`recreate_issued`):
//!   put back as valid — with their device, user and facility rows under
//!   the same ids where those are missing too, so they are never handed out
//!   again — so that they can still be revoked. The kept CRL, applied after,
//!   revokes those it lists.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::BulkChange;
use connect_pki_domain::{AuditAction, CertStatus, Reason, Serial};

use crate::audit::AuditEntry;
use crate::certificates::insert_certificate;
use crate::records::{DeviceRef, NewCertificate, text};
use crate::status::{self, Request};
use crate::{Backend, Store, StoreError, WriteTx, secs};

/// One issuance, as the journal keeps it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub device: DeviceRef,
    /// The device's label when it was enrolled ("" for a renewal).
    pub label: String,
    pub cert: NewCertificate,
}

impl Store {
    /// Recreates every certificate of `issued` that the database knows in
    /// neither `certificates` nor `recovered_revocations`, in one
    /// transaction, audited as `actor`; returns their serials.
    pub async fn recreate_issued(
        &self,
        issued: &[Issued],
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        if issued.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend;
        self.write(async |tx| {
            let serials: Vec<Serial> = issued.iter().map(|i| i.cert.serial.clone()).collect();
            let known = serials_in(tx, "certificates", &serials).await?;
            let recovered = serials_in(tx, "recovered_revocations", &serials).await?;
            let mut audit = Vec::new();
            let mut done = Vec::new();
            for i in issued {
                let serial = &i.cert.serial;
                if known.contains(serial) || recovered.contains(serial) || done.contains(serial) {
                    continue;
                }
                rows_for(tx, i, now).await?;
                insert_certificate(tx, &i.device, &i.cert, actor, now, &mut audit).await?;
                done.push(serial.clone());
            }
            if backend == Backend::Postgres && !done.is_empty() {
                // Ids given explicitly do not move an identity's sequence.
                for table in ["facilities", "users", "devices"] {
                    sqlx::query(&format!(
                        "select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))"
                    ))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            for mut entry in audit {
                entry.detail["recreated"] = "from the issuance journal: issued after the restored backup".into();
                tx.audit(now, &entry).await?;
            }
            Ok(done)
        })
        .await
    }
}

/// The device, user and facility rows of `i`, where the database lacks them:
/// placeholders under the journaled ids (no name, no sign-in), in force.
async fn rows_for(tx: &mut WriteTx, i: &Issued, now: OffsetDateTime) -> Result<(), StoreError> {
    let d = &i.device;
    sqlx::query(
        "insert into facilities (id, name, kind, address, status, created_at, updated_at) \
         values ($1, $2, 'internal', '', 'approved', $3, $3) on conflict (id) do nothing",
    )
    .bind(d.facility.0)
    .bind(format!("復元された施設 {}", d.facility.0))
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "insert into users (id, facility_id, role, status, created_at, updated_at) \
         values ($1, $2, 'staff', 'active', $3, $3) on conflict (id) do nothing",
    )
    .bind(d.user.0)
    .bind(d.facility.0)
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "insert into devices (id, user_id, label, status, created_at, updated_at, managed) \
         values ($1, $2, $3, 'active', $4, $4, $5) on conflict (id) do nothing",
    )
    .bind(d.device.0)
    .bind(d.user.0)
    .bind(&i.label)
    .bind(secs(now))
    .bind(i64::from(d.managed))
    .execute(&mut **tx)
    .await?;
    Ok(())
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
async fn known_serials(tx: &mut WriteTx, serials: &[Serial]) -> Result<BTreeSet<Serial>, StoreError> {
    serials_in(tx, "certificates", serials).await
}

/// Which of `serials` are in the `serial` column of `table`.
pub(crate) async fn serials_in(
    tx: &mut WriteTx,
    table: &str,
    serials: &[Serial],
) -> Result<BTreeSet<Serial>, StoreError> {
    let mut out = BTreeSet::new();
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
