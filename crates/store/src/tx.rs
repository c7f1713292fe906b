//! The write transaction: it carries its backend, so nothing that writes
//! through it has to be told which database it is talking to.

use time::OffsetDateTime;

use crate::audit::{self, AuditEntry};
use crate::{Backend, StoreError, secs};

/// A write transaction (and, on SQLite, this process's writer slot; on
/// PostgreSQL, one of its writer permits).
pub(crate) struct WriteTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) _slot: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// SQLite: this is a foreground write, which background writes let go first.
    pub(crate) _foreground: Option<ForegroundTicket>,
    pub(crate) _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(crate) backend: Backend,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// The backend this transaction runs on.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs an update whose `$1` is the time `now` and `$2` the key of the
    /// rows it changes; returns how many it changed.
    pub(crate) async fn update_at(&mut self, sql: &str, now: OffsetDateTime, key: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql).bind(secs(now)).bind(key).execute(&mut **self).await?.rows_affected())
    }

    /// Appends one audit record to the chain, in this transaction.
    pub(crate) async fn audit(&mut self, at: OffsetDateTime, entry: &AuditEntry) -> Result<(), StoreError> {
        audit::append_all(self, at, std::slice::from_ref(entry)).await
    }

    /// Appends several audit records in order, in this transaction.
    pub(crate) async fn audit_all(&mut self, at: OffsetDateTime, entries: &[AuditEntry]) -> Result<(), StoreError> {
        audit::append_all(self, at, entries).await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// SQLite: the foreground writers (every write but background bookkeeping)
/// waiting for or holding the writer lock. Background writes wait until
/// there are none and take the lock only then, so that a revocation queues
/// behind at most one small background transaction already running, never
/// behind a train of them (the writer lock itself is first come, first served).
#[derive(Debug, Default)]
pub(crate) struct Foreground {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One foreground writer counted in [`Foreground`] until dropped.
#[derive(Debug)]
pub(crate) struct ForegroundTicket(std::sync::Arc<Foreground>);

impl Foreground {
    pub(crate) fn enter(self: &std::sync::Arc<Self>) -> ForegroundTicket {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ForegroundTicket(self.clone())
    }

    pub(crate) fn any(&self) -> bool {
        self.count.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Returns once no foreground writer waits or writes, or `false` at `deadline`.
    pub(crate) async fn idle_by(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            // Registered before the count is read: a ticket dropped in
            // between still wakes it.
            let woken = self.idle.notified();
            if !self.any() {
                return true;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return false;
            }
        }
    }
}

impl Drop for ForegroundTicket {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::testing::TestDb;
    use crate::{Backend, Store, StoreError};

    /// A background write queued first still lets a foreground write queued
    /// after it go first: a revocation never waits behind bookkeeping that
    /// had not started.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_foreground_write_goes_before_background_writes_queued_earlier() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = Store::connect(&db.url).await.expect("store");
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let holder = tokio::spawn(async move {
            s.write(async |_tx| {
                let _ = released.await;
                Ok::<_, StoreError>(())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Queued in this order, 100 ms apart, while the holder has the lock.
        let queue = |background: bool| {
            let (s, o) = (store.clone(), order.clone());
            tokio::spawn(async move {
                let record = async |_tx: &mut super::WriteTx| {
                    o.lock().expect("order").push(if background { "background" } else { "foreground" });
                    Ok::<_, StoreError>(())
                };
                if background { s.write_background(record).await } else { s.write(record).await }
            })
        };
        let background = queue(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let foreground = queue(false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).expect("holder waits");
        for task in [holder, background, foreground] {
            task.await.expect("task").expect("write");
        }
        assert_eq!(*order.lock().expect("order"), ["foreground", "background"]);
    }

    /// The WAL is checkpointed in the background: after a pause, new commits
    /// write it from its start again instead of making it longer (without the
    /// checkpointer it would grow to `CHECKPOINT_BACKSTOP` pages, and a
    /// request's commit would then copy it all).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_off_the_requests_path() {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = Store::connect(&db.url).await.expect("store");
        let path = db.url.trim_start_matches("sqlite://").split('?').next().expect("path").to_string();
        let wal = || std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
        let mut position = 0;
        let mut batch = async || {
            for _ in 0..300 {
                position += 1;
                store.next_crl_number(position).await.expect("numbered").expect("not behind");
            }
        };
        batch().await;
        let first = wal();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        batch().await;
        let second = wal();
        assert!(first > 300 * 4096, "the first batch wrote {first} bytes of WAL");
        assert!(second < first + first / 2, "the WAL grew from {first} to {second} bytes: never checkpointed");
    }
}
