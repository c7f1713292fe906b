//! Revocation that takes effect before the call returns.
//!
//! The database is the truth; [`Revocations`] keeps three things in step with
//! it: the [`index::CertIndex`] (read by the TLS verifier and OCSP), the CRL,
//! and the set of open TLS connections. After every change a service calls
//! [`Revocations::sync`]: it reads the feed head (at or past its own commit),
//! applies the feed up to there, closes connections of certificates that
//! stopped being valid, and waits until the served CRL covers that position.
//! A follower task does the same for changes made elsewhere: woken by
//! PostgreSQL `NOTIFY` at once, and polling every [`POLL_INTERVAL`] as the
//! fallback. A reconciliation compares the index with the database from time
//! to time and repairs any difference. An instance that cannot read the feed
//! for longer than its bound fails closed (see [`Revocations::is_stale`]).

pub mod index;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use connect_pki_ca::IssuingCa;
use connect_pki_ca::crl::CrlEntry;
use connect_pki_domain::{CertStatus, Reason};
use connect_pki_store::Store;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::tls::Connections;
use index::CertIndex;

/// How often the feed is polled for changes made elsewhere (the fallback
/// when `NOTIFY` is off or a notification was lost).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Feed rows read per round trip.
const BATCH: i64 = 10_000;

/// How the follower keeps up with other writers.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// PostgreSQL URL to `LISTEN` on; `None` polls only.
    pub listen_url: Option<String>,
    /// After this long without a successful feed read, OCSP answers
    /// `tryLater` instead of `good` and new handshakes are refused.
    pub max_lag: Duration,
    /// How often the index is compared with the database.
    pub reconcile_every: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self { listen_url: None, max_lag: Duration::from_secs(30), reconcile_every: Duration::from_secs(300) }
    }
}

/// The CRL being served.
#[derive(Debug)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub number: i64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: usize,
    /// Feed position the CRL was built from: it lists every revocation up to it.
    pub position: i64,
}

/// The revocation machinery of one instance.
#[derive(Debug)]
pub struct Revocations {
    pub index: CertIndex,
    pub connections: Arc<Connections>,
    store: Store,
    ca: Arc<IssuingCa>,
    crl: ArcSwap<Crl>,
    crl_validity: time::Duration,
    settings: FeedSettings,
    /// Every feed event up to this position is in the index.
    applied: AtomicI64,
    /// Position of the newest applied event that changed what a CRL lists.
    crl_content: AtomicI64,
    sync_lock: Mutex<()>,
    crl_kick: Notify,
    /// Position covered by the served CRL.
    crl_served: watch::Sender<i64>,
    /// Wakes the follower (a `NOTIFY` arrived).
    feed_kick: Notify,
    started: Instant,
    /// Milliseconds after `started` of the last successful feed read.
    last_read: AtomicU64,
}

