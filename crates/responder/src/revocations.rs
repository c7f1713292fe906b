//! Revocation that takes effect before the call returns.
//!
//! The database is the truth; [`Revocations`] keeps three things in step with
//! it: the [`CertIndex`] (read by the TLS verifier and OCSP), the CRL, and the
//! open TLS connections ([`Sessions`]). After every change a service calls
//! [`Revocations::sync`]: it reads the feed head (at or past its own commit),
//! applies the feed up to there, closes connections of certificates that
//! stopped being valid, and waits until the served CRL covers that position.
//! A follower task does the same for changes made elsewhere (`feed.rs`). An
//! instance that cannot read the feed for longer than its bound fails closed
//! (see [`Revocations::is_stale`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use connect_pki_ca::IssuingCa;
use connect_pki_domain::Clock;
use connect_pki_store::Store;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::error::ResponderError;
use crate::index::CertIndex;
use crate::{Crl, FeedSettings, Sessions};

/// Feed rows read per round trip.
const BATCH: i64 = 10_000;

/// The revocation machinery of one instance.
#[derive(Debug)]
pub struct Revocations {
    pub index: CertIndex,
    pub(crate) sessions: Arc<dyn Sessions>,
    pub(crate) store: Store,
    /// Every issuing CA whose certificates may still be in use, oldest
    /// first; the last issues new ones.
    pub(crate) cas: Vec<Arc<IssuingCa>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The newest issuing CA's CRL.
    pub(crate) crl: ArcSwap<Crl>,
    /// Every issuing CA's CRL, in the order of `cas`.
    pub(crate) crls: ArcSwap<Vec<Arc<Crl>>>,
    pub(crate) crl_validity: time::Duration,
    pub(crate) settings: FeedSettings,
    /// The directory where each CRL is kept once signed (`<ca name>.crl`),
    /// for a restored database to be compared with (`None`: nowhere).
    pub(crate) keep_in: Option<std::path::PathBuf>,
    /// Every feed event up to this position is in the index.
    pub(crate) applied: AtomicI64,
    /// Position of the newest applied event that changed what a CRL lists.
    pub(crate) crl_content: AtomicI64,
    pub(crate) sync_lock: Mutex<()>,
    /// One CRL build at a time: two racing builds would number their CRLs in
    /// one order and serve them in the other.
    pub(crate) crl_build: Mutex<()>,
    pub(crate) crl_kick: Notify,
    /// Position covered by the served CRL.
    pub(crate) crl_served: watch::Sender<i64>,
    /// Wakes the follower (a `NOTIFY` arrived).
    pub(crate) feed_kick: Notify,
    /// Wakes the heartbeat: `applied` moved.
    pub(crate) applied_kick: Notify,
    started: Instant,
    /// Milliseconds after `started` of the last successful feed read.
    last_read: AtomicU64,
    /// The database went back behind this instance's index: it fails closed
    /// until the revocations it holds are written back and it has reloaded.
    pub(crate) went_back: AtomicBool,
    /// The database's incarnation when the index was loaded (`FeedHead`).
    pub(crate) incarnation: ArcSwap<String>,
    /// The newest issuing CA generation the database knows of (recorded by
    /// an instance that serves it, or signing a certificate in the feed).
    newest_known: AtomicU32,
}

impl Revocations {
    /// nextUpdate − thisUpdate of the CRLs: the longest a relying party that
    /// keeps a CRL can go on without hearing of a revocation.
    pub fn crl_validity(&self) -> time::Duration {
        self.crl_validity
    }

