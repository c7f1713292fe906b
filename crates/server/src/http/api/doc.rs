//! The answers an operation gives before its handler runs, written into the
//! OpenAPI document.
//!
//! The layers and extractors in front of the handlers (client certificate,
//! same-origin and JSON checks, body limit, path and query parsing, the
//! plain listener's HTTPS guard) answer the same way for every route they
//! cover. Documenting them here, from the route's shape, keeps them from
//! going missing on a route a handler's annotation forgot; the status of
//! each comes from [`ApiError::status`], the one mapping.

use axum::http::StatusCode;
use connect_pki_domain::DomainError;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

use crate::http::MAX_BODY;
use crate::http::error::ApiError;

/// Adds the transport's answers to every operation of `doc`, and a
/// description to every response that has none (OpenAPI requires one).
pub(super) fn add_transport_responses(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let ops = [
            (false, item.get.as_mut()),
            (true, item.post.as_mut()),
            (true, item.put.as_mut()),
            (true, item.patch.as_mut()),
            (true, item.delete.as_mut()),
        ];
        for (writes, op) in ops {
            if let Some(op) = op {
                add_to(op, writes);
            }
        }
    }
}

fn add_to(op: &mut Operation, writes: bool) {
    let public = op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "public"));
    let params = |place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let parsed = params(ParameterIn::Path) || params(ParameterIn::Query);
    let body = op.request_body.is_some();
    let mut answers: Vec<(StatusCode, String)> = Vec::new();
    if public {
        let https = ApiError::HttpsRequired(String::new()).status();
        answers.push((https, "on the plain HTTP listener: https_required, the body is not read".into()));
    } else {
        let unknown = "no client certificate, or one not registered or no longer usable";
        answers.push((ApiError::NoClientCertificate.status(), unknown.into()));
        let refused = ApiError::from(DomainError::NotPermitted { actor: String::new(), action: "" }).status();
        answers.push((
            refused,
            "the caller's account or facility is not active, or the call is not theirs to make".into(),
        ));
    }
    if parsed {
        answers.push((
            ApiError::BadRequest(String::new()).status(),
            "a path or query parameter is not of its type (e.g. an id out of range)".into(),
        ));
    }
    if writes {
        answers.push((ApiError::NotJson.status(), ApiError::NotJson.to_string()));
        answers.push((ApiError::CrossSite.status(), "sent from another site (Origin, Sec-Fetch-Site)".into()));
    }
    if body {
        answers.push((ApiError::BadJson(String::new()).status(), "malformed JSON".into()));
        answers.push((ApiError::TooLarge(MAX_BODY).status(), ApiError::TooLarge(MAX_BODY).to_string()));
        let invalid = ApiError::from(DomainError::Invalid { field: "body", why: String::new() }).status();
        answers.push((invalid, "a field is missing, unknown or of the wrong type".into()));
    }
    for (status, description) in answers {
        add_response(op, status, &description);
    }
    for (status, response) in &mut op.responses.responses {
        if let RefOr::T(r) = response
            && r.description.is_empty()
        {
            r.description =
                status.parse::<StatusCode>().ok().and_then(|s| s.canonical_reason()).unwrap_or("Response").to_string();
        }
    }
}

/// Documents `status` with an error body, or adds `description` to the
/// response already documented for it.
fn add_response(op: &mut Operation, status: StatusCode, description: &str) {
    let key = status.as_str().to_string();
    match op.responses.responses.get_mut(&key) {
        Some(RefOr::T(existing)) => {
            if existing.description.is_empty() {
                existing.description = description.to_string();
            } else if !existing.description.contains(description) {
                existing.description = format!("{}; {description}", existing.description);
            }
            existing
                .content
                .entry("application/json".into())
                .or_insert_with(|| RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))));
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut response = Response::new(description);
            response
                .content
                .insert("application/json".into(), RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))));
            op.responses.responses.insert(key, RefOr::T(response));
        }
    }
}
