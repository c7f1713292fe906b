//! Who relies on us (`rp_ocsp`, `rp_crl`) and when a certificate was last
//! used on our listener (`cert_handshakes`): counts the responder gathered in
//! memory, added in one transaction per batch, and read back for the
//! relying-party list, a certificate's use and the incident record.
//!
//! Every merge is commutative (sums, earliest, latest), so instances that
//! flush their own batches into one database in any order end at the same
//! rows.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Store, StoreError, instant, secs};

/// What the responder answered about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspAnswer {
    Good,
    Revoked,
    Unknown,
}

impl OcspAnswer {
    pub const fn as_str(self) -> &'static str {
        match self {
            OcspAnswer::Good => "good",
            OcspAnswer::Revoked => "revoked",
            OcspAnswer::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "good" => OcspAnswer::Good,
            "revoked" => OcspAnswer::Revoked,
            "unknown" => OcspAnswer::Unknown,
            other => return Err(StoreError::Corrupt(format!("OCSP answer {other:?}"))),
        })
    }
}

/// One relying party's OCSP questions about one certificate (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspSighting {
    pub party: String,
    pub serial: String,
    pub ca_generation: i64,
    pub queries: i64,
    pub last_at: i64,
    pub last_answer: OcspAnswer,
    pub last_good_at: Option<i64>,
    pub first_revoked_at: Option<i64>,
    pub last_revoked_at: Option<i64>,
}

/// One relying party's downloads of one CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSighting {
    pub party: String,
    pub ca_generation: i64,
    pub crl_number: i64,
    pub this_update: i64,
    pub downloads: i64,
    pub first_at: i64,
    pub last_at: i64,
}

/// One certificate's handshakes on our listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeSighting {
    pub serial: String,
    pub ok: i64,
    pub last_ok_at: Option<i64>,
    pub last_ok_from: Option<String>,
    pub refused: i64,
    pub first_refused_at: Option<i64>,
    pub last_refused_at: Option<i64>,
}

/// A batch of counts, as the responder drains them.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    pub ocsp: Vec<OcspSighting>,
    pub crl: Vec<CrlSighting>,
    pub handshakes: Vec<HandshakeSighting>,
}

impl Sightings {
    pub fn len(&self) -> usize {
        self.ocsp.len() + self.crl.len() + self.handshakes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A relying party: what it last asked, and whether it could still accept
/// a revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub party: String,
    pub ocsp_queries: i64,
    pub last_ocsp_at: Option<OffsetDateTime>,
    /// Per issuing CA generation it downloaded CRLs of: the newest CRL it holds.
    pub crls: Vec<HeldCrl>,
}

/// The newest CRL of one CA a relying party downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCrl {
    pub ca_generation: i64,
    pub crl_number: i64,
    pub this_update: OffsetDateTime,
    pub last_download_at: OffsetDateTime,
    /// The newest revocation of that CA's certificates, when it came after
    /// this CRL: the party would still accept that certificate.
    pub missing_revocation_at: Option<OffsetDateTime>,
}

/// Everything recorded about one certificate's use and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateSightings {
    pub handshakes: Option<HandshakeSighting>,
    /// Per relying party, newest first.
    pub ocsp: Vec<OcspSighting>,
    /// CRL downloads of the certificate's CA, oldest first.
    pub crl: Vec<CrlSighting>,
    /// Per relying party, the newest CRL of the certificate's CA it had
    /// downloaded when the certificate was revoked (made before it, so not
    /// listing it): what it could still go by.
    pub held_crl: Vec<CrlSighting>,
}

/// `max` of two nullable times that keeps a value when the other is null
/// (the same SQL on both backends: neither `max` nor `greatest` agrees).
fn later(col: &str, table: &str) -> String {
    format!(
        "coalesce(case when excluded.{col} > {table}.{col} then excluded.{col} else {table}.{col} end, \
         excluded.{col}, {table}.{col})"
    )
}

fn earlier(col: &str, table: &str) -> String {
    format!(
        "coalesce(case when excluded.{col} < {table}.{col} then excluded.{col} else {table}.{col} end, \
         excluded.{col}, {table}.{col})"
    )
}

/// Rows per statement: one round trip for many, far below either backend's
/// limit on parameters (9 × 200 = 1 800).
const ROWS: usize = 200;

