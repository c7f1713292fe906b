//! Who relies on us, and when a certificate was last used or checked.
//!
//! Every OCSP answer, CRL download and client-certificate handshake is
//! counted here, in memory, under the address of the relying party that
//! asked; at writing the address becomes its name (the address itself, or
//! the name the configuration gives its network). A worker
//! drains the counts into the database every few seconds
//! ([`Sightings::flush`]); between two flushes a certificate asked about a
//! thousand times by one relying party is one row. The hot path takes one
//! of several small locks and touches one map entry: no I/O, no allocation
//! for a relying party and certificate seen before.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

use connect_pki_store::{CrlSighting, HandshakeSighting, OcspAnswer, OcspSighting, Sightings as Batch, Store};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::index::serial_bytes;

const SHARDS: usize = 16;

/// Entries one shard keeps of each kind between two flushes (so 16 × this
/// per kind in all, a few tens of MiB at most): what anyone on the network
/// can make us hold is bounded. A new entry past it is not counted, and the
/// loss is (`connect_pki_sightings_dropped_total`); entries already there
/// go on counting.
const SHARD_CAP: usize = 8_192;

/// Counts are kept by client address; addresses become relying-party names
/// (one name may cover a network) only when they are written.
#[derive(Default)]
struct Shard {
    ocsp: HashMap<(IpAddr, u128), OcspSeen>,
    crl: HashMap<(IpAddr, u8, i64), CrlSeen>,
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

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl OcspSeen {
    fn merge(&mut self, o: &OcspSeen) {
        self.queries += o.queries;
        if o.last_at >= self.last_at {
            self.last_at = o.last_at;
            self.last = o.last;
        }
        self.last_good_at = self.last_good_at.max(o.last_good_at);
        self.first_revoked_at = earliest(self.first_revoked_at, o.first_revoked_at);
        self.last_revoked_at = self.last_revoked_at.max(o.last_revoked_at);
    }
}

#[derive(Clone, Copy)]
struct CrlSeen {
    this_update: i64,
    downloads: u64,
    first_at: i64,
    last_at: i64,
}

impl CrlSeen {
    fn merge(&mut self, o: &CrlSeen) {
        self.downloads += o.downloads;
        self.first_at = self.first_at.min(o.first_at);
        self.last_at = self.last_at.max(o.last_at);
    }
}

#[derive(Clone, Default)]
struct HandshakeSeen {
    ok: u64,
    last_ok_at: Option<i64>,
    last_ok_from: Option<IpAddr>,
    refused: u64,
    first_refused_at: Option<i64>,
    last_refused_at: Option<i64>,
}

impl HandshakeSeen {
    fn count(&mut self, ok: bool, from: Option<IpAddr>, at: i64) {
        if ok {
            self.ok += 1;
            if self.last_ok_at.is_none_or(|t| at >= t) {
                self.last_ok_at = Some(at);
                self.last_ok_from = from;
            }
        } else {
            self.refused += 1;
            self.first_refused_at = earliest(self.first_refused_at, Some(at));
            self.last_refused_at = self.last_refused_at.max(Some(at));
        }
    }
}

/// The counts since the last flush.
pub struct Sightings {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Drained counts not written yet, in transactions of [`CHUNK`] rows.
    unwritten: tokio::sync::Mutex<VecDeque<Batch>>,
    /// Entries a shard keeps of each kind ([`SHARD_CAP`]).
    cap: usize,
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
            unwritten: tokio::sync::Mutex::new(VecDeque::new()),
            cap: SHARD_CAP,
        }
    }
}

/// Merges into the entry at `key`, or adds one unless the map holds `cap`.
fn upsert<K: Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    key: K,
    cap: usize,
    merge: impl FnOnce(&mut V),
    new: impl FnOnce() -> V,
) {
    if let Some(v) = map.get_mut(&key) {
        merge(v);
    } else if map.len() < cap {
        map.insert(key, new());
    } else {
        metrics::counter!("connect_pki_sightings_dropped_total").increment(1);
    }
}

