//! Who is calling: the client certificate of the TLS connection, turned into
//! the service layer's [`Requester`]. Every API handler takes a [`Caller`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use connect_pki_store::Identity;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::net::tls::PeerCert;
use connect_pki_ra::Requester;

/// An authenticated caller whose certificate, account and facility are all in
/// good standing.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) requester: Requester,
    pub(crate) identity: Identity,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<PeerCert>().ok_or(ApiError::NoClientCertificate)?;
        let (requester, identity) = connect_pki_ra::requester::authenticate(state, &peer.serial, &peer.der).await?;
        Ok(Caller { requester, identity })
    }
}
