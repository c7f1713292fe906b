//! Why the registration authority refused or failed an operation, in its own
//! words. `http::error` maps each case to a status code and to the messages
//! people read; nothing here knows about HTTP.

use connect_pki_ca::CaError;
use connect_pki_domain::enrollment::{Refusal, TooManyRenewals};
use connect_pki_domain::{DomainError, Serial};
use connect_pki_store::StoreError;

/// What a clash with the current state of a record was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A lifecycle step that does not exist from the current state.
    #[error("cannot go from {from} to {to}")]
    Transition { from: &'static str, to: &'static str },
    /// The certificate can no longer take this change.
    #[error("certificate {serial} is {status}")]
    CertificateNotUsable { serial: Serial, status: &'static str },
    /// The change would leave a facility without an active manager.
    #[error(
        "user {user} is the last active manager of their facility; register another manager first (行政管理課 may go ahead and appoint a successor)"
    )]
    LastManager { user: i64 },
    /// A unique value is taken, a claim was made first, or a racing change won.
    #[error("{0}")]
    Record(connect_pki_store::Conflict),
}

/// How a request authenticated with a client certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAuthenticated {
    #[error("the client certificate {0} is not registered with this service")]
    UnknownCertificate(Serial),
    #[error("the client certificate {serial} is {status} and can no longer be used")]
    CertificateNotUsable { serial: Serial, status: &'static str },
    /// A signed webhook whose sender, timestamp or signature does not hold.
    #[error("webhook refused: {0}")]
    BadSignature(&'static str),
}

/// Every way an operation of the registration authority can fail.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotAuthenticated(NotAuthenticated),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The requester's role or facility does not allow the action.
    #[error("{actor} may not {action}")]
    NotAllowed { actor: String, action: &'static str },
    /// A value failed validation.
    #[error("invalid {field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("{0}")]
    Conflict(Conflict),
    /// An unknown login ID, a wrong password, or an attempt the sign-in
    /// throttle refused: one answer for all, so none can be told apart.
    #[error(
        "the login ID or the password is wrong, or sign-in from here is paused after repeated failures; \
         call 行政管理課 if the device is lost"
    )]
    SignInFailed,
    #[error("this device is not one of yours")]
    NotYourDevice,
    #[error("the account of this certificate is {0}; ask the facility manager")]
    AccountDisabled(&'static str),
    #[error("the facility of this certificate is {0}; ask 行政管理課")]
    FacilityNotActive(&'static str),
    /// An enrollment code could not be redeemed.
    #[error("{0}")]
    Enrollment(Refusal),
    /// The CSR cannot be used (unreadable, another identity, a key outside the profile).
    #[error("{0}")]
    Csr(CaError),
    /// The device renewed its certificate too often within the last hour.
    #[error("{0}")]
    TooManyRenewals(TooManyRenewals),
    /// A renewal from the browser before the renewal window opens.
    #[error("this certificate can be renewed from {from} (the renewal window before it expires)")]
    NotYetRenewable { from: time::OffsetDateTime },
    /// A failure the requester cannot fix (database, signing, a bug).
    /// The database did not let the change in within its bound (another
    /// transaction holds the writer lock); nothing was changed.
    #[error(
        "the database is busy with another change (the writer lock was not free within {} s); nothing was changed",
        connect_pki_store::WRITE_WAIT.as_secs()
    )]
    Busy,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotPermitted { actor, action } => ServiceError::NotAllowed { actor, action },
            DomainError::Invalid { field, why } => ServiceError::Invalid { field, why },
            DomainError::InvalidTransition { from, to } => ServiceError::Conflict(Conflict::Transition { from, to }),
            DomainError::CertificateNotUsable { serial, status } => {
                ServiceError::Conflict(Conflict::CertificateNotUsable { serial, status })
            }
            DomainError::LastManager { user } => ServiceError::Conflict(Conflict::LastManager { user }),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(what),
            StoreError::Rule(rule) => rule.into(),
            StoreError::Enrollment(refusal) => ServiceError::Enrollment(refusal),
            StoreError::TooManyRenewals(limited) => ServiceError::TooManyRenewals(limited),
            StoreError::Conflict(cause) => ServiceError::Conflict(Conflict::Record(cause)),
            StoreError::Busy => ServiceError::Busy,
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<CaError> for ServiceError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::BadCsr(_) | CaError::SubjectMismatch(_) | CaError::KeyNotAllowed(_) => ServiceError::Csr(e),
            other => ServiceError::Internal(other.into()),
        }
    }
}

/// Result of a service operation.
pub type ServiceResult<T> = Result<T, ServiceError>;
