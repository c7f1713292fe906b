//! Checkpoints of the audit chain's head, kept outside the database.
//!
//! The hash chain detects an edited or removed record in the middle of the
//! log, but a log cut short (`TRUNCATE`, or its newest records deleted) is
//! still a valid chain. So the service writes, at intervals and at shutdown,
//! the id, hash and record count of the chain's end — MACed with a key the
//! database never sees — to `<data-dir>/audit-checkpoints.jsonl` and to its
//! log (the system journal). `connect-pki audit verify` then requires every
//! checkpoint's record to be in the chain with the same hash, and the log to
//! hold at least as many records as the newest checkpoint counted.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use aws_lc_rs::hmac;
use connect_pki_store::{AuditHead, Store};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CheckpointSettings;
use crate::datadir::{create_key_file, load_key_file, load_or_create_key_file};
use connect_pki_ra::Ra;

/// The checkpoint file in the data directory, one JSON object a line.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";
/// The MAC key in the data directory (0600).
pub(crate) const KEY_FILE: &str = "audit-checkpoint.key";
/// Separates these MACs from any other use of an HMAC key.
const MAC_CONTEXT: &[u8] = b"connect-pki audit checkpoint v1";

/// One checkpoint, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The newest record's id.
    pub id: i64,
    /// Its chain hash.
    pub(crate) hash: String,
    /// Records in the log.
    pub count: i64,
    /// When it was taken, RFC 3339.
    pub at: String,
    /// HMAC-SHA256 over the fields above, hex.
    pub(crate) mac: String,
}

/// The checkpoint MAC key.
///
/// A random key of its own rather than one derived from the CA passphrase:
/// HMAC is fast, so checkpoints (which also go to the journal) would let
/// anyone who reads them test guesses of the passphrase far faster than the
/// scrypt that protects the CA keys allows. Someone with only database access
/// has neither, and cannot forge a checkpoint.
pub(crate) struct CheckpointKey(hmac::Key);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(***)")
    }
}

impl CheckpointKey {
    /// Writes a new random key into `dir` (refuses to replace one).
    pub(crate) fn create(dir: &Path) -> anyhow::Result<()> {
        create_key_file(&dir.join(KEY_FILE))
    }

    /// The key in `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self(load_key_file(&dir.join(KEY_FILE), "the audit checkpoint key")?))
    }

    /// The key in `dir`, made first if the directory has none (data
    /// directories initialised before checkpoints existed).
    pub(crate) fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self(load_or_create_key_file(&dir.join(KEY_FILE), "the audit checkpoint key")?))
    }

    fn message(id: i64, hash: &str, count: i64, at: &str) -> Vec<u8> {
        let mut m = MAC_CONTEXT.to_vec();
        // Length-prefixed, as the chain hash, so that no two field lists collide.
        for field in [&id.to_string(), hash, &count.to_string(), at] {
            m.extend_from_slice(&(field.len() as u64).to_be_bytes());
            m.extend_from_slice(field.as_bytes());
        }
        m
    }

    /// A checkpoint of `head` taken at `at`.
    pub(crate) fn sign(&self, head: &AuditHead, at: time::OffsetDateTime) -> anyhow::Result<Checkpoint> {
        let at = at.format(&time::format_description::well_known::Rfc3339)?;
        let tag = hmac::sign(&self.0, &Self::message(head.id, &head.hash, head.count, &at));
        Ok(Checkpoint { id: head.id, hash: head.hash.clone(), count: head.count, at, mac: hex::encode(tag.as_ref()) })
    }

    /// Whether `c`'s MAC is ours over its fields (compared in constant time).
    pub(crate) fn verifies(&self, c: &Checkpoint) -> bool {
        hex::decode(&c.mac)
            .is_ok_and(|tag| hmac::verify(&self.0, &Self::message(c.id, &c.hash, c.count, &c.at), &tag).is_ok())
    }
}

/// Appends `c` to the checkpoint file in `dir` (created 0600) and waits until
/// it is on disk.
pub(crate) fn append(dir: &Path, c: &Checkpoint) -> anyhow::Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    let mut line = serde_json::to_string(c)?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // One write of one line: instances sharing the file never interleave inside a line.
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Every checkpoint in `dir`'s file, with its line number, oldest first;
/// `None` if there is no file.
pub(crate) fn read_all(dir: &Path) -> anyhow::Result<Option<Vec<(usize, Checkpoint)>>> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let c = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{} line {} is not a checkpoint: {e}", path.display(), i + 1))?;
        out.push((i + 1, c));
    }
    Ok(Some(out))
}

/// What `audit verify` found about the checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointCheck {
    /// No checkpoint file: nothing to compare with, so a log cut short
    /// cannot be told from a whole one (a failure, unless no `serve` ever
    /// ran on the data directory).
    NoFile(PathBuf),
    /// Every checkpoint's MAC verifies and its record is in the chain.
    Intact { checkpoints: usize, newest: Option<Checkpoint> },
    /// What is wrong, naming the checkpoint.
    Broken(String),
}