/// `insert into <table_cols> values (…), (…) <conflict>` for `rows` rows of
/// `cols` parameters. A batch holds each key once, as one statement must.
fn upsert(table_cols: &str, cols: usize, rows: usize, conflict: &str) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    format!("insert into {table_cols} values {} {conflict}", values.join(", "))
}

/// How a batch row merges into a stored one: sums, the earliest and the
/// latest times, and the answer or address of the latest.
fn ocsp_conflict() -> String {
    format!(
        "on conflict (party, serial) do update set queries = rp_ocsp.queries + excluded.queries, \
         last_answer = case when excluded.last_at >= rp_ocsp.last_at then excluded.last_answer \
         else rp_ocsp.last_answer end, last_at = {}, last_good_at = {}, first_revoked_at = {}, \
         last_revoked_at = {}",
        later("last_at", "rp_ocsp"),
        later("last_good_at", "rp_ocsp"),
        earlier("first_revoked_at", "rp_ocsp"),
        later("last_revoked_at", "rp_ocsp"),
    )
}

fn crl_conflict() -> String {
    format!(
        "on conflict (party, ca_generation, crl_number) do update set \
         downloads = rp_crl.downloads + excluded.downloads, first_at = {}, last_at = {}",
        earlier("first_at", "rp_crl"),
        later("last_at", "rp_crl"),
    )
}

fn handshake_conflict() -> String {
    format!(
        "on conflict (serial) do update set ok_count = cert_handshakes.ok_count + excluded.ok_count, \
         last_ok_from = case when excluded.last_ok_at is not null and (cert_handshakes.last_ok_at is null \
         or excluded.last_ok_at >= cert_handshakes.last_ok_at) then excluded.last_ok_from \
         else cert_handshakes.last_ok_from end, last_ok_at = {}, \
         refused_count = cert_handshakes.refused_count + excluded.refused_count, \
         first_refused_at = {}, last_refused_at = {}",
        later("last_ok_at", "cert_handshakes"),
        earlier("first_refused_at", "cert_handshakes"),
        later("last_refused_at", "cert_handshakes"),
    )
}

/// Rows deleted per transaction when pruning.
const PRUNE_BATCH: i64 = 1_000;

