//! Certificate authority operations: key generation, the CA hierarchy,
//! device certificate issuance, CSR checks, PKCS#12 packaging and CA keys
//! encrypted at rest.
//!
//! No database and no HTTP: callers pass in what is to be signed and get DER
//! back. Every signature goes through aws-lc-rs (via rcgen), the same backend
//! rustls uses.

pub mod chain;
pub mod crl;
pub mod csr;
mod ecdsa;
pub mod error;
pub mod est;
pub mod hierarchy;
pub mod issue;
pub mod keys;
pub mod ocsp;
pub mod pkcs12;
pub mod profile;
pub mod receipt;
pub mod record;
pub mod scep;
#[cfg(feature = "hsm")]
pub mod token;

pub use chain::PublicCerts;
pub use csr::{CheckedCsr, parse_csr};
pub use error::CaError;
pub use hierarchy::{Hierarchy, HierarchyNames};
pub use issue::{DeviceSubject, IssuedCert, IssuingCa, Profile};
pub use keys::{CaKey, ExternalKey, InMemory, KeyGenerator, KeyKind, PrivateKey};
