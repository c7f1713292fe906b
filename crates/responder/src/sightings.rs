//! Who relies on us, and when a certificate was last used or checked.
//!
//! Every OCSP answer, CRL download and client-certificate handshake is
//! counted here, in memory, under the name of the relying party that asked
//! (its address, or the name the configuration gives its network). A worker
//! drains the counts into the database every few seconds
//! ([`Sightings::flush`]); between two flushes a certificate asked about a
//! thousand times by one relying party is one row. The hot path takes one
//! of several small locks and touches one map entry: no I/O, no allocation
//! for a relying party and certificate seen before.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use connect_pki_store::{CrlSighting, HandshakeSighting, OcspAnswer, OcspSighting, Sightings as Batch, Store};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::index::serial_bytes;

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    ocsp: HashMap<(Arc<str>, u128), OcspSeen>,
    crl: HashMap<(Arc<str>, u8, i64), CrlSeen>,
    handshakes: HashMap<u128, HandshakeSeen>,
}

#[derive(Clone, Copy)]
struct OcspSeen {
    ca: u8,
    queries: u64,
    last_at: i64,
    last: OcspAnswer,
    last_good_at: Option<i64>,
    first_revoked_at: Option<i64>,
    last_revoked_at: Option<i64>,
}

#[derive(Clone, Copy)]
struct CrlSeen {
    this_update: i64,
    downloads: u64,
    first_at: i64,
    last_at: i64,
}

#[derive(Clone, Default)]
struct HandshakeSeen {
    ok: u64,
    last_ok_at: Option<i64>,
    last_ok_from: Option<String>,
    refused: u64,
    first_refused_at: Option<i64>,
    last_refused_at: Option<i64>,
}

/// The counts since the last flush.
pub struct Sightings {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// A batch whose write failed, written before the next one.
    unwritten: tokio::sync::Mutex<Option<Batch>>,
}

impl std::fmt::Debug for Sightings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sightings").finish_non_exhaustive()
    }
}

impl Default for Sightings {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: Default::default(),
            unwritten: tokio::sync::Mutex::new(None),
        }
    }
}

impl Sightings {
    fn shard(&self, key: impl Hash) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// `party` was told `answer` about the certificate of issuing CA
    /// generation `ca` whose serial key is `serial`.
    pub fn ocsp(&self, party: &Arc<str>, ca: u8, serial: u128, answer: OcspAnswer, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let mut shard = self.shard((party, serial)).lock();
        let seen = shard.ocsp.entry((party.clone(), serial)).or_insert(OcspSeen {
            ca,
            queries: 0,
            last_at: at,
            last: answer,
            last_good_at: None,
            first_revoked_at: None,
            last_revoked_at: None,
        });
        seen.queries += 1;
        if at >= seen.last_at {
            seen.last_at = at;
            seen.last = answer;
        }
        match answer {
            OcspAnswer::Good => seen.last_good_at = seen.last_good_at.max(Some(at)),
            OcspAnswer::Revoked => {
                seen.first_revoked_at = Some(seen.first_revoked_at.map_or(at, |t| t.min(at)));
                seen.last_revoked_at = seen.last_revoked_at.max(Some(at));
            }
            OcspAnswer::Unknown => {}
        }
    }

    /// `party` downloaded CRL number `number` (thisUpdate `this_update`) of
    /// issuing CA generation `ca`.
    pub fn crl(&self, party: &Arc<str>, ca: u8, number: i64, this_update: OffsetDateTime, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let mut shard = self.shard((party, ca, number)).lock();
        let seen = shard.crl.entry((party.clone(), ca, number)).or_insert(CrlSeen {
            this_update: this_update.unix_timestamp(),
            downloads: 0,
            first_at: at,
            last_at: at,
        });
        seen.downloads += 1;
        seen.first_at = seen.first_at.min(at);
        seen.last_at = seen.last_at.max(at);
    }

    /// A client-certificate handshake on our listener with the certificate
    /// `serial` succeeded (from `from`) or was refused (`from` unknown to
    /// the verifier, hence `None`).
    pub fn handshake(&self, serial: u128, ok: bool, from: Option<std::net::IpAddr>, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let mut shard = self.shard(serial).lock();
        let seen = shard.handshakes.entry(serial).or_default();
        if ok {
            seen.ok += 1;
            if seen.last_ok_at.is_none_or(|t| at >= t) {
                seen.last_ok_at = Some(at);
                seen.last_ok_from = from.map(|a| a.to_string());
            }
        } else {
            seen.refused += 1;
            seen.first_refused_at = Some(seen.first_refused_at.map_or(at, |t| t.min(at)));
            seen.last_refused_at = seen.last_refused_at.max(Some(at));
        }
    }

    /// Takes everything counted since the last call, sorted by key: instances
    /// writing batches at the same time then lock rows in one order, and
    /// PostgreSQL never finds two of them waiting on each other.
    pub fn drain(&self) -> Batch {
        let mut batch = Batch::default();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock());
            batch.ocsp.extend(taken.ocsp.into_iter().map(|((party, serial), s)| OcspSighting {
                party: party.to_string(),
                serial: hex(serial),
                ca_generation: i64::from(s.ca),
                queries: s.queries as i64,
                last_at: s.last_at,
                last_answer: s.last,
                last_good_at: s.last_good_at,
                first_revoked_at: s.first_revoked_at,
                last_revoked_at: s.last_revoked_at,
            }));
            batch.crl.extend(taken.crl.into_iter().map(|((party, ca, number), s)| CrlSighting {
                party: party.to_string(),
                ca_generation: i64::from(ca),
                crl_number: number,
                this_update: s.this_update,
                downloads: s.downloads as i64,
                first_at: s.first_at,
                last_at: s.last_at,
            }));
            batch.handshakes.extend(taken.handshakes.into_iter().map(|(serial, s)| HandshakeSighting {
                serial: hex(serial),
                ok: s.ok as i64,
                last_ok_at: s.last_ok_at,
                last_ok_from: s.last_ok_from,
                refused: s.refused as i64,
                first_refused_at: s.first_refused_at,
                last_refused_at: s.last_refused_at,
            }));
        }
        batch.ocsp.sort_by(|a, b| (&a.party, &a.serial).cmp(&(&b.party, &b.serial)));
        batch
            .crl
            .sort_by(|a, b| (&a.party, a.ca_generation, a.crl_number).cmp(&(&b.party, b.ca_generation, b.crl_number)));
        batch.handshakes.sort_by(|a, b| a.serial.cmp(&b.serial));
        batch
    }

    /// Writes everything counted since the last flush to the database, in
    /// one transaction. A batch whose transaction failed wrote nothing, so
    /// it is kept and written first next time: nothing is lost or counted
    /// twice.
    pub async fn flush(&self, store: &Store) -> Result<usize, connect_pki_store::StoreError> {
        let mut unwritten = self.unwritten.lock().await;
        if let Some(old) = unwritten.take() {
            if let Err(e) = store.record_sightings(&old).await {
                *unwritten = Some(old);
                return Err(e);
            }
        }
        let batch = self.drain();
        let n = batch.len();
        if n > 0
            && let Err(e) = store.record_sightings(&batch).await
        {
            *unwritten = Some(batch);
            return Err(e);
        }
        Ok(n)
    }
}

fn hex(serial: u128) -> String {
    serial_bytes(serial).iter().map(|b| format!("{b:02x}")).collect()
}
