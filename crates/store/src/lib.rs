//! The only crate that speaks SQL.
//!
//! One `Store` over sqlx's `Any` driver serves both backends: embedded SQLite
//! (the default) and PostgreSQL (several instances). Every query is written
//! once in the SQL both dialects accept (`$n` placeholders, `returning`,
//! integer Unix times, text enums); the migrations under `migrations/sqlite`
//! and `migrations/postgres` move in step. Each public operation is one
//! transaction that includes its audit record, so nothing is ever half-done.

mod applications;
pub mod audit;
mod bootstrap;
mod certificates;
mod check;
mod devices;
mod enrollment;
pub mod error;
mod escalations;
mod expiry;
mod facilities;
mod handovers;
mod holds;
mod instances;
mod lifetimes;
mod notifications;
mod records;
mod restored;
mod review;
mod settled;
mod sightings;
mod sign_in;
mod status;
mod terms;
#[cfg(feature = "testing")]
pub mod testing;
mod tickets;
mod tx;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

pub use applications::{ApplicationRecord, Approval};
pub use audit::{AuditEntry, AuditFilter, AuditHead, AuditRecord, AuditVerification};
pub use bootstrap::BootstrapInput;
pub use certificates::{CertEvent, FeedHead, StatusChange};
pub use check::Offender;
pub use devices::{DeviceOut, DeviceRecord, Once, UserWithDevices};
pub use enrollment::{NewCode, Redemption};
pub use error::{Conflict, StoreError};
pub use escalations::{EscalationRecord, Figures, NewEscalation, OpenedEscalation, PhoneCall};
pub use expiry::{ExpiringCertificate, ExpiryNotice, NoticeSubject};
pub use facilities::{FacilityChange, FacilityCounts};
pub use instances::Behind;
pub use notifications::{NotificationRecord, Target};
pub use records::{
    CertificateRecord, DeviceRef, FacilityRecord, Identity, NewCertificate, NewFacility, NewUser, SignDevice,
    UserRecord,
};
pub use restored::{Issued, Listed, Reapplied};
pub use review::UnusedDevice;
pub use sightings::{
    CertificateSightings, CrlSighting, HandshakeSighting, HeldCrl, OcspAnswer, OcspSighting, RelyingParty, Sightings,
};
pub use sign_in::SignInGate;
pub use status::FEED_CHANNEL;
pub(crate) use tx::WriteTx;
pub use users::UserChange;

/// The PostgreSQL advisory lock every write transaction takes first.
pub(crate) const WRITER_LOCK: i64 = 7_305_001;

/// The longest a write waits for the writer lock or a connection before it
/// gives up with [`StoreError::Busy`], changing nothing: a stalled
/// transaction elsewhere must not stop every write without an answer.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL selects: `postgres://` or `postgresql://`
    /// for PostgreSQL, `sqlite:` for SQLite.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::Config(format!(
                "database URL must start with sqlite: or postgres://, got {:?}",
                redact(url)
            )))
        }
    }
}

/// SQLite: pages in the WAL past which a commit checkpoints it itself. The
/// checkpointer ([`checkpointer`]) empties it every second, so that no
/// request's commit pays for copying the WAL into the database (at SQLite's
/// default of 1000 pages, one revocation in a hundred did, 5–10 ms); this
/// only bounds the WAL should the checkpointer fall behind.
const CHECKPOINT_BACKSTOP: u32 = 10_000;

/// SQLite: checkpoints the WAL every second (`passive`: it neither waits
/// for nor blocks a writer) on a connection of `pool`, until every handle
/// on the store (`alive`) is gone or the pool is closed.
async fn checkpointer(pool: AnyPool, alive: std::sync::Weak<()>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("pragma wal_checkpoint(passive)").execute(&pool).await {
            tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; retrying");
        }
    }
}

/// A SQLite pool of `connections`, in WAL mode with foreign keys enforced,
/// `secure_delete` and the `synchronous` level given.
async fn sqlite_pool(
    options: sqlx::any::AnyConnectOptions,
    connections: u32,
    synchronous: &'static str,
) -> Result<AnyPool, sqlx::Error> {
    lasting(AnyPoolOptions::new(), connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    format!(
                        "pragma journal_mode = wal; pragma synchronous = {synchronous}; \
                         pragma foreign_keys = on; pragma busy_timeout = 5000; pragma secure_delete = on; \
                         pragma wal_autocheckpoint = {CHECKPOINT_BACKSTOP};"
                    )
                    .as_str(),
                )
                .await
                .map(|_| ())
            })
        })
        .connect_with(options)
        .await
}

