//! HTTP surface of both listeners.

pub mod api;
pub mod console;
pub(crate) mod contact;
pub mod error;
pub mod est;
pub(crate) mod forwarded;
pub(crate) mod health;
pub(crate) mod https_only;
pub(crate) mod identity;
pub(crate) mod install;
pub(crate) mod json;
pub(crate) mod metrics;
pub(crate) mod origin;
pub(crate) mod pages;
pub(crate) mod pki;
pub(crate) mod ratelimit;
pub(crate) mod rollover;
pub(crate) mod scep;
pub mod state;
pub(crate) mod strangers;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest request body either listener reads. Bodies are JSON documents or a
/// CSR; anything bigger is refused with 413 before it is buffered.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The body limit layer shared by both routers (it counts what is read, so
/// it also bounds bodies sent without a length).
pub(crate) fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY)
}

/// Reads an API request's whole body (up to [`MAX_BODY`]) before any layer
/// or extractor may refuse the request.
///
/// hyper closes an HTTP/1.1 connection whose request body was left unread,
/// without a `Connection: close` to say so. A refusal answered before the
/// body was read (415, the cross-site 403, a 401, a bad path) then often
/// reached the client as a reset connection instead of the JSON error — on
/// that request, or on the next one sent over the same connection.
/// Schemathesis found it (issue 10); `tests/api/inputs.rs` keeps it fixed.
pub(crate) async fn read_body_first(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match read_body(body).await {
        Ok(bytes) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(e) => e.into_response(),
    }
}

/// Most of an oversize body read (and dropped) before the 413 goes out, so
/// that a client still sending has finished and reads the answer: closing a
/// connection on unread data resets it, the answer with it. Past this, or
/// when the declared length is past it, the 413 comes at once.
const DRAIN_LIMIT: usize = 1024 * 1024;

async fn read_body(mut body: axum::body::Body) -> Result<axum::body::Bytes, error::ApiError> {
    use http_body_util::BodyExt;
    if usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).map_or(true, |n| n > DRAIN_LIMIT) {
        return Err(error::ApiError::TooLarge(MAX_BODY));
    }
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        // The client stopped sending, or stalled past the idle timeout.
        let frame = frame.map_err(|_| error::ApiError::BadRequest("the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY { Err(error::ApiError::TooLarge(MAX_BODY)) } else { Ok(kept.into()) }
}

/// A rendered HTML page with the headers every page carries: `csp`, no
/// caching, no sniffing, and referrers only to this origin (not
/// `no-referrer`: under it a browser sends `Origin: null` with forms, and
/// the same-origin check refuses them).
pub(crate) fn html_page(status: axum::http::StatusCode, t: &impl askama::Template, csp: &'static str) -> Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    match t.render() {
        Ok(html) => {
            let mut r = (status, axum::response::Html(html)).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// One structured log line per request, and its latency in `/metrics`
/// (by route template, so paths with ids do not explode the label set).
pub(crate) async fn log_request(req: Request, next: Next) -> Response {
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
