//! The audit log: appended in the same transaction as the change it records,
//! and hash-chained so that an edited or deleted row is detected.

use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, FacilityId, UserId};

use crate::{Backend, Store, StoreError, WriteTx, secs};

/// The `prev_hash` of the first record.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One state change, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who acted: `user:{id}`, `cli:{os user}`, `system`, or `public:{address}`.
    pub actor: String,
    /// What was done, e.g. `certificate.issue`.
    pub action: AuditAction,
    /// What it was done to, e.g. `certificate:{serial}`.
    pub target: String,
    /// `ok`, or why it was refused.
    pub outcome: String,
    /// Further facts as a JSON object.
    pub detail: serde_json::Value,
    pub facility: Option<FacilityId>,
    pub user: Option<UserId>,
}

impl AuditEntry {
    /// A change that was made (outcome `ok`).
    pub(crate) fn ok(
        actor: impl Into<String>,
        action: AuditAction,
        target: impl Into<String>,
        detail: serde_json::Value,
        facility: Option<FacilityId>,
        user: Option<UserId>,
    ) -> Self {
        Self { actor: actor.into(), action, target: target.into(), outcome: "ok".into(), detail, facility, user }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Records checked.
    pub records: u64,
    /// The first record whose hash or link does not match, with the reason.
    pub first_break: Option<(i64, String)>,
}

/// The hashed fields of a record as text: as written, or as read back
/// (where an edited action need not be one the code knows).
struct Hashed<'a> {
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    facility: Option<i64>,
    user: Option<i64>,
}

impl<'a> From<&'a AuditEntry> for Hashed<'a> {
    fn from(e: &'a AuditEntry) -> Self {
        Self {
            actor: &e.actor,
            action: e.action.as_str(),
            target: &e.target,
            outcome: &e.outcome,
            facility: e.facility.map(|f| f.0),
            user: e.user.map(|u| u.0),
        }
    }
}

