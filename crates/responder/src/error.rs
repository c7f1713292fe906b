//! The responder's one error type: what keeping the index, the feed and the
//! CRL in step with the database can run into.

use connect_pki_ca::CaError;
use connect_pki_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    /// The database could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A CRL could not be signed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The responder was started without an issuing CA.
    #[error("no issuing CA")]
    NoIssuingCa,
    /// The feed does not reach a position the database says exists.
    #[error("feed position {target} is not readable (applied up to {applied})")]
    FeedGap { target: i64, applied: i64 },
    /// The CRL builder has stopped (the service is shutting down).
    #[error("the CRL builder stopped")]
    CrlBuilderStopped,
    /// Signing the CRLs off the async threads failed to complete.
    #[error("the CRL signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `LISTEN` on the feed's channel failed (PostgreSQL).
    #[error("LISTEN on the feed channel: {0}")]
    Listen(#[from] sqlx::Error),
}