impl Sightings {
    fn shard(&self, key: impl Hash) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The relying party at `from` was told `answer` about the certificate
    /// of issuing CA generation `ca` whose serial key is `serial`.
    pub fn ocsp(&self, from: IpAddr, ca: u8, serial: u128, answer: OcspAnswer, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let (good, revoked) = match answer {
            OcspAnswer::Good => (Some(at), None),
            OcspAnswer::Revoked => (None, Some(at)),
            OcspAnswer::Unknown => (None, None),
        };
        let seen = OcspSeen {
            ca,
            queries: 1,
            last_at: at,
            last: answer,
            last_good_at: good,
            first_revoked_at: revoked,
            last_revoked_at: revoked,
        };
        let mut shard = self.shard((from, serial)).lock();
        let cap = self.cap;
        upsert(&mut shard.ocsp, (from, serial), cap, |s| s.merge(&seen), || seen);
    }

    /// The relying party at `from` downloaded CRL number `number`
    /// (thisUpdate `this_update`) of issuing CA generation `ca`.
    pub fn crl(&self, from: IpAddr, ca: u8, number: i64, this_update: OffsetDateTime, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let seen = CrlSeen { this_update: this_update.unix_timestamp(), downloads: 1, first_at: at, last_at: at };
        let mut shard = self.shard((from, ca, number)).lock();
        let cap = self.cap;
        upsert(&mut shard.crl, (from, ca, number), cap, |s| s.merge(&seen), || seen);
    }

    /// A client-certificate handshake on our listener with the certificate
    /// `serial` succeeded (from `from`) or was refused (`from` unknown to
    /// the verifier, hence `None`).
    pub fn handshake(&self, serial: u128, ok: bool, from: Option<IpAddr>, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        let mut shard = self.shard(serial).lock();
        upsert(
            &mut shard.handshakes,
            serial,
            self.cap,
            |seen| seen.count(ok, from, at),
            || {
                let mut seen = HandshakeSeen::default();
                seen.count(ok, from, at);
                seen
            },
        );
    }

    /// Takes everything counted since the last call, under the names
    /// `name` gives the addresses (entries that come to one name merged),
    /// in key order.
    pub(crate) fn drain(&self, name: &dyn Fn(IpAddr) -> String) -> Batch {
        let mut ocsp: BTreeMap<(String, u128), OcspSeen> = BTreeMap::new();
        let mut crl: BTreeMap<(String, u8, i64), CrlSeen> = BTreeMap::new();
        let mut handshakes: BTreeMap<u128, HandshakeSeen> = BTreeMap::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock());
            for ((from, serial), s) in taken.ocsp {
                ocsp.entry((name(from), serial)).and_modify(|m| m.merge(&s)).or_insert(s);
            }
            for ((from, ca, number), s) in taken.crl {
                crl.entry((name(from), ca, number)).and_modify(|m| m.merge(&s)).or_insert(s);
            }
            handshakes.extend(taken.handshakes);
        }
        Batch {
            ocsp: ocsp
                .into_iter()
                .map(|((party, serial), s)| OcspSighting {
                    party,
                    serial: hex(serial),
                    ca_generation: i64::from(s.ca),
                    queries: s.queries as i64,
                    last_at: s.last_at,
                    last_answer: s.last,
                    last_good_at: s.last_good_at,
                    first_revoked_at: s.first_revoked_at,
                    last_revoked_at: s.last_revoked_at,
                })
                .collect(),
            crl: crl
                .into_iter()
                .map(|((party, ca, number), s)| CrlSighting {
                    party,
                    ca_generation: i64::from(ca),
                    crl_number: number,
                    this_update: s.this_update,
                    downloads: s.downloads as i64,
                    first_at: s.first_at,
                    last_at: s.last_at,
                })
                .collect(),
            handshakes: handshakes
                .into_iter()
                .map(|(serial, s)| HandshakeSighting {
                    serial: hex(serial),
                    ok: s.ok as i64,
                    last_ok_at: s.last_ok_at,
                    last_ok_from: s.last_ok_from.map(|a| a.to_string()),
                    refused: s.refused as i64,
                    first_refused_at: s.first_refused_at,
                    last_refused_at: s.last_refused_at,
                })
                .collect(),
        }
    }

    /// Writes everything counted since the last flush to the database,
    /// under the names `name` gives the addresses, in transactions of at most
    /// [`CHUNK`] rows: every write of the service takes the store's one
    /// writer lock, and a revocation waits behind one small transaction, not
    /// behind the whole batch. A transaction that failed wrote nothing: its
    /// rows and the ones after stay queued and go first next time, and
    /// nothing new is drained until they are written, so nothing is lost or
    /// counted twice, and a database that is down costs no more memory than
    /// the counts themselves.
    pub async fn flush(
        &self,
        store: &Store,
        name: &(dyn Fn(IpAddr) -> String + Sync),
    ) -> Result<usize, connect_pki_store::StoreError> {
        let mut queue = self.unwritten.lock().await;
        if queue.is_empty() {
            let rows = match store.backend() {
                connect_pki_store::Backend::Sqlite => SQLITE_CHUNK,
                connect_pki_store::Backend::Postgres => CHUNK,
            };
            queue.extend(chunks(self.drain(name), rows));
        }
        let mut written = 0;
        while let Some(chunk) = queue.front() {
            store.record_sightings(chunk).await?;
            written += queue.pop_front().map_or(0, |c| c.len());
        }
        Ok(written)
    }
}