/// The hash of one record: SHA-256 over the previous hash and the record's
/// fields, each length-prefixed so that no two field lists collide.
fn chain_hash(prev: &str, id: i64, at: i64, e: Hashed<'_>, detail: &str) -> String {
    let mut h = Sha256::new();
    let facility = e.facility.map(|f| f.to_string()).unwrap_or_default();
    let user = e.user.map(|u| u.to_string()).unwrap_or_default();
    for field in
        [prev, &id.to_string(), &at.to_string(), e.actor, e.action, e.target, e.outcome, detail, &facility, &user]
    {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends entries in order inside `tx`, reading the chain's end once. On
/// PostgreSQL an advisory lock held to the end of the transaction serialises
/// appenders so that the chain never forks; on SQLite the write transaction
/// already holds the database lock.
pub(crate) async fn append_all(tx: &mut WriteTx, at: OffsetDateTime, entries: &[AuditEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    if tx.backend() == Backend::Postgres {
        // Already held by every write transaction (`Store::begin_write`);
        // re-entrant, and it keeps an append outside one from forking the chain.
        sqlx::query("select pg_advisory_xact_lock($1)").bind(crate::WRITER_LOCK).execute(&mut **tx).await?;
    }
    let last = sqlx::query("select id, hash from audit_log order by id desc limit 1").fetch_optional(&mut **tx).await?;
    let (mut prev_id, mut prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>("id")?, row.try_get::<String, _>("hash")?),
        None => (0, GENESIS.to_string()),
    };
    let at = secs(at);
    let rows: Vec<Linked<'_>> = entries
        .iter()
        .map(|entry| {
            prev_id += 1;
            let detail = entry.detail.to_string();
            let hash = chain_hash(&prev_hash, prev_id, at, Hashed::from(entry), &detail);
            Linked { id: prev_id, entry, detail, prev_hash: std::mem::replace(&mut prev_hash, hash.clone()), hash }
        })
        .collect();
    // Many rows a statement: closing a facility appends one per certificate.
    for chunk in rows.chunks(50) {
        let values: Vec<String> = (0..chunk.len()).map(|i| row_placeholders(i * 11, 11)).collect();
        let sql = format!(
            "insert into audit_log (id, at, actor, action, target, outcome, detail, facility_id, user_id, prev_hash, hash) \
             values {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.id)
                .bind(at)
                .bind(&r.entry.actor)
                .bind(r.entry.action.as_str())
                .bind(&r.entry.target)
                .bind(&r.entry.outcome)
                .bind(&r.detail)
                .bind(r.entry.facility.map(|f| f.0))
                .bind(r.entry.user.map(|u| u.0))
                .bind(&r.prev_hash)
                .bind(&r.hash);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `($b+1, …, $b+n)`: the placeholders of one row of a multi-row insert.
fn row_placeholders(b: usize, n: usize) -> String {
    let list: Vec<String> = (b + 1..=b + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

/// A record with its place in the chain, ready to insert.
struct Linked<'a> {
    id: i64,
    entry: &'a AuditEntry,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl Store {
    /// Appends one record on its own (for events with no other change, such
    /// as a refused attempt).
    pub async fn audit(&self, at: OffsetDateTime, entry: &AuditEntry) -> Result<(), StoreError> {
        self.write(async |tx| tx.audit(at, entry).await).await
    }

    /// Walks the whole chain in order. Ids must run 1, 2, 3… with no gap, each
    /// record must link to its predecessor's hash and its own hash must match
    /// its fields.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut prev = GENESIS.to_string();
        let mut expected_id = 1i64;
        let mut records = 0u64;
        // Paged by id so memory stays flat however long the log grows.
        loop {
            let rows = sqlx::query(
                "select id, at, actor, action, target, outcome, detail, facility_id, user_id, prev_hash, hash \
                 from audit_log where id >= $1 order by id limit 1000",
            )
            .bind(expected_id)
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                let (actor, action, target, outcome): (String, String, String, String) =
                    (row.try_get("actor")?, row.try_get("action")?, row.try_get("target")?, row.try_get("outcome")?);
                let entry = Hashed {
                    actor: &actor,
                    action: &action,
                    target: &target,
                    outcome: &outcome,
                    facility: row.try_get("facility_id")?,
                    user: row.try_get("user_id")?,
                };
                let detail: String = row.try_get("detail")?;
                let at: i64 = row.try_get("at")?;
                let prev_hash: String = row.try_get("prev_hash")?;
                let hash: String = row.try_get("hash")?;
                let broken = if id != expected_id {
                    Some(format!("record {expected_id} is missing"))
                } else if prev_hash != prev {
                    Some("does not link to the previous record".to_string())
                } else if chain_hash(&prev, id, at, entry, &detail) != hash {
                    Some("contents do not match the recorded hash".to_string())
                } else {
                    None
                };
                if let Some(why) = broken {
                    return Ok(AuditVerification { records, first_break: Some((id, why)) });
                }
                records += 1;
                prev = hash;
                expected_id = id + 1;
            }
        }
        Ok(AuditVerification { records, first_break: None })
    }

    /// The end of the chain and how many records it holds, read in one
    /// statement (one snapshot), for a checkpoint kept outside the database.
    /// `None` while the log is empty.
    pub async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        let row = sqlx::query(
            "select id, hash, (select count(*) from audit_log) as n from audit_log order by id desc limit 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AuditHead { id: row.try_get("id")?, hash: row.try_get("hash")?, count: row.try_get::<i64, _>("n")? })
        })
        .transpose()
    }

    /// The recorded hashes of the records `ids` that exist (absent ids are
    /// absent from the answer), to compare checkpoints with the chain.
    pub async fn audit_hashes(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!("select id, hash from audit_log where id in {}", row_placeholders(0, chunk.len()));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert(row.try_get("id")?, row.try_get("hash")?);
            }
        }
        Ok(found)
    }

    /// Records matching `filter`, oldest first (or newest first), between
    /// `filter.after_id` and `filter.before_id` (for paging), at most
    /// `filter.limit`.
    pub async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let order = if filter.newest_first { "desc" } else { "asc" };
        let action = filter.action.as_deref().unwrap_or("");
        // `certificate` matches `certificate.revoke`, `certificate.hold`…;
        // `!` escapes LIKE's wildcards the same way on both backends.
        let family = format!("{}.%", action.replace('!', "!!").replace('%', "!%").replace('_', "!_"));
        let rows = sqlx::query(&format!(
            "select id, at, actor, action, target, outcome, detail, facility_id, user_id, hash from audit_log \
             where ($1 = 0 or facility_id = $1) and ($2 = 0 or user_id = $2) and at >= $3 and at < $4 and id > $5 \
             and ($7 = 0 or id < $7) and ($8 = '' or action = $8 or action like $9 escape '!') \
             order by id {order} limit $6",
        ))
        .bind(filter.facility.map_or(0, |f| f.0))
        .bind(filter.user.map_or(0, |u| u.0))
        .bind(filter.since.map_or(i64::MIN, secs))
        .bind(filter.until.map_or(i64::MAX, secs))
        .bind(filter.after_id)
        .bind(filter.limit.clamp(1, 10_000))
        .bind(filter.before_id)
        .bind(action)
        .bind(family)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// Every record about one of `targets` (`certificate:<serial>`,
    /// `device:<id>`, `escalation:<id>`), oldest first.
    pub async fn audit_of(&self, targets: &[String]) -> Result<Vec<AuditRecord>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=targets.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "select id, at, actor, action, target, outcome, detail, facility_id, user_id, hash from audit_log \
             where target in ({}) order by id limit 10000",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for t in targets {
            q = q.bind(t);
        }
        q.fetch_all(&self.pool).await?.iter().map(audit_row).collect()
    }
}

fn audit_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: crate::instant(row.try_get("at")?)?,
        hash: row.try_get("hash")?,
        entry: AuditEntry {
            actor: row.try_get("actor")?,
            action: crate::records::text(row, "action")?,
            target: row.try_get("target")?,
            outcome: row.try_get("outcome")?,
            detail: serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            facility: row.try_get::<Option<i64>, _>("facility_id")?.map(FacilityId),
            user: row.try_get::<Option<i64>, _>("user_id")?.map(UserId),
        },
    })
}

/// The newest record of the chain and the number of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub id: i64,
    pub hash: String,
    pub count: i64,
}

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub facility: Option<FacilityId>,
    pub user: Option<UserId>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub after_id: i64,
    /// Records with a smaller id only (0: no bound).
    pub before_id: i64,
    pub limit: i64,
    /// An action (`certificate.revoke`) or a family of them (`certificate`).
    pub action: Option<String>,
    pub newest_first: bool,
}

/// One stored audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: OffsetDateTime,
    pub hash: String,
    pub entry: AuditEntry,
}
