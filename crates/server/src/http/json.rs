//! Extractors whose rejections are our JSON errors: a malformed body is a
//! 400, a well-formed body with a wrong field a 422 naming the field, an
//! oversize body a 413 — never axum's plain-text defaults.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::MAX_BODY;
use crate::http::error::ApiError;

/// JSON request body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

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
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(MAX_BODY)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}
