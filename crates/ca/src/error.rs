//! The CA crate's one error type.

/// Why a CA operation failed. Messages are meant for the person who sent the
/// input (a CSR, a passphrase), so they say what to change.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR could not be used; the message says why.
    #[error("CSR rejected: {0}")]
    BadCsr(String),
    /// The CSR names another identity than the one being enrolled.
    #[error("CSR rejected: {0}")]
    SubjectMismatch(String),
    /// The key type or size is outside the profile.
    #[error("key not allowed: {0}")]
    KeyNotAllowed(String),
    /// An encrypted key could not be opened.
    #[error("cannot decrypt {what}: wrong passphrase or damaged file")]
    Decrypt { what: String },
    /// A stored certificate or key could not be read.
    #[error("malformed {what}: {why}")]
    Malformed { what: String, why: String },
    /// A value given to the profile is unusable (URL, name).
    #[error("invalid {field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// The PKCS#11 token holding the CA keys could not be used; the message
    /// says which step failed.
    #[error("PKCS#11 token: {0}")]
    Token(String),
    /// The signing library refused; this is a bug or a broken key.
    #[error("signing failed: {0}")]
    Signing(#[from] rcgen::Error),
}

impl CaError {
    pub(crate) fn malformed(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        CaError::Malformed { what: what.into(), why: why.to_string() }
    }
}
