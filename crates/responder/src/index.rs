//! The in-memory certificate index: every certificate's status, keyed by
//! serial, kept in step with the database's change feed. The TLS verifier,
//! the OCSP responder and the CRL builder read it; nothing on those paths
//! touches SQL.
//!
//! Our serials are 16 bytes (126 random bits), so the key is a `u128`, and
//! an entry is packed into 16 bytes (times as u32 Unix seconds, good until
//! 2106; feed positions as u32): 32 bytes a slot, about 66 MiB for a million
//! certificates once the table has grown to its power-of-two size.

use std::collections::HashMap;

use connect_pki_domain::{CertStatus, Reason};
use connect_pki_store::CertEvent;
use parking_lot::RwLock;

/// The key of a serial: its value as an unsigned integer, if it fits in 128
/// bits (every serial this CA issues does).
pub fn key(serial: &[u8]) -> Option<u128> {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    let bytes = &serial[start..];
    if bytes.len() > 16 {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(u128::from_be_bytes(buf))
}

/// The serial bytes of a key, as they appear in our certificates.
pub fn serial_bytes(key: u128) -> Vec<u8> {
    let bytes = key.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(15);
    bytes[start..].to_vec()
}

/// What the index knows of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub status: CertStatus,
    pub reason: Option<Reason>,
    /// Unix seconds of the last status change (the revocation time when revoked).
    pub at: i64,
    pub(crate) not_after: i64,
    /// Feed position of the change this entry reflects.
    pub(crate) event: i64,
    /// The generation of the issuing CA that signed the certificate (each
    /// CA's CRL and OCSP answers cover its own).
    pub ca: u8,
}

/// What applying a batch of events changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Certificates that stopped being valid.
    pub(crate) invalidated: Vec<u128>,
    /// Whether anything that appears on the CRL changed.
    pub(crate) crl_changed: bool,
}

/// An entry as stored.
#[derive(Debug, Clone, Copy)]
struct Packed {
    at: u32,
    not_after: u32,
    event: u32,
    status: CertStatus,
    reason: Option<Reason>,
    /// Fits in what was padding: an entry stays 16 bytes.
    ca: u8,
}

fn clamp(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

impl Packed {
    fn of(e: &Entry) -> Self {
        Self {
            at: clamp(e.at),
            not_after: clamp(e.not_after),
            event: clamp(e.event),
            status: e.status,
            reason: e.reason,
            ca: e.ca,
        }
    }

    fn entry(self) -> Entry {
        Entry {
            status: self.status,
            reason: self.reason,
            at: i64::from(self.at),
            not_after: i64::from(self.not_after),
            event: i64::from(self.event),
            ca: self.ca,
        }
    }
}

/// The index itself.
#[derive(Debug, Default)]
pub struct CertIndex {
    map: RwLock<HashMap<u128, Packed>>,
}

impl CertIndex {
    /// The entry of a serial, if the certificate is known.
    pub fn get(&self, serial: &[u8]) -> Option<Entry> {
        key(serial).and_then(|k| self.map.read().get(&k).map(|p| p.entry()))
    }

    /// Number of certificates known.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies feed events in order; an event older than what an entry
    /// already reflects is ignored.
    pub fn apply(&self, events: &[CertEvent]) -> Applied {
        let mut out = Applied::default();
        let mut map = self.map.write();
        for e in events {
            let Some(k) = key(e.serial.as_bytes()) else { continue };
            let entry = Entry {
                status: e.status,
                reason: e.reason,
                at: e.at.unix_timestamp(),
                not_after: e.not_after.unix_timestamp(),
                event: e.id,
                ca: u8::try_from(e.ca_generation).unwrap_or(u8::MAX),
            };
            let previous = map.get(&k).map(|p| p.entry());
            if previous.is_some_and(|p| p.event > e.id) {
                continue;
            }
            let was_valid = previous.is_none_or(|p| p.status == CertStatus::Valid);
            if was_valid && e.status != CertStatus::Valid {
                out.invalidated.push(k);
            }
            if e.status != CertStatus::Valid || !was_valid {
                out.crl_changed = true;
            }
            map.insert(k, Packed::of(&entry));
        }
        out
    }

    /// Every certificate that is not valid, with its entry.
    pub(crate) fn not_valid(&self) -> Vec<(u128, Entry)> {
        self.map.read().iter().filter(|(_, e)| e.status != CertStatus::Valid).map(|(k, e)| (*k, e.entry())).collect()
    }

    /// Replaces the whole index with `entries` (a reload from the database);
    /// returns the certificates that were valid before and are not now, or
    /// are gone.
    pub(crate) fn replace(&self, entries: &[CertEvent]) -> Vec<u128> {
        let fresh = CertIndex::default();
        fresh.apply(entries);
        let fresh = std::mem::take(&mut *fresh.map.write());
        let mut map = self.map.write();
        let gone = map
            .iter()
            .filter(|(k, e)| {
                e.status == CertStatus::Valid && fresh.get(k).is_none_or(|f| f.status != CertStatus::Valid)
            })
            .map(|(k, _)| *k)
            .collect();
        *map = fresh;
        gone
    }

    /// Certificates to list on the CRL of issuing CA generation `ca` at
    /// `now`: every one it signed that is not valid and not yet expired.
    pub fn crl_entries(&self, ca: u8, now: i64) -> Vec<(u128, Entry)> {
        let map = self.map.read();
        let mut out: Vec<(u128, Entry)> = map
            .iter()
            .filter(|(_, e)| e.ca == ca && e.status != CertStatus::Valid && i64::from(e.not_after) >= now)
            .map(|(k, e)| (*k, e.entry()))
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_pki_domain::Serial;
    use time::OffsetDateTime;

    fn event(id: i64, serial: &[u8], status: CertStatus) -> CertEvent {
        CertEvent {
            id,
            serial: Serial::from_bytes(serial).expect("serial"),
            status,
            reason: (status != CertStatus::Valid).then_some(Reason::KeyCompromise),
            at: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
            ca_generation: 1,
        }
    }

    #[test]
    fn an_entry_stays_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 16);
    }

    #[test]
    fn keys_round_trip_and_ignore_leading_zeros() {
        let s = [0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        assert_eq!(serial_bytes(key(&s).expect("fits")), s.to_vec());
        assert_eq!(key(&[0, 0x80]), key(&[0x80]));
        assert_eq!(key(&[1u8; 17]), None);
    }

    #[test]
    fn newer_events_win_and_older_ones_are_ignored() {
        let idx = CertIndex::default();
        let s = [0x41u8; 16];
        let a = idx.apply(&[event(1, &s, CertStatus::Valid)]);
        assert!(a.invalidated.is_empty() && !a.crl_changed);
        let a = idx.apply(&[event(3, &s, CertStatus::OnHold)]);
        assert_eq!(a.invalidated.len(), 1);
        // A stale event (id 2) arriving late must not undo the hold.
        idx.apply(&[event(2, &s, CertStatus::Valid)]);
        assert_eq!(idx.get(&s).map(|e| e.status), Some(CertStatus::OnHold));
        let a = idx.apply(&[event(4, &s, CertStatus::Valid)]);
        assert!(a.crl_changed && a.invalidated.is_empty());
        assert_eq!(idx.crl_entries(1, 0).len(), 0);
        idx.apply(&[event(5, &s, CertStatus::Revoked)]);
        assert_eq!(idx.crl_entries(1, 0).len(), 1);
        assert_eq!(idx.crl_entries(2, 0).len(), 0, "listed on another CA's CRL");
    }
}
