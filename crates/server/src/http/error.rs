//! The one place where failures become HTTP responses:
//! `{"error": {"code", "message"}}` with the matching status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use connect_pki_ca::CaError;
use connect_pki_domain::{DomainError, Serial};
use connect_pki_store::StoreError;
use serde_json::json;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("this API needs a client certificate issued by connect-pki (curl: --cert and --key)")]
    NoClientCertificate,
    #[error("the client certificate {0} is not registered with this service")]
    UnknownCertificate(Serial),
    #[error("the client certificate {serial} is {status} and can no longer be used")]
    CertificateNotUsable { serial: Serial, status: &'static str },
    #[error("the account of this certificate is {0}; ask the facility manager")]
    AccountDisabled(&'static str),
    #[error("the facility of this certificate is {0}; ask 行政管理課")]
    FacilityNotActive(&'static str),
    #[error("no such route: {0}")]
    NoRoute(String),
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ca(#[from] CaError),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Status and stable error code.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NoClientCertificate => (StatusCode::UNAUTHORIZED, "client_certificate_required"),
            ApiError::UnknownCertificate(_) => (StatusCode::UNAUTHORIZED, "certificate_unknown"),
            ApiError::CertificateNotUsable { .. } => (StatusCode::UNAUTHORIZED, "certificate_not_usable"),
            ApiError::AccountDisabled(_) => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::FacilityNotActive(_) => (StatusCode::FORBIDDEN, "facility_not_active"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Domain(DomainError::NotPermitted { .. }) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Domain(DomainError::Invalid { .. }) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Domain(DomainError::InvalidTransition { .. }) => (StatusCode::CONFLICT, "invalid_transition"),
            ApiError::Domain(DomainError::CertificateNotUsable { .. }) => {
                (StatusCode::CONFLICT, "certificate_not_usable")
            }
            ApiError::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Ca(CaError::BadCsr(_)) => (StatusCode::BAD_REQUEST, "bad_csr"),
            ApiError::Ca(CaError::KeyNotAllowed(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "key_not_allowed"),
            ApiError::Store(_) | ApiError::Ca(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = if status.is_server_error() {
            // The cause goes to the log, not to the caller.
            tracing::error!(error = ?self, "request failed");
            "internal error; the details are in the server log".to_string()
        } else {
            self.to_string()
        };
        (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
    }
}

/// The JSON 404 of both routers.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}