impl Store {
    /// Adds a batch of counts, in one transaction, [`ROWS`] rows a statement.
    pub async fn record_sightings(&self, batch: &Sightings) -> Result<(), StoreError> {
        let (ocsp_conflict, crl_conflict, handshake_conflict) = (ocsp_conflict(), crl_conflict(), handshake_conflict());
        self.write_background(async |tx| {
            for rows in batch.ocsp.chunks(ROWS) {
                let sql = upsert(
                    "rp_ocsp (party, serial, ca_generation, queries, last_at, last_answer, last_good_at, \
                     first_revoked_at, last_revoked_at)",
                    9,
                    rows.len(),
                    &ocsp_conflict,
                );
                let mut q = sqlx::query(&sql);
                for s in rows {
                    q = q
                        .bind(&s.party)
                        .bind(&s.serial)
                        .bind(s.ca_generation)
                        .bind(s.queries)
                        .bind(s.last_at)
                        .bind(s.last_answer.as_str())
                        .bind(s.last_good_at)
                        .bind(s.first_revoked_at)
                        .bind(s.last_revoked_at);
                }
                q.execute(&mut **tx).await?;
            }
            for rows in batch.crl.chunks(ROWS) {
                let sql = upsert(
                    "rp_crl (party, ca_generation, crl_number, this_update, downloads, first_at, last_at)",
                    7,
                    rows.len(),
                    &crl_conflict,
                );
                let mut q = sqlx::query(&sql);
                for s in rows {
                    q = q
                        .bind(&s.party)
                        .bind(s.ca_generation)
                        .bind(s.crl_number)
                        .bind(s.this_update)
                        .bind(s.downloads)
                        .bind(s.first_at)
                        .bind(s.last_at);
                }
                q.execute(&mut **tx).await?;
            }
            for rows in batch.handshakes.chunks(ROWS) {
                let sql = upsert(
                    "cert_handshakes (serial, ok_count, last_ok_at, last_ok_from, refused_count, first_refused_at, \
                     last_refused_at)",
                    7,
                    rows.len(),
                    &handshake_conflict,
                );
                let mut q = sqlx::query(&sql);
                for s in rows {
                    q = q
                        .bind(&s.serial)
                        .bind(s.ok)
                        .bind(s.last_ok_at)
                        .bind(&s.last_ok_from)
                        .bind(s.refused)
                        .bind(s.first_refused_at)
                        .bind(s.last_refused_at);
                }
                q.execute(&mut **tx).await?;
            }
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Every relying party seen, by name, with its newest CRL per CA and
    /// whether that CRL predates the newest revocation of the CA's
    /// certificates.
    pub async fn relying_parties(&self) -> Result<Vec<RelyingParty>, StoreError> {
        let ocsp = sqlx::query(
            "select party, cast(sum(queries) as bigint) as queries, max(last_at) as last_at from rp_ocsp group by party",
        )
        .fetch_all(&self.pool)
        .await?;
        // The newest CRL number each party holds, per CA.
        let crl = sqlx::query(
            "select c.party, c.ca_generation, c.crl_number, c.this_update, c.last_at from rp_crl c \
             where c.crl_number = (select max(n.crl_number) from rp_crl n \
             where n.party = c.party and n.ca_generation = c.ca_generation)",
        )
        .fetch_all(&self.pool)
        .await?;
        let newest = sqlx::query(
            "select cast(ca_generation as bigint) as ca_generation, max(revoked_at) as at from certificates \
             where revoked_at is not null group by ca_generation",
        )
        .fetch_all(&self.pool)
        .await?;
        let newest: Vec<(i64, i64)> = newest
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("ca_generation")?, r.try_get::<i64, _>("at")?)))
            .collect::<Result<_, StoreError>>()?;
        let mut parties: std::collections::BTreeMap<String, RelyingParty> = Default::default();
        for r in &ocsp {
            let party: String = r.try_get("party")?;
            parties.insert(
                party.clone(),
                RelyingParty {
                    party,
                    ocsp_queries: r.try_get("queries")?,
                    last_ocsp_at: Some(instant(r.try_get("last_at")?)?),
                    crls: Vec::new(),
                },
            );
        }
        for r in &crl {
            let party: String = r.try_get("party")?;
            let ca: i64 = r.try_get("ca_generation")?;
            let this_update: i64 = r.try_get("this_update")?;
            let missing = newest.iter().find(|(g, at)| *g == ca && *at > this_update).map(|(_, at)| *at);
            let entry = parties.entry(party.clone()).or_insert_with(|| RelyingParty {
                party,
                ocsp_queries: 0,
                last_ocsp_at: None,
                crls: Vec::new(),
            });
            entry.crls.push(HeldCrl {
                ca_generation: ca,
                crl_number: r.try_get("crl_number")?,
                this_update: instant(this_update)?,
                last_download_at: instant(r.try_get("last_at")?)?,
                missing_revocation_at: missing.map(instant).transpose()?,
            });
        }
        Ok(parties.into_values().collect())
    }

