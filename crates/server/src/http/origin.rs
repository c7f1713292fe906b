//! No cross-site writes on the mTLS listener.
//!
//! A browser presents the operator's client certificate to any page's
//! requests, the way it sends a cookie, and a form POST or a `text/plain`
//! `fetch` needs no CORS preflight. So every state-changing request must
//! come from our own origin (`Sec-Fetch-Site`, else `Origin`), and the JSON
//! API takes state changes only as `application/json`, a type no page can
//! send to another origin without a preflight this service never grants.
//! The console's forms keep their own CSRF tokens on top.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// Refuses cross-site and non-JSON state changes before any handler runs.
pub(crate) async fn same_origin(req: Request, next: Next) -> Response {
    if is_safe(req.method()) {
        return next.run(req).await;
    }
    if let Err(e) = check(req.headers(), req.uri()) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "cross-site or non-JSON write refused");
        return e.into_response();
    }
    next.run(req).await
}

/// Counts every 403 answered to a holder of one of our certificates for the
/// audit log, under its route (refusals without a certificate only reach the
/// log: anyone can make those, and they must not fill the audit table).
pub(crate) async fn audit_refusals(
    axum::extract::State(state): axum::extract::State<crate::http::state::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<crate::net::tls::PeerCert>().map(|p| p.serial.clone());
    // The route, not the path: a page that makes the user's browser send
    // requests cannot make a row per made-up path.
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str());
    let route = format!("{} {route}", req.method());
    let response = next.run(req).await;
    if response.status() == axum::http::StatusCode::FORBIDDEN
        && let Some(serial) = peer
    {
        connect_pki_ra::audit::record_refusal(&state, &serial, &route);
    }
    response
}

/// HSTS on every HTTPS answer: a browser that has once reached the service
/// over TLS never again sends a request to it in clear (a year, the value
/// browsers' preload lists expect).
pub(crate) async fn strict_transport(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .insert(header::STRICT_TRANSPORT_SECURITY, axum::http::HeaderValue::from_static("max-age=31536000"));
    response
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn check(headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Browsers since 2020 say where a request comes from; "none" is a
    // request the user made themselves (typed URL, bookmark).
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Err(ApiError::CrossSite);
        }
    } else if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).or_else(|| uri.authority().map(|a| a.as_str()));
        if host.is_none_or(|h| origin != format!("https://{h}")) {
            return Err(ApiError::CrossSite);
        }
    }
    if uri.path().starts_with("/api/") && !is_type(text(header::CONTENT_TYPE), "application/json") {
        return Err(ApiError::NotJson);
    }
    // EST (RFC 7030) sends PKCS#10, also a type no page can send elsewhere
    // without a preflight: a re-enrollment rides on the client certificate.
    if uri.path().starts_with(crate::http::est::PREFIX) && !is_type(text(header::CONTENT_TYPE), "application/pkcs10") {
        return Err(ApiError::NotPkcs10);
    }
    Ok(())
}

/// `essence` (`application/json`), with or without parameters (`; charset=utf-8`).
fn is_type(content_type: Option<&str>, essence: &str) -> bool {
    content_type.and_then(|c| c.split(';').next()).is_some_and(|e| e.trim().eq_ignore_ascii_case(essence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Uri};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_json_passes_and_foreign_or_untyped_writes_do_not() {
        let api: Uri = "/api/v1/certificates/01/hold".parse().expect("uri");
        let json = ("content-type", "application/json; charset=utf-8");
        let host = ("host", "pki.example:8443");
        assert!(check(&headers(&[json, host]), &api).is_ok());
        assert!(check(&headers(&[json, host, ("origin", "https://pki.example:8443")]), &api).is_ok());
        assert!(check(&headers(&[json, ("sec-fetch-site", "same-origin")]), &api).is_ok());
        let foreign = [
            headers(&[json, host, ("origin", "https://evil.example")]),
            headers(&[json, host, ("origin", "http://pki.example:8443")]),
            headers(&[json, host, ("origin", "null")]),
            headers(&[json, ("sec-fetch-site", "cross-site")]),
            headers(&[json, ("sec-fetch-site", "same-site"), ("origin", "https://pki.example:8443")]),
        ];
        for h in &foreign {
            assert!(matches!(check(h, &api), Err(ApiError::CrossSite)), "{h:?}");
        }
        for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let h = headers(&[("content-type", ct), host]);
            assert!(matches!(check(&h, &api), Err(ApiError::NotJson)), "{ct}");
        }
        assert!(matches!(check(&headers(&[host]), &api), Err(ApiError::NotJson)));
        // The console's forms are not JSON; their origin still must match.
        let console: Uri = "/console/escalations/1/claim".parse().expect("uri");
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert!(check(&headers(&[form, ("sec-fetch-site", "same-origin")]), &console).is_ok());
        assert!(check(&headers(&[form, ("sec-fetch-site", "cross-site")]), &console).is_err());
    }
}
