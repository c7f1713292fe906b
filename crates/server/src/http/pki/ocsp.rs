//! The OCSP responder (`POST /ocsp`, `GET /ocsp/{base64}`) and the CRL
//! (`/crl/{ca}.crl`, `/crl/{ca}.pem`, one for each issuing CA) on the public listener: HTTP
//! around `connect_pki_responder`. Every failure is an OCSP error response,
//! never an HTTP error.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connect_pki_ca::issue::name_of_generation;
use connect_pki_ca::ocsp::{Refusal, refusal_response};
use connect_pki_responder::MAX_REQUEST;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};

use crate::http::forwarded::TrustedProxies;
use crate::http::state::AppState;

/// What the responder's routes read: the state, and the proxies whose
/// `X-Forwarded-For` names the relying party. These routes stay outside the
/// client layer (`forwarded::identify`): at tens of thousands of requests a
/// second its middleware would be their main cost.
#[derive(Clone)]
pub(crate) struct ResponderState {
    pub state: AppState,
    pub(crate) proxies: Arc<TrustedProxies>,
}

/// Routes of the responder and the CRL.
pub(crate) fn router(state: AppState, proxies: Arc<TrustedProxies>) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/crl/{file}", get(crl_file))
        .with_state(ResponderState { state, proxies })
}

fn ocsp_response(der: Bytes, max_age: i64) -> Response {
    let cache = if max_age > 0 {
        format!("public, max-age={max_age}, no-transform, must-revalidate")
    } else {
        "no-store".to_string()
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response")),
            (header::CACHE_CONTROL, HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("no-store"))),
        ],
        der,
    )
        .into_response()
}

/// The address `req` comes from. Read from the request in place: the
/// extractors would copy its headers.
fn client(r: &ResponderState, req: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(r.proxies.client_of(peer.ip().to_canonical(), req.headers()))
}

/// The relying party to record, when they are recorded.
fn party(r: &ResponderState, client: Option<IpAddr>) -> Option<IpAddr> {
    client.filter(|_| r.state.settings.relying.enabled)
}

/// `tryLater` for a client no relying-party name covers that asked more
/// than its share this minute: what a stranger can make us sign and count
/// is bounded, and a relying party the city set up is never slowed.
fn over_limit(r: &ResponderState, client: Option<IpAddr>) -> Option<Response> {
    let ip = client?;
    if r.state.settings.relying.names.names(ip) || r.state.limits.ocsp.check(ip).is_ok() {
        return None;
    }
    ::metrics::counter!("connect_pki_ocsp_rate_limited_total").increment(1);
    Some(ocsp_response(Bytes::from(connect_pki_ca::ocsp::try_later_response()), 0))
}

async fn ocsp_post(State(r): State<ResponderState>, req: Request) -> Response {
    let client = client(&r, &req);
    if let Some(refused) = over_limit(&r, client) {
        return refused;
    }
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => return ocsp_response(Bytes::from(refusal_response(Refusal::Malformed)), 0),
    };
    let (der, max_age) = r.state.ocsp.answer(&r.state.revocations, &bytes, party(&r, client));
    ocsp_response(der, max_age)
}

async fn ocsp_get(State(r): State<ResponderState>, Path(encoded): Path<String>, req: Request) -> Response {
    let client = client(&r, &req);
    if let Some(refused) = over_limit(&r, client) {
        return refused;
    }
    let Some(request) = connect_pki_ca::ocsp::decode_get_path(&encoded) else {
        return ocsp_response(Bytes::from(refusal_response(Refusal::Malformed)), 0);
    };
    let (der, max_age) = r.state.ocsp.answer(&r.state.revocations, &request, party(&r, client));
    ocsp_response(der, max_age)
}

/// Caches may keep a CRL only briefly: it is rebuilt on every revocation.
fn crl_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60, must-revalidate")),
    ]
}

/// The CRL of the issuing CA named in the file (`issuing.crl`,
/// `issuing-2.pem`: the URL in the certificates it issued), DER or PEM.
async fn crl_file(State(r): State<ResponderState>, Path(file): Path<String>, req: Request) -> Response {
    let state = &r.state;
    let crl = file.rsplit_once('.').and_then(|(name, ext)| Some((state.revocations.crl_of(name)?, ext)));
    if let (Some((crl, "crl" | "pem")), Some(party)) = (&crl, party(&r, client(&r, &req))) {
        let ca = state.revocations.cas().iter().find(|c| c.name() == crl.ca).map(|c| c.generation());
        if let Some(ca) = ca {
            let ca = u8::try_from(ca).unwrap_or(u8::MAX);
            state.ocsp.sightings.crl(party, ca, crl.number, crl.this_update, state.clock.now());
        }
    }
    match crl {
        Some((crl, "crl")) => (crl_headers("application/pkix-crl"), crl.der.clone()).into_response(),
        Some((crl, "pem")) => (crl_headers("application/x-pem-file"), crl.pem.clone()).into_response(),
        // A generation another instance rolled over to: there, not here yet.
        None => match state.revocations.behind_rollover().filter(|newest| {
            file.rsplit_once('.').is_some_and(|(name, ext)| {
                matches!(ext, "crl" | "pem") && (2..=*newest).any(|g| name == name_of_generation(g))
            })
        }) {
            Some(newest) => crate::http::error::ApiError::BehindRollover(newest).into_response(),
            None => crate::http::error::no_route(req.uri().clone()).await.into_response(),
        },
        _ => crate::http::error::no_route(req.uri().clone()).await.into_response(),
    }
}