impl Revocations {
    /// Loads the index from the database, builds the first CRL, and starts
    /// the CRL builder, the follower, the listener and the reconciliation
    /// (all stop with `shutdown`).
    pub async fn start(
        store: Store,
        ca: Arc<IssuingCa>,
        connections: Arc<Connections>,
        crl_validity: time::Duration,
        settings: FeedSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let (last, entries) = store.certificate_index().await?;
        let index = CertIndex::default();
        index.apply(&entries);
        let placeholder = Crl {
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
            connections,
            store,
            ca,
            crl: ArcSwap::from_pointee(placeholder),
            crl_validity,
            settings,
            applied: AtomicI64::new(last),
            crl_content: AtomicI64::new(last),
            sync_lock: Mutex::new(()),
            crl_kick: Notify::new(),
            crl_served: watch::channel(-1).0,
            feed_kick: Notify::new(),
            started: Instant::now(),
            last_read: AtomicU64::new(0),
        });
        r.mark_read();
        r.build_and_serve().await?;
        tracing::info!(certificates = r.index.len(), crl_entries = r.crl.load().entries, "revocation index loaded");
        tokio::spawn(r.clone().crl_builder(shutdown.clone()));
        tokio::spawn(r.clone().follower(shutdown.clone()));
        tokio::spawn(r.clone().reconciler(shutdown.clone()));
        if let Some(url) = r.settings.listen_url.clone() {
            tokio::spawn(r.clone().listener(url, shutdown));
        }
        Ok(r)
    }

    /// The CRL being served.
    pub fn crl(&self) -> Arc<Crl> {
        self.crl.load_full()
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
        self.feed_age() > self.settings.max_lag
    }

    fn feed_age(&self) -> Duration {
        let last = Duration::from_millis(self.last_read.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }

    fn mark_read(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read.fetch_max(ms, Ordering::AcqRel);
    }

    /// Applies every change committed so far; returns once the index, the
    /// open connections and the served CRL all reflect them. Called after a
    /// commit, it covers that commit.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let head = self.store.feed_head().await?;
        self.catch_up(head).await?;
        self.wait_for_crl(head).await
    }

    /// Applies the feed until the index reflects position `target`.
    async fn catch_up(&self, target: i64) -> anyhow::Result<()> {
        if self.applied() >= target {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().await;
        while self.applied() < target {
            if self.apply_batch().await? == 0 {
                anyhow::bail!("feed position {target} is not readable (applied up to {})", self.applied());
            }
        }
        Ok(())
    }

    /// Applies everything committed so far.
    async fn follow(&self) -> anyhow::Result<()> {
        let _guard = self.sync_lock.lock().await;
        while self.apply_batch().await? == BATCH as usize {}
        Ok(())
    }

    /// Reads and applies one batch; the caller holds `sync_lock`. A batch
    /// that fails to read changes nothing; one applied moves `applied` and,
    /// when the CRL's content changed, `crl_content` — so the CRL builder
    /// sees it is behind even if the caller gives up.
    async fn apply_batch(&self) -> anyhow::Result<usize> {
        let events = self.store.events_after(self.applied(), BATCH).await?;
        self.mark_read();
        let Some(last) = events.last().map(|e| e.id) else { return Ok(0) };
        let applied = self.index.apply(&events);
        for k in &applied.invalidated {
            self.connections.close(*k);
        }
        if applied.crl_changed {
            self.crl_content.fetch_max(last, Ordering::AcqRel);
            self.crl_kick.notify_one();
        }
        self.applied.store(last, Ordering::Release);
        Ok(events.len())
    }

    /// Whether a CRL built at `served` lists everything up to `target`:
    /// built at or past it, or nothing a CRL lists changed since it was built.
    fn covers(&self, served: i64, target: i64) -> bool {
        served >= target || (self.applied() >= target && self.crl_content.load(Ordering::Acquire) <= served)
    }

    /// Waits until the served CRL covers `target` (the index must be there).
    async fn wait_for_crl(&self, target: i64) -> anyhow::Result<()> {
        let mut served = self.crl_served.subscribe();
        loop {
            if self.covers(*served.borrow_and_update(), target) {
                return Ok(());
            }
            self.crl_kick.notify_one();
            served.changed().await.map_err(|_| anyhow::anyhow!("CRL builder stopped"))?;
        }
    }

    /// Builds a CRL from the index and serves it. The CRL number is taken
    /// for the index's position; if another instance already numbered a CRL
    /// built from a newer position, this one first catches up to it.
    async fn build_and_serve(&self) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let (position, number, entries) = loop {
            // Position first: the entries read after it reflect at least it.
            let position = self.applied();
            let entries = self.index.crl_entries(now.unix_timestamp());
            match self.store.next_crl_number(position).await? {
                Ok(number) => break (position, number, entries),
                Err(newer) => self.catch_up(newer).await?,
            }
        };
        let ca = self.ca.clone();
        let next_update = now + self.crl_validity;
        // Signing a CRL of 100 000 entries is CPU work: off the async threads.
        let (der, count) = tokio::task::spawn_blocking(move || {
            let count = entries.len();
            let crl_entries = entries.into_iter().map(|(k, e)| CrlEntry {
                serial: index::serial_bytes(k),
                revoked_at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: match e.status {
                    CertStatus::OnHold => Reason::CertificateHold,
                    _ => e.reason.unwrap_or(Reason::Unspecified),
                },
            });
            ca.sign_crl(crl_entries, number.max(0) as u64, now, next_update).map(|der| (der, count))
        })
        .await??;
        let pem = connect_pki_ca::issue::to_pem("X509 CRL", &der);
        tracing::debug!(number, position, entries = count, "CRL rebuilt");
        self.crl.store(Arc::new(Crl { der, pem, number, this_update: now, next_update, entries: count, position }));
        self.crl_served.send_replace(position);
        Ok(())
    }

    /// Rebuilds the CRL when the index has moved past what it lists, and on
    /// its own at half its validity so that it is never served past
    /// nextUpdate. A failed build is retried.
    async fn crl_builder(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let current = self.crl.load_full();
            let half: time::Duration = (current.next_update - current.this_update) / 2;
            let refresh_in: time::Duration =
                (current.this_update + half - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            let refresh_in = Duration::try_from(refresh_in).unwrap_or(Duration::ZERO);
            let timer = tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.crl_kick.notified() => false,
                () = tokio::time::sleep(refresh_in) => true,
            };
            if !timer && self.covers(current.position, self.applied()) {
                continue;
            }
            if let Err(e) = self.build_and_serve().await {
                tracing::error!(error = %e, "CRL rebuild failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.crl_kick.notify_one();
            }
        }
    }

    /// Follows the feed: at every `NOTIFY`, and every [`POLL_INTERVAL`].
    async fn follower(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.feed_kick.notified() => {},
                () = tokio::time::sleep(POLL_INTERVAL) => {},
            }
            match self.follow().await {
                Ok(()) if failing => {
                    tracing::info!("revocation feed readable again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) => {
                    let stale = self.is_stale();
                    tracing::warn!(error = %e, stale, "revocation feed read failed");
                    failing = true;
                }
            }
            // A CRL left behind by a failed build or an interrupted sync.
            if !self.covers(self.crl.load().position, self.applied()) {
                self.crl_kick.notify_one();
            }
            metrics::gauge!("connect_pki_feed_age_seconds").set(self.feed_age().as_secs_f64());
            metrics::gauge!("connect_pki_feed_position").set(self.applied() as f64);
        }
    }

    /// `LISTEN`s for commits that wrote feed rows (PostgreSQL) and wakes the
    /// follower; reconnects after a lost connection, while polling covers
    /// whatever was missed.
    async fn listener(self: Arc<Self>, url: String, shutdown: CancellationToken) {
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.listen_once(&url) => r,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "feed LISTEN connection lost; polling until it is back");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {},
            }
        }
    }

    async fn listen_once(&self, url: &str) -> anyhow::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(connect_pki_store::FEED_CHANNEL).await?;
        // Anything committed before the LISTEN took effect.
        self.feed_kick.notify_one();
        loop {
            listener.recv().await?;
            self.feed_kick.notify_one();
        }
    }

    /// Compares the index with the database at intervals.
    async fn reconciler(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.reconcile_every) => {},
            }
            match self.reconcile().await {
                Ok(0) => tracing::debug!("revocation index matches the database"),
                Ok(n) => tracing::error!(repaired = n, "revocation index differed from the database; repaired"),
                Err(e) => tracing::warn!(error = %e, "revocation index reconciliation failed"),
            }
        }
    }

    /// Reads every certificate's status in one snapshot, brings the index to
    /// that snapshot's position, and repairs each entry that differs and was
    /// not changed after the snapshot. Returns the number repaired (each one
    /// counted in `connect_pki_index_divergences_total`).
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let (position, rows) = self.store.certificate_index().await?;
        self.catch_up(position).await?;
        let guard = self.sync_lock.lock().await;
        let repairs: Vec<_> = rows
            .into_iter()
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
            self.connections.close(*k);
        }
        drop(guard);
        metrics::counter!("connect_pki_index_divergences_total").increment(repairs.len() as u64);
        // The served CRL may say "covers this position" and still be wrong.
        self.build_and_serve().await?;
        Ok(repairs.len())
    }
}