/// A SQLite pool of `connections` that are all opened now, by the caller,
/// and kept for as long as they work.
///
/// A connection belongs to whoever opened it: SQLite's worker thread
/// inherits the CPU priority of the thread that started it. The server
/// serves strangers on threads of a lower priority; a connection opened
/// lazily by one of their requests would then run a manager's revoke at
/// that priority (measured: five of SQLite's ten worker threads at nice +10
/// under the hostile-load benchmark, and the revoke's p50 at 80 ms). Opened
/// by [`Store::connect`] and never retired for age or idleness, they keep
/// the caller's; one that breaks is replaced by whoever needs it next.
/// (PostgreSQL's connections are still opened as needed: sixteen per
/// instance held for ever would crowd a shared server's 100 in tests. Its
/// socket is woken by the reactor of the runtime that opened it, which
/// polls it between tasks even when busy.)
fn lasting(options: AnyPoolOptions, connections: u32) -> AnyPoolOptions {
    options.max_connections(connections).min_connections(connections).idle_timeout(None).max_lifetime(None)
}

/// Opens every connection of `pool` (see [`lasting`]) from this task.
async fn open_all(pool: &AnyPool, connections: u32) -> Result<(), sqlx::Error> {
    let mut held = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        held.push(pool.acquire().await?);
    }
    Ok(())
}

/// A database URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite admits one writer at a time. Writers of this process queue here
    /// and are woken the moment the previous one commits, instead of polling
    /// SQLite's busy handler, which sleeps in steps of milliseconds.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite: the connections of writes that commit without waiting for
    /// the disk (`synchronous=normal`): background bookkeeping (relying-party
    /// counts may lose their last second to a power cut) and CRL numbers,
    /// which leave the disk to the revocations. The WAL is written in order,
    /// so the next commit of the main pool syncs them too.
    background: Option<AnyPool>,
    /// SQLite: foreground writers, which background writes let go first.
    foreground: std::sync::Arc<tx::Foreground>,
    /// Held by every handle: the checkpointer stops once the last is dropped.
    _alive: std::sync::Arc<()>,
    /// PostgreSQL: writers of this process that may hold a pool connection
    /// at once. Writers queue on the one writer lock anyway; without this
    /// bound, a queue behind a stalled transaction would hold every
    /// connection and starve the readers (caller authentication, the feed).
    writer_permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Pool connections of one instance on SQLite: foreground, and background
/// (commits that do not wait for the disk).
const SQLITE_CONNECTIONS: u32 = 8;
const SQLITE_BACKGROUND_CONNECTIONS: u32 = 2;

/// Pool connections of one instance (PostgreSQL), and how many of them
/// writers may hold.
const PG_CONNECTIONS: u32 = 16;
const PG_WRITER_CONNECTIONS: usize = 4;