    /// What was recorded about the certificate `serial` (lowercase hex):
    /// its handshakes, every relying party's OCSP questions about it, and
    /// the downloads of its CA's CRLs issued from `crl_since` on (the CRLs
    /// that list it, given its revocation time; `None`: none).
    pub async fn certificate_sightings(
        &self,
        serial: &str,
        crl_since: Option<OffsetDateTime>,
    ) -> Result<CertificateSightings, StoreError> {
        let handshakes = sqlx::query("select * from cert_handshakes where serial = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| handshake(&r))
            .transpose()?;
        let ocsp = sqlx::query("select * from rp_ocsp where serial = $1 order by last_at desc, party")
            .bind(serial)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(ocsp_row)
            .collect::<Result<_, _>>()?;
        let crl = match crl_since {
            None => Vec::new(),
            Some(since) => sqlx::query(
                "select * from rp_crl where ca_generation = \
                 (select ca_generation from certificates where serial = $1) and this_update >= $2 \
                 order by first_at, party",
            )
            .bind(serial)
            .bind(secs(since))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(crl_row)
            .collect::<Result<_, _>>()?,
        };
        let held_crl = match crl_since {
            None => Vec::new(),
            Some(at) => self.held_crls(serial, at).await?,
        };
        Ok(CertificateSightings { handshakes, ocsp, crl, held_crl })
    }

    /// Per party, the newest CRL of `serial`'s CA made and downloaded
    /// before `at`.
    async fn held_crls(&self, serial: &str, at: OffsetDateTime) -> Result<Vec<CrlSighting>, StoreError> {
        sqlx::query(
            "select * from rp_crl r where r.ca_generation = \
             (select ca_generation from certificates where serial = $1) and r.this_update = \
             (select max(h.this_update) from rp_crl h where h.party = r.party and h.ca_generation = r.ca_generation \
              and h.this_update < $2 and h.first_at <= $2) \
             order by r.party",
        )
        .bind(serial)
        .bind(secs(at))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(crl_row)
        .collect()
    }

    /// Deletes what was last seen before `before`, [`PRUNE_BATCH`] rows a
    /// transaction, so that a large backlog never holds a write open for
    /// long; returns how many rows went.
    pub async fn prune_sightings(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let at = secs(before);
        let mut n = 0;
        for (table, key, old) in [
            ("rp_ocsp", "party, serial", "last_at < $1"),
            ("rp_crl", "party, ca_generation, crl_number", "last_at < $1"),
            ("cert_handshakes", "serial", "coalesce(last_ok_at, 0) < $1 and coalesce(last_refused_at, 0) < $1"),
        ] {
            let sql = format!("delete from {table} where ({key}) in (select {key} from {table} where {old} limit $2)");
            loop {
                let gone = self
                    .write_background(async |tx| {
                        Ok::<_, StoreError>(
                            sqlx::query(&sql).bind(at).bind(PRUNE_BATCH).execute(&mut **tx).await?.rows_affected(),
                        )
                    })
                    .await?;
                n += gone;
                if gone < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(n)
    }

    /// Deletes the rows of clients no configured name covers (their party
    /// is their network, `192.0.2.0/24` or `2001:db8::/64`) past the `cap`
    /// most recently asked, per table; returns how many went. A count (a
    /// read, no lock) comes first, so that a table within its cap costs no
    /// write.
    pub async fn trim_unnamed_sightings(&self, cap: u64) -> Result<u64, StoreError> {
        const UNNAMED: &str = "party like '%/24' or party like '%/64'";
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut n = 0;
        for (table, key) in [("rp_ocsp", "party, serial"), ("rp_crl", "party, ca_generation, crl_number")] {
            let count: i64 = sqlx::query(&format!("select count(*) as n from {table} where {UNNAMED}"))
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            if count <= cap {
                continue;
            }
            let sql = format!(
                "delete from {table} where ({key}) in (select {key} from {table} \
                 where {UNNAMED} order by last_at desc limit $1 offset $2)"
            );
            n += self
                .write_background(async |tx| {
                    Ok::<_, StoreError>(
                        sqlx::query(&sql).bind(i64::MAX).bind(cap).execute(&mut **tx).await?.rows_affected(),
                    )
                })
                .await?;
        }
        Ok(n)
    }
}

fn ocsp_row(r: &AnyRow) -> Result<OcspSighting, StoreError> {
    Ok(OcspSighting {
        party: r.try_get("party")?,
        serial: r.try_get("serial")?,
        ca_generation: r.try_get("ca_generation")?,
        queries: r.try_get("queries")?,
        last_at: r.try_get("last_at")?,
        last_answer: OcspAnswer::parse(&r.try_get::<String, _>("last_answer")?)?,
        last_good_at: r.try_get("last_good_at")?,
        first_revoked_at: r.try_get("first_revoked_at")?,
        last_revoked_at: r.try_get("last_revoked_at")?,
    })
}

fn crl_row(r: &AnyRow) -> Result<CrlSighting, StoreError> {
    Ok(CrlSighting {
        party: r.try_get("party")?,
        ca_generation: r.try_get("ca_generation")?,
        crl_number: r.try_get("crl_number")?,
        this_update: r.try_get("this_update")?,
        downloads: r.try_get("downloads")?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
    })
}

fn handshake(r: &AnyRow) -> Result<HandshakeSighting, StoreError> {
    Ok(HandshakeSighting {
        serial: r.try_get("serial")?,
        ok: r.try_get("ok_count")?,
        last_ok_at: r.try_get("last_ok_at")?,
        last_ok_from: r.try_get("last_ok_from")?,
        refused: r.try_get("refused_count")?,
        first_refused_at: r.try_get("first_refused_at")?,
        last_refused_at: r.try_get("last_refused_at")?,
    })
}