/// Rows written in one transaction (five statements). 200-row transactions
/// cost the OCSP responder about 10 % of its throughput while a flush of
/// 10 000 rows ran (each commit is synced); a thousand did not measurably.
const CHUNK: usize = 1000;

/// The same on SQLite, where the flush takes the one writer lock when no
/// other write waits for it: a revoke that arrives meanwhile waits for the
/// one transaction under way, and 200 rows made that 6–9 ms on a slow
/// machine (a thousand, tens of milliseconds). Revocation goes first; the
/// flush takes longer.
const SQLITE_CHUNK: usize = 50;

/// `batch` cut into batches of at most `rows` rows.
fn chunks(batch: Batch, rows: usize) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    out.extend(batch.ocsp.chunks(rows).map(|c| Batch { ocsp: c.to_vec(), ..Batch::default() }));
    out.extend(batch.crl.chunks(rows).map(|c| Batch { crl: c.to_vec(), ..Batch::default() }));
    out.extend(batch.handshakes.chunks(rows).map(|c| Batch { handshakes: c.to_vec(), ..Batch::default() }));
    out
}

fn hex(serial: u128) -> String {
    serial_bytes(serial).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many addresses ask about however many serials between two
    /// flushes, a shard holds at most its cap of each kind; what was already
    /// counted goes on counting.
    #[test]
    fn what_strangers_can_make_us_hold_is_bounded() {
        let s = Sightings { cap: 10, ..Sightings::default() };
        let at = OffsetDateTime::UNIX_EPOCH;
        let first: IpAddr = "192.0.2.1".parse().expect("ip");
        s.ocsp(first, 1, 1, OcspAnswer::Good, at);
        for i in 0..10_000u32 {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            s.ocsp(from, 1, u128::from(i), OcspAnswer::Good, at);
            s.crl(from, 1, i64::from(i), at, at);
            s.handshake(u128::from(i) + 1_000_000, false, None, at);
        }
        s.ocsp(first, 1, 1, OcspAnswer::Revoked, at);
        let held = |kind: fn(&Shard) -> usize| s.shards.iter().map(|m| kind(&m.lock())).sum::<usize>();
        assert!(held(|sh| sh.ocsp.len()) <= 10 * SHARDS);
        assert!(held(|sh| sh.crl.len()) <= 10 * SHARDS);
        assert!(held(|sh| sh.handshakes.len()) <= 10 * SHARDS);
        let kept = s.shard((first, 1u128)).lock().ocsp.get(&(first, 1)).map(|e| e.queries);
        assert_eq!(kept, Some(2), "the entry counted first goes on counting");
    }
}
