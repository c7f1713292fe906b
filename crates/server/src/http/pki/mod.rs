//! What relying parties and devices fetch, without a client certificate:
//! the CA certificates (`ca`), the CRLs and OCSP (`ocsp`). Certificate
//! enrollment protocols for managed devices (EST, SCEP) belong here too.

pub mod ca;
pub(crate) mod ocsp;
