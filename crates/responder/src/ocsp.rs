//! OCSP answers.
//!
//! Answers come from the in-memory index. A single-certificate request
//! without a nonce — what browsers, nginx and OpenSSL's stapling send — is
//! answered from a cache of signed responses; an entry is re-signed when the
//! certificate's status changes (its feed position differs) or when it is
//! half-way through its validity. Requests with a nonce, or about several
//! certificates, are signed live. Every failure is an OCSP error response,
//! never an HTTP error.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use connect_pki_ca::ocsp::{
    OcspSigner, Refusal, Status, internal_error_response, refusal_response, try_later_response,
};
use connect_pki_domain::{CertStatus, Clock, Reason};
use parking_lot::RwLock;
use time::OffsetDateTime;

use crate::index::{Entry, key};
use crate::{Revocations, Sightings};
use connect_pki_store::OcspAnswer;

pub use connect_pki_ca::ocsp::MAX_REQUEST;

/// A CertID we answer, as a key: serial, SHA-256 (else SHA-1), NULL
/// parameters (else absent). The rest of the CertID is our own.
type CacheKey = (u128, bool, bool);

struct Cached {
    der: Bytes,
    /// The index entry answered: the answer holds while the entry is the
    /// same — its status and reason too, not only its feed position, which a
    /// repair by reconciliation does not move.
    entry: Entry,
    this_update: OffsetDateTime,
}

/// Signer, cache and validity of OCSP answers.
pub struct Responder {
    /// One delegated signer per issuing CA generation, each answering for
    /// its own CA's certificates. Replaced whole when the service renews a
    /// signer; a request keeps the set it loaded.
    signers: ArcSwap<Vec<(u8, Arc<OcspSigner>)>>,
    clock: Arc<dyn Clock>,
    /// The CertID answered (built by us: `ca::ocsp::Item`) → signed response.
    cache: RwLock<HashMap<CacheKey, Cached>>,
    /// How long a response is valid (nextUpdate − thisUpdate) and may be
    /// cached by HTTP caches and clients: the longest a relying party can go
    /// on seeing `good` after a revocation.
    pub(crate) validity: time::Duration,
    /// What each relying party was told (see [`crate::sightings`]).
    pub sightings: Arc<Sightings>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("validity", &self.validity).finish_non_exhaustive()
    }
}

impl Responder {
    /// How long an answer may be cached: the longest a relying party that
    /// caches answers can go on seeing `good` after a revocation.
    pub fn validity(&self) -> time::Duration {
        self.validity
    }

    /// `signers`: (issuing CA generation, its delegated signer); what
    /// relying parties are told is counted in `sightings`.
    pub fn new(
        signers: Vec<(u32, OcspSigner)>,
        validity: time::Duration,
        clock: Arc<dyn Clock>,
        sightings: Arc<Sightings>,
    ) -> Self {
        let signers = signers.into_iter().map(|(g, s)| (generation(g), Arc::new(s))).collect();
        Self { signers: ArcSwap::from_pointee(signers), clock, cache: RwLock::new(HashMap::new()), validity, sightings }
    }

    /// The certificate the answers about issuing CA generation `ca` are
    /// signed under now (DER).
    pub fn signer_cert_der(&self, ca: u32) -> Option<Vec<u8>> {
        let g = generation(ca);
        self.signers.load().iter().find(|(sg, _)| *sg == g).map(|(_, s)| s.cert_der().to_vec())
    }

    /// The signer of the answers about issuing CA generation `ca`.
    pub fn signer(&self, ca: u32) -> Option<Arc<OcspSigner>> {
        let g = generation(ca);
        self.signers.load().iter().find(|(sg, _)| *sg == g).map(|(_, s)| s.clone())
    }

    /// Signs every answer about issuing CA generation `ca` from now on with
    /// `signer`. Cached answers go with the old one: they are still valid,
    /// but would keep its certificate in circulation until they age out.
    pub fn replace_signer(&self, ca: u32, signer: OcspSigner) {
        let g = generation(ca);
        let mut next: Vec<(u8, Arc<OcspSigner>)> =
            self.signers.load().iter().filter(|(sg, _)| *sg != g).cloned().collect();
        next.push((g, Arc::new(signer)));
        next.sort_by_key(|(sg, _)| *sg);
        self.signers.store(Arc::new(next));
        self.cache.write().clear();
    }