impl Store {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL`, so that a commit is on
    /// disk before the call that made it returns (a revocation must survive a
    /// power cut), with foreign keys enforced, and with `secure_delete`, so
    /// that personal data deleted (a purged application) is overwritten in
    /// the file rather than left in a free page.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options =
            AnyConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("{}: {e}", redact(url))))?;
        let pool = match backend {
            Backend::Sqlite => sqlite_pool(options.clone(), SQLITE_CONNECTIONS, "full").await,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(PG_CONNECTIONS)
                    .acquire_timeout(WRITE_WAIT)
                    // Bounds on every wait the server can see: a statement
                    // that runs away, a transaction left open by a stalled
                    // or dead client (its locks go with it), and a peer that
                    // vanished without closing the connection.
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "set statement_timeout = '60s'; set idle_in_transaction_session_timeout = '30s'; \
                                 set tcp_keepalives_idle = 30; set tcp_keepalives_interval = 10; \
                                 set tcp_keepalives_count = 3;",
                            )
                            .await
                            .map(|_| ())
                        })
                    })
                    .connect_with(options.clone())
                    .await
            }
        }
        .map_err(|e| StoreError::Connect { url: redact(url), source: e })?;
        if backend == Backend::Sqlite {
            open_all(&pool, SQLITE_CONNECTIONS)
                .await
                .map_err(|e| StoreError::Connect { url: redact(url), source: e })?;
        }
        let background = match backend {
            Backend::Sqlite => {
                let background = sqlite_pool(options, SQLITE_BACKGROUND_CONNECTIONS, "normal").await;
                let background = match background {
                    Ok(pool) => open_all(&pool, SQLITE_BACKGROUND_CONNECTIONS).await.map(|()| pool),
                    Err(e) => Err(e),
                };
                Some(background.map_err(|e| StoreError::Connect { url: redact(url), source: e })?)
            }
            Backend::Postgres => None,
        };
        let writer_permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PG_WRITER_CONNECTIONS));
        let alive = std::sync::Arc::new(());
        if let Some(background) = &background {
            tokio::spawn(checkpointer(background.clone(), std::sync::Arc::downgrade(&alive)));
        }
        let store = Self {
            pool,
            background,
            backend,
            writer: Default::default(),
            foreground: Default::default(),
            writer_permits,
            _alive: alive,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(background) = &self.background {
            background.close().await;
        }
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../../migrations/postgres"),
        };
        // `run` starts with `create table if not exists _sqlx_migrations`,
        // which a service role that owns nothing (docs/operations/audit-log.md: the audit log's
        // owner is another role) may not even attempt; when every migration
        // is applied with its checksum, there is nothing to run.
        if self.all_applied(&migrator).await {
            return Ok(());
        }
        migrator.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    /// Whether the database holds exactly `migrator`'s migrations, each
    /// applied successfully with the same checksum (anything else, including
    /// no bookkeeping table yet, is left to `Migrator::run` to do or refuse).
    async fn all_applied(&self, migrator: &sqlx::migrate::Migrator) -> bool {
        let Ok(rows) =
            sqlx::query("select version, checksum, success from _sqlx_migrations").fetch_all(&self.pool).await
        else {
            return false;
        };
        let mut applied = std::collections::HashMap::new();
        for row in &rows {
            match (row.try_get::<i64, _>("version"), row.try_get::<Vec<u8>, _>("checksum"), row.try_get("success")) {
                (Ok(v), Ok(c), Ok(true)) => applied.insert(v, c),
                _ => return false,
            };
        }
        applied.len() == migrator.iter().count()
            && migrator.iter().all(|m| applied.get(&m.version).is_some_and(|c| c.as_slice() == &*m.checksum))
    }

    /// Starts a write transaction. Every write transaction, on either
    /// backend, begins by taking the one writer lock, and takes no other lock
    /// before it: that is the whole lock order, so no two writers can
    /// deadlock, and each reads the state every earlier writer committed.
    ///
    /// * SQLite: `begin immediate` takes the database's write lock at once, so
    ///   two writers queue instead of one failing with "database is locked"
    ///   when it upgrades from reading to writing.
    /// * PostgreSQL: `pg_advisory_xact_lock(WRITER_LOCK)` as the first
    ///   statement, held to commit. At read committed every later statement
    ///   sees all that earlier writers committed, so a guarded UPDATE never
    ///   loses to a transaction it could not see, feed ids become visible in
    ///   increasing order, and the audit chain never forks.
    ///
    /// `synced: false` (SQLite) commits without waiting for the disk, for a
    /// write that a power cut may take back without harm (see
    /// [`Self::next_crl_number`]); the next synced commit syncs it too.
    pub(crate) async fn begin_write(&self, synced: bool) -> Result<WriteTx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let ticket = self.foreground.enter();
                let slot = tokio::time::timeout(WRITE_WAIT, self.writer.clone().lock_owned())
                    .await
                    .map_err(|_| StoreError::Busy)?;
                let pool = if synced { &self.pool } else { self.background.as_ref().unwrap_or(&self.pool) };
                let tx = pool.begin_with("begin immediate").await?;
                WriteTx { tx, _slot: Some(slot), _foreground: Some(ticket), _permit: None, backend: self.backend }
            }
            Backend::Postgres => {
                let deadline = tokio::time::Instant::now() + WRITE_WAIT;
                let permit = tokio::time::timeout_at(deadline, self.writer_permits.clone().acquire_owned())
                    .await
                    .map_err(|_| StoreError::Busy)?
                    .map_err(|_| StoreError::Busy)?;
                let mut tx = self.pool.begin().await?;
                // One round trip: the bound is set (for this transaction)
                // in the FROM clause, before the lock is waited for.
                sqlx::query(
                    "select pg_advisory_xact_lock($1) from (select set_config('lock_timeout', $2, true)) as bound",
                )
                .bind(WRITER_LOCK)
                .bind(format!(
                    "{}ms",
                    deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis().max(1)
                ))
                .execute(&mut *tx)
                .await?;
                WriteTx { tx, _slot: None, _foreground: None, _permit: Some(permit), backend: self.backend }
            }
        })
    }

    /// SQLite: the writer lock for a background write, taken when no
    /// foreground writer waits for it.
    async fn begin_background(&self) -> Result<WriteTx, StoreError> {
        let deadline = tokio::time::Instant::now() + WRITE_WAIT;
        loop {
            if !self.foreground.idle_by(deadline).await {
                return Err(StoreError::Busy);
            }
            let slot = tokio::time::timeout_at(deadline, self.writer.clone().lock_owned())
                .await
                .map_err(|_| StoreError::Busy)?;
            // A foreground writer that queued while this one did goes first.
            if !self.foreground.any() {
                let tx = self.background.as_ref().unwrap_or(&self.pool).begin_with("begin immediate").await?;
                return Ok(WriteTx { tx, _slot: Some(slot), _foreground: None, _permit: None, backend: self.backend });
            }
        }
    }

    /// Runs `work` in a write transaction and commits what it did; an error
    /// from `work` rolls everything back. A refusal that must still leave a
    /// trace (a counted wrong code) is returned as `Ok` of the refusal.
    pub(crate) async fn write<T, E>(&self, work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_in(self.begin_write(true).await?, work).await
    }

    /// [`Self::write`], committed without waiting for the disk on SQLite
    /// (`begin_write`'s `synced`).
    pub(crate) async fn write_unsynced<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_in(self.begin_write(false).await?, work).await
    }

    /// Runs `work` in a transaction of its own that does not take the writer
    /// lock on PostgreSQL: for bookkeeping that touches no certificate, feed
    /// row or audit record (delivery records, heartbeats), so that it never
    /// queues a revocation behind it. On SQLite, which has one writer, it is a
    /// write like any other.
    pub(crate) async fn write_aside<T, E>(&self, work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.backend == Backend::Sqlite {
            return self.write(work).await;
        }
        self.write_in(self.begin_aside().await?, work).await
    }

    /// [`Self::write_aside`] for bookkeeping that may wait (relying-party
    /// counts, pruning): on SQLite it takes the writer lock only when no other
    /// write waits for it ([`tx::Foreground`]), and gives up with `Busy` after
    /// [`WRITE_WAIT`] of them; what it would have written is tried again.
    pub(crate) async fn write_background<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = match self.backend {
            Backend::Sqlite => self.begin_background().await?,
            Backend::Postgres => self.begin_aside().await?,
        };
        self.write_in(tx, work).await
    }

    async fn begin_aside(&self) -> Result<WriteTx, StoreError> {
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _slot: None, _foreground: None, _permit: None, backend: self.backend })
    }

    async fn write_in<T, E>(
        &self,
        mut tx: WriteTx,
        work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A consistent copy of a SQLite database at `path` (a new file), taken
    /// while the service runs: `VACUUM INTO` reads in one transaction, so the
    /// copy is the database as of one commit. PostgreSQL databases are copied
    /// with `pg_dump` instead.
    pub async fn snapshot_into(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported("a PostgreSQL database is backed up with pg_dump"));
        }
        let path = path.to_str().ok_or_else(|| StoreError::Corrupt(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("vacuum into $1").bind(path).execute(&self.pool).await?;
        Ok(())
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The time by which due work (scheduled retirements, SLAs, hold limits)
    /// is decided: the database's clock on PostgreSQL, so that instances whose
    /// clocks disagree still agree on what is due; `local` on SQLite, which
    /// only one instance uses.
    pub async fn due_clock(&self, local: time::OffsetDateTime) -> Result<time::OffsetDateTime, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(local),
            Backend::Postgres => instant(
                sqlx::query("select cast(floor(extract(epoch from clock_timestamp())) as bigint) as now")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("now")?,
            ),
        }
    }
}

/// Unix seconds of an instant, as stored.
pub(crate) fn secs(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// The instant of stored Unix seconds.
pub(crate) fn instant(s: i64) -> Result<time::OffsetDateTime, StoreError> {
    time::OffsetDateTime::from_unix_timestamp(s).map_err(|e| StoreError::Corrupt(format!("time {s}: {e}")))
}