    /// Loads the index from the database, builds the first CRL, and starts
    /// the CRL builder, the follower, the listener and the reconciliation
    /// (all stop with `shutdown`). `cas` are the issuing CAs, oldest first.
    /// Each CRL is written into `keep_in` before it is served.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: Store,
        cas: Vec<Arc<IssuingCa>>,
        clock: Arc<dyn Clock>,
        sessions: Arc<dyn Sessions>,
        crl_validity: time::Duration,
        settings: FeedSettings,
        keep_in: Option<std::path::PathBuf>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ResponderError> {
        if cas.is_empty() {
            return Err(ResponderError::NoIssuingCa);
        }
        // The incarnation first: a database swapped in between the two reads
        // shows a different one at the first feed read.
        let incarnation = store.feed_head().await?.incarnation;
        let (last, entries) = store.certificate_index().await?;
        let recorded = store.newest_issuing_generation().await?;
        let index = CertIndex::default();
        index.apply(&entries);
        let placeholder = Crl {
            ca: String::new(),
            der: Vec::new(),
            pem: String::new(),
            number: 0,
            this_update: OffsetDateTime::UNIX_EPOCH,
            next_update: OffsetDateTime::UNIX_EPOCH,
            entries: 0,
            position: -1,
        };
        let r = Arc::new(Self {
            index,
            sessions,
            store,
            cas,
            clock,
            crl: ArcSwap::from_pointee(placeholder),
            crls: ArcSwap::from_pointee(Vec::new()),
            crl_validity,
            settings,
            keep_in,
            applied: AtomicI64::new(last),
            crl_content: AtomicI64::new(last),
            sync_lock: Mutex::new(()),
            crl_build: Mutex::new(()),
            crl_kick: Notify::new(),
            crl_served: watch::channel(-1).0,
            feed_kick: Notify::new(),
            applied_kick: Notify::new(),
            started: Instant::now(),
            last_read: AtomicU64::new(0),
            went_back: AtomicBool::new(false),
            incarnation: ArcSwap::from_pointee(incarnation),
            newest_known: AtomicU32::new(0),
        });
        r.saw_generations(entries.iter().map(|e| e.ca_generation).chain([recorded]));
        r.mark_read();
        r.build_and_serve().await?;
        tracing::info!(certificates = r.index.len(), crl_entries = r.crl.load().entries, "revocation index loaded");
        tokio::spawn(r.clone().crl_builder(shutdown.clone()));
        tokio::spawn(r.clone().follower(shutdown.clone()));
        tokio::spawn(r.clone().reconciler(shutdown.clone()));
        if let Some(id) = r.settings.heartbeat.clone() {
            tokio::spawn(r.clone().heartbeat(id, shutdown.clone()));
        }
        if let Some(url) = r.settings.listen_url.clone() {
            tokio::spawn(r.clone().listener(url, shutdown));
        }
        Ok(r)
    }

    /// The CRL being served for the newest issuing CA.
    pub fn crl(&self) -> Arc<Crl> {
        self.crl.load_full()
    }

    /// The CRL being served for the issuing CA named `ca`.
    pub fn crl_of(&self, ca: &str) -> Option<Arc<Crl>> {
        self.crls.load().iter().find(|c| c.ca == ca).cloned()
    }

    /// The issuing CAs whose CRLs are served, oldest first.
    pub fn cas(&self) -> &[Arc<IssuingCa>] {
        &self.cas
    }

    /// The newest issuing CA generation the database knows of, when this
    /// instance lacks it: another instance ran `ca rollover` and this one has
    /// not been restarted with the new CA. It cannot publish the CRL of that
    /// generation, answer OCSP for it or issue from it, so it says `tryLater`
    /// for it and changes nothing until it is restarted.
    pub fn behind_rollover(&self) -> Option<u32> {
        let known = self.newest_known.load(Ordering::Acquire);
        let held = self.cas.iter().map(|c| c.generation()).max().unwrap_or(1);
        (known > held).then_some(known)
    }

    /// Notes the issuing CA generations of certificates read from the database.
    pub(crate) fn saw_generations(&self, generations: impl IntoIterator<Item = i64>) {
        if let Some(newest) = generations.into_iter().max() {
            self.newest_known.fetch_max(u32::try_from(newest).unwrap_or(0), Ordering::AcqRel);
        }
    }

    /// The feed position the index reflects.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether the feed has not been read for longer than the bound. While
    /// it is, this instance cannot know of revocations made elsewhere, so it
    /// fails closed: OCSP answers `tryLater` instead of `good`, and new
    /// handshakes are refused, until a read succeeds again.
    pub fn is_stale(&self) -> bool {
        self.went_back.load(Ordering::Acquire) || self.feed_age() > self.settings.max_lag
    }

