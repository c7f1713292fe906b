//! Following the changes other writers commit: woken by PostgreSQL
//! `NOTIFY`, polling as the fallback, and comparing the whole index with the
//! database from time to time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::ResponderError;
use crate::revocations::Revocations;

/// How often the feed is polled for changes made elsewhere (the fallback
/// when `NOTIFY` is off or a notification was lost).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

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
    /// Records the feed position this instance applied under this name
    /// (`Store::heartbeat`), at once when it moves and every
    /// [`HEARTBEAT_EVERY`]; `None`: not recorded.
    pub heartbeat: Option<std::sync::Arc<str>>,
}

/// How often an instance says it is alive and where it is in the feed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            listen_url: None,
            max_lag: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(300),
            heartbeat: None,
        }
    }
}

impl Revocations {
    /// Follows the feed: at every `NOTIFY`, and every [`POLL_INTERVAL`].
    pub(crate) async fn follower(self: Arc<Self>, shutdown: CancellationToken) {
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

    /// Records where this instance is in the feed as `id`, whenever it moves
    /// and at least every [`HEARTBEAT_EVERY`]; removes the record when it
    /// stops. A failed write is retried at the next beat.
    pub(crate) async fn heartbeat(self: Arc<Self>, id: Arc<str>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.applied_kick.notified() => {},
                () = tokio::time::sleep(HEARTBEAT_EVERY) => {},
            }
            // Only what the index enforces: an instance failing closed is not
            // where its position says.
            if self.is_stale() {
                continue;
            }
            if let Err(e) = self.store.heartbeat(&id, self.applied()).await {
                tracing::warn!(error = %e, "the heartbeat could not be recorded");
            }
        }
        if let Err(e) = self.store.forget_instance(&id).await {
            tracing::warn!(error = %e, "this instance's heartbeat could not be removed; it ages out");
        }
    }

    /// `LISTEN`s for commits that wrote feed rows (PostgreSQL) and wakes the
    /// follower; reconnects after a lost connection, while polling covers
    /// whatever was missed.
    pub(crate) async fn listener(self: Arc<Self>, url: String, shutdown: CancellationToken) {
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

    async fn listen_once(&self, url: &str) -> Result<(), ResponderError> {
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
    pub(crate) async fn reconciler(self: Arc<Self>, shutdown: CancellationToken) {
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
}
