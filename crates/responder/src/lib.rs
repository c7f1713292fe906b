//! The CRL/OCSP responder of one instance: what relying parties and the TLS
//! verifier ask about a certificate, answered from memory and kept in step
//! with the database.
//!
//! * [`index`]: every certificate's status, packed (the TLS verifier and
//!   OCSP read it on every request).
//! * [`Revocations`]: the index, the feed follower that keeps it current,
//!   the CRL builder and the served CRL, and reconciliation with the
//!   database; [`Revocations::sync`] is what makes a change effective before
//!   the call that made it returns.
//! * `writeback`: what the index enforces that the database lost, written
//!   back — never undone (reconciliation, a database that went back).
//! * [`Responder`]: OCSP answers from the index, with a cache of signed
//!   responses.
//!
//! No HTTP here: the server wires these to its routes and to the TLS
//! verifier, and tells the responder how to close the connections of a
//! certificate that stopped being valid ([`Sessions`]).

mod crl;
mod error;
mod feed;
pub mod index;
mod ocsp;
mod revocations;
pub mod sightings;
mod writeback;

pub use crl::Crl;
pub use error::ResponderError;
pub use feed::{FeedSettings, POLL_INTERVAL};
pub use ocsp::{MAX_REQUEST, Responder};
pub use revocations::Revocations;
pub use sightings::Sightings;

/// Open connections authenticated with a client certificate: closed when
/// the certificate stops being valid, because keep-alive and HTTP/2
/// connections are never re-verified otherwise.
pub trait Sessions: Send + Sync + std::fmt::Debug {
    /// Closes every open connection authenticated with the certificate whose
    /// index key is `serial`.
    fn close(&self, serial: u128);
}