    pub(crate) fn feed_age(&self) -> Duration {
        let last = Duration::from_millis(self.last_read.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }

    pub(crate) fn mark_read(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read.fetch_max(ms, Ordering::AcqRel);
    }

    /// Applies every change committed so far; returns once the index, the
    /// open connections and the served CRL all reflect them. Called after a
    /// commit, it covers that commit.
    pub async fn sync(&self) -> Result<(), ResponderError> {
        let head = self.store.feed_head().await?;
        if self.went_back_in(&head) || self.went_back.load(Ordering::Acquire) {
            // Perhaps only a follower that applied newer commits since the
            // head was read; `database_went_back` looks again under the lock.
            self.database_went_back().await?;
        }
        self.catch_up(head.last).await?;
        self.wait_for_crl(head.last).await
    }

    /// Applies the feed until the index reflects position `target`.
    pub(crate) async fn catch_up(&self, target: i64) -> Result<(), ResponderError> {
        if self.applied() >= target {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().await;
        while self.applied() < target {
            if self.apply_batch().await? == 0 {
                return Err(ResponderError::FeedGap { target, applied: self.applied() });
            }
        }
        Ok(())
    }

    /// Applies everything committed so far; notices a database that went
    /// back behind what this instance applied.
    pub(crate) async fn follow(&self) -> Result<(), ResponderError> {
        let head = {
            let _guard = self.sync_lock.lock().await;
            while self.apply_batch().await? == BATCH as usize {}
            self.store.feed_head().await?
        };
        if self.went_back_in(&head) || self.went_back.load(Ordering::Acquire) {
            self.database_went_back().await?;
        }
        Ok(())
    }

    /// Reads and applies one batch; the caller holds `sync_lock`. A batch
    /// that fails to read changes nothing; one applied moves `applied` and,
    /// when the CRL's content changed, `crl_content` — so the CRL builder
    /// sees it is behind even if the caller gives up.
    async fn apply_batch(&self) -> Result<usize, ResponderError> {
        let events = self.store.events_after(self.applied(), BATCH).await?;
        self.mark_read();
        let Some(last) = events.last().map(|e| e.id) else { return Ok(0) };
        self.saw_generations(events.iter().map(|e| e.ca_generation));
        let applied = self.index.apply(&events);
        for k in &applied.invalidated {
            self.sessions.close(*k);
        }
        if applied.crl_changed {
            self.crl_content.fetch_max(last, Ordering::AcqRel);
            self.crl_kick.notify_one();
        }
        self.applied.store(last, Ordering::Release);
        self.applied_kick.notify_one();
        Ok(events.len())
    }

    /// Whether a CRL built at `served` lists everything up to `target`:
    /// built at or past it, or nothing a CRL lists changed since it was built.
    pub(crate) fn covers(&self, served: i64, target: i64) -> bool {
        served >= target || (self.applied() >= target && self.crl_content.load(Ordering::Acquire) <= served)
    }

    /// Waits until the served CRL covers `target` (the index must be there).
    async fn wait_for_crl(&self, target: i64) -> Result<(), ResponderError> {
        let mut served = self.crl_served.subscribe();
        loop {
            if self.covers(*served.borrow_and_update(), target) {
                return Ok(());
            }
            self.crl_kick.notify_one();
            served.changed().await.map_err(|_| ResponderError::CrlBuilderStopped)?;
        }
    }

    /// Reads every certificate's status in one snapshot, brings the index to
    /// that snapshot's position, and repairs each entry that differs and was
    /// not changed after the snapshot. Returns the number repaired (each one
    /// counted in `connect_pki_index_divergences_total`).
    ///
    /// A repair never un-revokes: where the index holds a certificate revoked
    /// (or superseded) that the database has in force, the database lost that
    /// revocation (a restore, a failover, a hand edit), and the revocation is
    /// written back to it instead (`connect_pki_revocations_written_back_total`).
    pub async fn reconcile(&self) -> Result<usize, ResponderError> {
        let (position, rows) = self.store.certificate_index().await?;
        self.saw_generations(rows.iter().map(|r| r.ca_generation));
        self.saw_generations([self.store.newest_issuing_generation().await?]);
        self.catch_up(position).await?;
        let lost = self.lost_in(&rows, Some(position));
        if !lost.is_empty() {
            self.write_back(&lost, "system:reconcile").await?;
            self.sync().await?;
        }
        let written_back: std::collections::HashSet<_> = lost.in_force.into_iter().map(|(s, _)| s).collect();
        let guard = self.sync_lock.lock().await;
        let repairs: Vec<_> = rows
            .into_iter()
            .filter(|row| !written_back.contains(&row.serial))
            .filter(|row| match self.index.get(row.serial.as_bytes()) {
                Some(e) if e.event > position => false,
                Some(e) => e.status != row.status || e.reason != row.reason,
                None => true,
            })
            .collect();
        if repairs.is_empty() {
            return Ok(0);
        }
        for r in &repairs {
            tracing::error!(serial = %r.serial, status = %r.status, "index entry differed from the database");
        }
        let applied = self.index.apply(&repairs);
        for k in &applied.invalidated {
            self.sessions.close(*k);
        }
        drop(guard);
        metrics::counter!("connect_pki_index_divergences_total").increment(repairs.len() as u64);
        // The served CRL may say "covers this position" and still be wrong.
        self.build_and_serve().await?;
        Ok(repairs.len())
    }
}
