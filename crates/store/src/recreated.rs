//! Certificates issued after a backup, recreated from the issuance journal.
//!
//! A restored database lacks what was issued after its backup: a device
//! enrolled since could not be revoked (404), and the ids its certificate
//! names would be handed out again. The server appends every issuance to a
//! journal beside the kept CRLs before the answer leaves; at start, each
//! journaled certificate the database does not know is put back — with its
//! device, user and facility rows when those are missing too, under the same
//! ids (so they are never given to anyone else) — as valid, so that it can
//! be revoked. The kept CRL, applied after, revokes those it lists.

use connect_pki_domain::Serial;
use time::OffsetDateTime;

use crate::certificates::serials_in;
use crate::records::{DeviceRef, NewCertificate};
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
                crate::certificates::insert_certificate(tx, &i.device, &i.cert, actor, now, &mut audit).await?;
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
        "insert into devices (id, user_id, label, status, created_at, updated_at) \
         values ($1, $2, $3, 'active', $4, $4) on conflict (id) do nothing",
    )
    .bind(d.device.0)
    .bind(d.user.0)
    .bind(&i.label)
    .bind(secs(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