    /// The DER response to a DER request, and the seconds it may be cached.
    /// What it says about each of our certificates is counted for the
    /// relying party at `from`, when given.
    pub fn answer(&self, revocations: &Revocations, request: &[u8], from: Option<std::net::IpAddr>) -> (Bytes, i64) {
        metrics::counter!("connect_pki_ocsp_requests_total").increment(1);
        let (ca, signer, req) = match self.signer_for(request) {
            Ok(found) => found,
            // Perhaps about the generation another instance rolled over to:
            // not ours to deny, only to answer later (restarted with it).
            Err(Refusal::Unauthorized) if revocations.behind_rollover().is_some() => {
                metrics::counter!("connect_pki_ocsp_refused_total", "status" => "try_later").increment(1);
                return (Bytes::from(try_later_response()), 0);
            }
            Err(refusal) => {
                metrics_refusal(refusal);
                return (Bytes::from(refusal_response(refusal)), 0);
            }
        };
        if revocations.is_stale() {
            // The index may be missing revocations made elsewhere: no answer
            // from it can be vouched for until the feed is read again.
            metrics::counter!("connect_pki_ocsp_refused_total", "status" => "try_later").increment(1);
            return (Bytes::from(try_later_response()), 0);
        }
        let now = self.clock.now();
        // A serial another CA signed is not one this CA knows.
        let lookups: Vec<(Option<u128>, Option<Entry>)> = req
            .items
            .iter()
            .map(|i| (key(&i.serial), revocations.index.get(&i.serial).filter(|e| e.ca == ca)))
            .collect();
        // Only the first CertID is counted: a request may name 64 serials,
        // all public on the CRL, and nobody should fill the relying-party
        // record 64 rows at a time (issue 24). Relying parties ask about one.
        if let (Some(from), Some((Some(k), Some(e)))) = (from, lookups.first()) {
            self.sightings.ocsp(from, ca, *k, answer_of(status(Some(*e))), now);
        }
        // The cacheable case: one certificate we know, no nonce.
        if let ([(Some(k), Some(entry))], None) = (lookups.as_slice(), &req.nonce) {
            let id = (*k, req.items[0].sha256, req.items[0].null_parameters);
            if let Some(hit) = self.cached(id, entry, now) {
                return hit;
            }
            let this_update = now;
            match signer.respond(
                &[(req.items[0].id.clone(), status(Some(*entry)))],
                None,
                this_update,
                this_update + self.validity,
            ) {
                Ok(der) => {
                    let der = Bytes::from(der);
                    let mut cache = self.cache.write();
                    cache.insert(id, Cached { der: der.clone(), entry: *entry, this_update });
                    return (der, self.validity.whole_seconds());
                }
                Err(e) => return internal_error(e),
            }
        }
        let items: Vec<_> = req.items.iter().zip(&lookups).map(|(i, (_, e))| (i.id.clone(), status(*e))).collect();
        match signer.respond(&items, req.nonce.as_ref(), now, now + self.validity) {
            // A response to a nonce is for that requester alone.
            Ok(der) => (Bytes::from(der), if req.nonce.is_some() { 0 } else { self.validity.whole_seconds() }),
            Err(e) => internal_error(e),
        }
    }

    /// The issuing CA generation a request is about, its signer and the
    /// parsed request. Each signer takes only requests about its own CA; the
    /// newest CA's come first, as most requests are about what it issued.
    fn signer_for(&self, request: &[u8]) -> Result<(u8, Arc<OcspSigner>, connect_pki_ca::ocsp::Request), Refusal> {
        for (g, s) in self.signers.load().iter().rev() {
            match s.parse(request) {
                Ok(r) => return Ok((*g, s.clone(), r)),
                Err(Refusal::Unauthorized) => {}
                Err(malformed) => return Err(malformed),
            }
        }
        Err(Refusal::Unauthorized)
    }

    fn cached(&self, id: CacheKey, entry: &Entry, now: OffsetDateTime) -> Option<(Bytes, i64)> {
        let cache = self.cache.read();
        let c = cache.get(&id)?;
        let age = now - c.this_update;
        // Re-signed half-way, so a cache downstream never holds one past nextUpdate.
        (c.entry == *entry && age < self.validity / 2)
            .then(|| (c.der.clone(), (self.validity - age).whole_seconds().max(0)))
    }
}

fn internal_error(e: connect_pki_ca::CaError) -> (Bytes, i64) {
    tracing::error!(error = %e, "OCSP signing failed");
    (Bytes::from(internal_error_response()), 0)
}

fn metrics_refusal(r: Refusal) {
    let kind = match r {
        Refusal::Malformed => "malformed_request",
        Refusal::Unauthorized => "unauthorized",
    };
    metrics::counter!("connect_pki_ocsp_refused_total", "status" => kind).increment(1);
    tracing::debug!(?r, "OCSP request refused");
}

fn status(e: Option<Entry>) -> Status {
    match e {
        None => Status::Unknown,
        Some(e) => match e.status {
            CertStatus::Valid => Status::Good,
            CertStatus::OnHold => Status::Revoked {
                at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: Reason::CertificateHold,
            },
            CertStatus::Revoked | CertStatus::Superseded => Status::Revoked {
                at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason: e.reason.unwrap_or(Reason::Unspecified),
            },
        },
    }
}

fn answer_of(s: Status) -> OcspAnswer {
    match s {
        Status::Good => OcspAnswer::Good,
        Status::Revoked { .. } => OcspAnswer::Revoked,
        Status::Unknown => OcspAnswer::Unknown,
    }
}

fn generation(g: u32) -> u8 {
    u8::try_from(g).unwrap_or(u8::MAX)
}
