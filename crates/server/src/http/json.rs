//! Extractors whose rejections are our JSON errors: a malformed body is a
//! 400, a well-formed body with a wrong field a 422 naming the field, an
//! oversize body a 413, a path segment that is not of its type a 400 —
//! never axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::MAX_BODY;
use crate::http::error::ApiError;

/// JSON request body.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::from(connect_pki_domain::DomainError::Invalid {
                field: "body",
                why: e
                    .body_text()
                    .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
                    .to_string(),
            })),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::BadJson(format!("malformed JSON: {}", e.body_text())))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::NotJson),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(MAX_BODY)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// A JSON body the call may also go without: an empty (or blank) body is
/// `T::default()`; anything else is read as [`ApiJson`] reads it.
#[derive(Debug)]
pub(crate) struct ApiJsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_BODY)
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        serde_json::from_slice(&body).map(ApiJsonOrEmpty).map_err(|e| {
            if e.is_data() {
                ApiError::from(connect_pki_domain::DomainError::Invalid { field: "body", why: e.to_string() })
            } else {
                ApiError::BadJson(format!("malformed JSON: {e}"))
            }
        })
    }
}

/// Path parameters. An id that is no integer, or too large for one, names
/// nothing the API could look up: a JSON 400 that says which segment.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(ApiPath(p.0)),
            // A route whose template lacks the parameter: our bug, not the caller's.
            Err(e @ PathRejection::MissingPathParams(_)) => Err(anyhow::anyhow!(e.body_text()).into()),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query string.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}
