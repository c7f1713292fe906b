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
