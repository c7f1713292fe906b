//! HTTP surface of both listeners.

pub mod api;
pub mod console;
pub mod error;
pub mod forwarded;
pub mod https_only;
pub mod identity;
pub mod json;
pub mod metrics;
pub mod ocsp;
pub mod origin;
pub mod pages;
pub mod public;
pub mod ratelimit;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Largest request body either listener reads. Bodies are JSON documents or a
/// CSR; anything bigger is refused with 413 before it is buffered.
pub const MAX_BODY: usize = 64 * 1024;

/// The body limit layer shared by both routers (it counts what is read, so
/// it also bounds bodies sent without a length).
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY)
}

/// Refuses a body announced as larger than [`MAX_BODY`] on its
/// `Content-Length` alone, before reading any of it: the client learns at
/// once, and nobody ties up a connection uploading what will be refused.
pub async fn refuse_announced_large_bodies(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        let mut response = axum::response::IntoResponse::into_response(error::ApiError::TooLarge(MAX_BODY));
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    next.run(req).await
}

/// One structured log line per request, and its latency in `/metrics`
/// (by route template, so paths with ids do not explode the label set).
pub async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    // A status token in the path is the applicant's only credential.
    let path = if route.contains("{token}") { route.clone() } else { path };
    let client = req.extensions().get::<forwarded::Client>().map_or_else(String::new, |c| c.addr.to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    ::metrics::histogram!("connect_pki_http_request_duration_seconds", "route" => route, "method" => method.to_string())
        .record(elapsed.as_secs_f64());
    let micros = elapsed.as_micros() as u64;
    if status >= 500 {
        tracing::error!(%method, %path, status, micros, %client, "request");
    } else {
        tracing::info!(%method, %path, status, micros, %client, "request");
    }
    response
}
