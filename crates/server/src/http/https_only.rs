//! The plain listener's guard over the routes that carry secrets.
//!
//! Applying, enrolling, the emergency report and an application's status
//! carry codes, passwords, keys or personal data. On the plain listener a
//! page is redirected to the same path on HTTPS, and an API call is refused
//! before its body is read, so that a password sent in clear goes no
//! further and a client that sent it learns to stop. A request a trusted
//! proxy received over TLS (`X-Forwarded-Proto: https`) passes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::forwarded::Client;

/// Where HTTPS is: the configured URL, or this host on the HTTPS listener's port.
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    /// `--https-url` without a trailing slash.
    pub(crate) https_url: Option<String>,
    pub(crate) https_port: u16,
}

impl Upgrade {
    /// The HTTPS address of `req`'s path and query.
    fn location(&self, req: &Request) -> String {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Some(base) = &self.https_url {
            return format!("{base}{path}");
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
            .map_or_else(|| "localhost".to_string(), |a| a.host().to_string());
        match self.https_port {
            443 => format!("https://{host}{path}"),
            port => format!("https://{host}:{port}{path}"),
        }
    }
}

/// The guard, as a layer over the secret-carrying routes of the plain listener.
pub(crate) async fn guard(State(upgrade): State<Arc<Upgrade>>, req: Request, next: Next) -> Response {
    if req.extensions().get::<Client>().is_some_and(|c| c.tls) {
        return next.run(req).await;
    }
    let location = upgrade.location(&req);
    if req.uri().path().starts_with("/api/") {
        return ApiError::HttpsRequired(location).into_response();
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    // A form already posted in clear is not posted again (a 308 would make
    // the browser resend the password): say where the page is instead.
    let message = ApiError::HttpsRequired(location).message_ja();
    let mut r = (StatusCode::FORBIDDEN, message).into_response();
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
