//! The domain's one error type: what the rules refuse, in domain words.

use crate::ids::Serial;

/// What the rules refuse, in domain words. The HTTP layer maps these to
/// status codes in one place; nothing here knows about HTTP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// The actor's role or facility does not allow the action.
    #[error("{actor} may not {action}")]
    NotPermitted { actor: String, action: &'static str },
    /// A value failed validation.
    #[error("invalid {field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// The certificate is no longer usable for identification.
    #[error("certificate {serial} is {status}")]
    CertificateNotUsable { serial: Serial, status: &'static str },
    /// A lifecycle step that does not exist from the current state.
    #[error("cannot go from {from} to {to}")]
    InvalidTransition { from: &'static str, to: &'static str },
    /// The change would leave a facility without an active manager.
    #[error(
        "user {user} is the last active manager of their facility; register another manager first (行政管理課 may go ahead and appoint a successor)"
    )]
    LastManager { user: i64 },
}
