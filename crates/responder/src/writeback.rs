//! Nothing un-revokes: what the index enforces that the database lost.
//!
//! The database is the truth for every change, except one: a revocation it
//! no longer holds (a backup restored under running instances, a failover
//! to a replica that missed the last commits, a hand edit) is not undone in
//! the index, it is written back to the database — through the status
//! primitive where the certificate's row is still there, as a recovered
//! revocation where the row is gone. Reconciliation and the rollback check
//! (a feed head below what the instance applied) both come here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use connect_pki_domain::certificate::in_force;
use connect_pki_domain::{CertStatus, Reason, Serial};
use connect_pki_store::{CertEvent, FeedHead, Listed};
use time::OffsetDateTime;

use crate::Revocations;
use crate::error::ResponderError;
use crate::index::{key, serial_bytes};

/// Revocations the index enforces that the database lost.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Revoked or superseded here, in force in the database.
    pub(crate) in_force: Vec<(Serial, Reason)>,
    /// Not valid here, and no row in the database at all.
    pub(crate) gone: Vec<Listed>,
}

impl Lost {
    pub(crate) fn is_empty(&self) -> bool {
        self.in_force.is_empty() && self.gone.is_empty()
    }
}

impl Revocations {
    /// What the index holds that `rows` (the database's certificates) lost.
    /// With `as_of`, entries changed after that feed position are left out:
    /// the rows were read before those changes.
    pub(crate) fn lost_in(&self, rows: &[CertEvent], as_of: Option<i64>) -> Lost {
        // The index's certificates that are not valid: a small share of all.
        let mut unmatched: HashMap<u128, crate::index::Entry> =
            self.index.not_valid().into_iter().filter(|(_, e)| as_of.is_none_or(|p| e.event <= p)).collect();
        let mut lost = Lost::default();
        for row in rows {
            let Some(e) = key(row.serial.as_bytes()).and_then(|k| unmatched.remove(&k)) else { continue };
            if matches!(e.status, CertStatus::Revoked | CertStatus::Superseded) && in_force(row.status) {
                lost.in_force.push((row.serial.clone(), e.reason.unwrap_or(Reason::Unspecified)));
            }
        }
        let time = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        lost.gone = unmatched
            .into_iter()
            .filter_map(|(k, e)| {
                Some(Listed {
                    serial: Serial::from_bytes(&serial_bytes(k)).ok()?,
                    reason: if e.status == CertStatus::OnHold {
                        Reason::CertificateHold
                    } else {
                        e.reason.unwrap_or(Reason::Unspecified)
                    },
                    revoked_at: time(e.at),
                    ca_generation: i64::from(e.ca),
                    expires_by: time(e.not_after),
                })
            })
            .collect();
        lost
    }

    /// Writes `lost` back to the database as `actor`; logged at ERROR and
    /// counted in `connect_pki_revocations_written_back_total`.
    pub(crate) async fn write_back(&self, lost: &Lost, actor: &str) -> Result<(), ResponderError> {
        if lost.is_empty() {
            return Ok(());
        }
        let serials: Vec<String> =
            lost.in_force.iter().map(|(s, _)| s.to_hex()).chain(lost.gone.iter().map(|l| l.serial.to_hex())).collect();
        tracing::error!(
            serials = %serials.join(","),
            "the database lost revocations this instance enforces (restored, failed over or edited?): \
             they are written back, never undone"
        );
        let now = self.store.due_clock(self.clock.now()).await?;
        self.store.write_back_revocations(&lost.in_force, actor, now).await?;
        self.store.recover_revocations(&lost.gone, actor, now).await?;
        metrics::counter!("connect_pki_revocations_written_back_total").increment(serials.len() as u64);
        Ok(())
    }

    /// The feed's head is below what this instance applied: the database went
    /// back (a backup restored under running instances, a failover to a
    /// replica that missed the last commits). The instance fails closed at
    /// once, writes back what the database lost, raises the CRL number above
    /// the one it served, reloads the index from the database, and serves
    /// again. Logged, audited, counted. While the check or the repair fails,
    /// the instance stays failed closed and the next feed read tries again.
    /// Whether `head` shows the database went back behind this instance: a
    /// feed below what it applied, a CRL given out past the feed, or another
    /// database altogether.
    pub(crate) fn went_back_in(&self, head: &FeedHead) -> bool {
        head.went_back_from(self.applied(), &self.incarnation.load())
    }

    pub(crate) async fn database_went_back(&self) -> Result<(), ResponderError> {
        let guard = self.sync_lock.lock().await;
        // Under the lock `applied` stands still, and a head read after it was
        // set is at or past it unless the database lost those commits.
        let head = self.store.feed_head().await?;
        let applied = self.applied();
        if !self.went_back_in(&head) && !self.went_back.load(Ordering::Acquire) {
            return Ok(());
        }
        self.went_back.store(true, Ordering::Release);
        metrics::counter!("connect_pki_database_went_back_total").increment(1);
        tracing::error!(
            applied,
            head = head.last,
            crl_position = head.crl_position,
            incarnation = %head.incarnation,
            was = %self.incarnation.load(),
            "the database went back behind this instance's revocation index (restored? failed over?): \
             failing closed, writing back the revocations it lost, reloading"
        );
        let (_, rows) = self.store.certificate_index().await?;
        self.write_back(&self.lost_in(&rows, None), "system:rollback").await?;
        let (position, rows) = self.store.certificate_index().await?;
        self.incarnation.store(Arc::new(head.incarnation));
        for k in self.index.replace(&rows) {
            self.sessions.close(k);
        }
        self.applied.store(position, Ordering::Release);
        self.applied_kick.notify_one();
        self.crl_content.store(position, Ordering::Release);
        // No CRL covers the reloaded index until the next is built; and that
        // one is numbered above every CRL served before.
        self.crl_served.send_replace(-1);
        let served = self.crls.load().iter().map(|c| c.number).max().unwrap_or(0);
        self.store.raise_crl_number(served, position).await?;
        self.mark_read();
        drop(guard);
        self.build_and_serve().await?;
        tracing::error!(position, "revocations the database lost were put back; the index is reloaded");
        self.went_back.store(false, Ordering::Release);
        Ok(())
    }
}
