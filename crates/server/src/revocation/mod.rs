//! Revocation that takes effect before the call returns.
//!
//! The database is the truth; [`Revocations`] keeps three things in step with
//! it: the [`index::CertIndex`] (read by the TLS verifier and OCSP), the CRL,
//! and the set of open TLS connections. After every change a service calls
//! [`Revocations::sync`], which reads the change feed past the last event it
//! applied, applies it, closes connections of certificates that stopped being
//! valid, and waits until a CRL built after the change is being served. A
//! background task does the same every 100 ms, so changes made by another
//! instance or by the CLI arrive too.

pub mod index;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// How often the feed is polled for changes made elsewhere.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The CRL being served.
#[derive(Debug)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub number: i64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: usize,
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
    /// Applied feed position.
    last_event: AtomicU64,
    sync_lock: Mutex<()>,
    /// CRL generations: requested by changes, built by the builder task.
    crl_wanted: AtomicU64,
    crl_kick: Notify,
    crl_built: watch::Sender<u64>,
}

impl Revocations {
    /// Loads the index from the database, builds the first CRL, and starts
    /// the CRL builder and the feed poller (both stop with `shutdown`).
    pub async fn start(
        store: Store,
        ca: Arc<IssuingCa>,
        connections: Arc<Connections>,
        crl_validity: time::Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let (last, entries) = store.certificate_index().await?;
        let index = CertIndex::default();
        index.apply(&entries);
        let (built_tx, _) = watch::channel(0);
        let placeholder = Crl {
            der: Vec::new(),
            pem: String::new(),
            number: 0,
            this_update: OffsetDateTime::UNIX_EPOCH,
            next_update: OffsetDateTime::UNIX_EPOCH,
            entries: 0,
        };
        let r = Arc::new(Self {
            index,
            connections,
            store,
            ca,
            crl: ArcSwap::from_pointee(placeholder),
            crl_validity,
            last_event: AtomicU64::new(last.max(0) as u64),
            sync_lock: Mutex::new(()),
            crl_wanted: AtomicU64::new(0),
            crl_kick: Notify::new(),
            crl_built: built_tx,
        });
        let first = r.build_crl().await?;
        r.crl.store(Arc::new(first));
        tracing::info!(certificates = r.index.len(), crl_entries = r.crl.load().entries, "revocation index loaded");
        tokio::spawn(r.clone().crl_builder(shutdown.clone()));
        tokio::spawn(r.clone().poller(shutdown));
        Ok(r)
    }

    /// The CRL being served.
    pub fn crl(&self) -> Arc<Crl> {
        self.crl.load_full()
    }

    /// Applies every change committed so far; returns once the index, the
    /// open connections and the served CRL all reflect them.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let crl_changed = {
            let _guard = self.sync_lock.lock().await;
            let mut crl_changed = false;
            loop {
                let after = self.last_event.load(Ordering::Acquire) as i64;
                let events = self.store.events_after(after, 10_000).await?;
                let Some(last) = events.last().map(|e| e.id) else { break };
                let applied = self.index.apply(&events);
                for k in &applied.invalidated {
                    self.connections.close(*k);
                }
                crl_changed |= applied.crl_changed;
                self.last_event.store(last as u64, Ordering::Release);
            }
            crl_changed
        };
        if crl_changed {
            self.refresh_crl().await?;
        }
        Ok(())
    }

    /// Asks for a CRL built from the index as it is now, and waits until it
    /// is served. A burst of callers shares one rebuild.
    pub async fn refresh_crl(&self) -> anyhow::Result<()> {
        let wanted = self.crl_wanted.fetch_add(1, Ordering::AcqRel) + 1;
        let mut built = self.crl_built.subscribe();
        self.crl_kick.notify_one();
        built.wait_for(|b| *b >= wanted).await.map_err(|_| anyhow::anyhow!("CRL builder stopped"))?;
        Ok(())
    }

    async fn build_crl(&self) -> anyhow::Result<Crl> {
        let now = OffsetDateTime::now_utc();
        let entries = self.index.crl_entries(now.unix_timestamp());
        let number = self.store.next_crl_number().await?;
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
        Ok(Crl { der, pem, number, this_update: now, next_update, entries: count })
    }

    /// Rebuilds the CRL whenever asked, and on its own at half its validity
    /// so that it is never served past nextUpdate.
    async fn crl_builder(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let current = self.crl.load();
            let half: time::Duration = (current.next_update - current.this_update) / 2;
            let due: OffsetDateTime = current.this_update + half;
            let refresh_in: time::Duration = (due - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            let refresh_in = Duration::try_from(refresh_in).unwrap_or(Duration::ZERO);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.crl_kick.notified() => {},
                () = tokio::time::sleep(refresh_in) => {},
            }
            // Everything asked for up to here is covered by this build.
            let target = self.crl_wanted.load(Ordering::Acquire);
            match self.build_crl().await {
                Ok(crl) => {
                    tracing::debug!(number = crl.number, entries = crl.entries, "CRL rebuilt");
                    self.crl.store(Arc::new(crl));
                    self.crl_built.send_replace(target);
                }
                Err(e) => {
                    tracing::error!(error = %e, "CRL rebuild failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.crl_kick.notify_one();
                }
            }
        }
    }

    async fn poller(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {},
            }
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "revocation feed poll failed");
            }
        }
    }
}