/// Compares the checkpoints in `dir` with the audit log in `store`: every
/// MAC must verify, every checkpoint's record must be in the log with the
/// same hash, and the log must hold at least as many records as any
/// checkpoint counted. Checking them all, not only the newest, also catches a
/// log cut short and grown again since.
///
/// With no `serve` running on `dir`, the newest checkpoint (the one taken at
/// shutdown) must also cover the whole log: records past it were written
/// with no checkpoint — a restore that put back an older checkpoint file, or
/// records added behind the service's back.
pub async fn verify(store: &Store, dir: &Path) -> anyhow::Result<CheckpointCheck> {
    let served = crate::datadir::DataDir::new(dir).is_served()?;
    let Some(all) = read_all(dir)? else {
        return Ok(CheckpointCheck::NoFile(dir.join(CHECKPOINT_FILE)));
    };
    if all.is_empty() {
        return Ok(CheckpointCheck::Intact { checkpoints: 0, newest: None });
    }
    let key = CheckpointKey::load(dir)?;
    if let Some((line, c)) = all.iter().find(|(_, c)| !key.verifies(c)) {
        return Ok(CheckpointCheck::Broken(format!(
            "{} has a MAC that does not verify: the checkpoint was forged or altered",
            name(*line, c)
        )));
    }
    let ids: Vec<i64> = all.iter().map(|(_, c)| c.id).collect();
    let hashes = store.audit_hashes(&ids).await?;
    let count = store.audit_head().await?.map_or(0, |h| h.count);
    // The newest problem first: it tells how far the log was cut.
    let mut problem = all.iter().rev().find_map(|(line, c)| mismatch(&hashes, count, *line, c));
    if let (None, false, Some((line, newest))) = (&problem, served, all.iter().max_by_key(|(_, c)| c.count))
        && newest.count < count
    {
        problem = Some(format!(
            "{} is the newest, and the log holds {count} records: {} were written after it with no \
             checkpoint, while no service ran (an older checkpoint file put back, or records added behind \
             the service's back)",
            name(*line, newest),
            count - newest.count
        ));
    }
    Ok(match problem {
        Some(why) => CheckpointCheck::Broken(why),
        None => CheckpointCheck::Intact {
            checkpoints: all.len(),
            newest: all.iter().map(|(_, c)| c).max_by_key(|c| c.id).cloned(),
        },
    })
}

/// Why checkpoint `c` does not match the log, if it does not.
fn mismatch(hashes: &HashMap<i64, String>, count: i64, line: usize, c: &Checkpoint) -> Option<String> {
    match hashes.get(&c.id) {
        None => Some(format!(
            "{} names record {}, which the log no longer holds (it holds {count} records): \
             the log was truncated or its newest records deleted",
            name(line, c),
            c.id
        )),
        Some(h) if *h != c.hash => Some(format!(
            "{}: record {} has hash {h}, the checkpoint recorded {}: the log was rewritten",
            name(line, c),
            c.id,
            c.hash
        )),
        Some(_) if count < c.count => {
            Some(format!("{} counted {} records, the log holds {count}: records were deleted", name(line, c), c.count))
        }
        Some(_) => None,
    }
}

fn name(line: usize, c: &Checkpoint) -> String {
    format!("checkpoint of {} ({CHECKPOINT_FILE} line {line}, record {}, {} records)", c.at, c.id, c.count)
}

/// Starts the checkpoint worker (nothing when `settings` is `None`). It
/// checkpoints the head at start and every `settings.every` when it moved,
/// until `shutdown`; the last checkpoint is [`at_shutdown`]'s, taken once the
/// listeners have stopped.
pub(crate) fn spawn(
    state: Ra,
    settings: Option<CheckpointSettings>,
    shutdown: CancellationToken,
) -> JoinHandle<Option<Checkpointer>> {
    tokio::spawn(async move {
        let settings = settings?;
        let mut c = match Checkpointer::open(&settings.dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "audit checkpoints disabled");
                return None;
            }
        };
        c.check_start(&state.store).await;
        loop {
            c.tick(&state).await;
            tokio::select! {
                () = shutdown.cancelled() => return Some(c),
                () = tokio::time::sleep(settings.every) => {},
            }
        }
    })
}

/// The final checkpoint, after everything else stopped writing.
pub(crate) async fn at_shutdown(worker: JoinHandle<Option<Checkpointer>>, state: &Ra) {
    if let Ok(Some(mut c)) = worker.await {
        c.tick(state).await;
    }
}

/// The worker's state: the key and the last head it wrote.
pub(crate) struct Checkpointer {
    dir: PathBuf,
    key: CheckpointKey,
    last: Option<(i64, String)>,
}

impl Checkpointer {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let key = CheckpointKey::load_or_create(dir)?;
        let last = read_all(dir)?.and_then(|all| all.last().map(|(_, c)| (c.id, c.hash.clone())));
        Ok(Self { dir: dir.to_path_buf(), key, last })
    }

    /// Says loudly at start when the database no longer matches the
    /// checkpoints (`audit verify` tells the details); the service still runs.
    async fn check_start(&self, store: &Store) {
        match verify(store, &self.dir).await {
            Ok(CheckpointCheck::Broken(why)) => tracing::error!(%why, "the audit log does not match its checkpoints"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot compare the audit log with its checkpoints"),
        }
    }

    /// Writes a checkpoint if the head moved since the last one.
    async fn tick(&mut self, state: &Ra) {
        let head = match state.store.audit_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit log's head for a checkpoint; retrying");
                return;
            }
        };
        if self.last.as_ref().is_some_and(|(id, hash)| *id == head.id && *hash == head.hash) {
            return;
        }
        let written = self.key.sign(&head, state.clock.now()).and_then(|c| append(&self.dir, &c).map(|()| c));
        match written {
            Ok(c) => {
                tracing::info!(id = c.id, hash = %c.hash, count = c.count, at = %c.at, mac = %c.mac, "audit checkpoint");
                self.last = Some((c.id, c.hash));
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot write an audit checkpoint; retrying"),
        }
    }
}
