//! Who is calling: client certificate → certificate record → device → user →
//! role and facility. Every API handler takes a [`Caller`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use connect_pki_domain::{Actor, FacilityStatus, UserStatus};
use connect_pki_store::Identity;

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::tls::PeerCert;

/// An authenticated caller whose certificate, account and facility are all in
/// good standing.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub identity: Identity,
}

impl Caller {
    /// The actor name recorded in the audit log.
    pub fn audit_name(&self) -> String {
        format!("user:{}", self.actor.user)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<PeerCert>().ok_or(ApiError::NoClientCertificate)?;
        let identity = state
            .store
            .identity_by_serial(&peer.serial)
            .await?
            .filter(|id| *id.certificate.der == *peer.der)
            .ok_or_else(|| ApiError::UnknownCertificate(peer.serial.clone()))?;
        if !identity.certificate.status.is_usable() {
            return Err(ApiError::CertificateNotUsable {
                serial: peer.serial.clone(),
                status: identity.certificate.status.as_str(),
            });
        }
        // A lost device's certificates are revoked in the same transaction
        // that marks it lost; this holds even if one were not.
        if identity.device_status != "active" {
            return Err(ApiError::CertificateNotUsable {
                serial: peer.serial.clone(),
                status: if identity.device_status == "lost" {
                    "of a device reported lost"
                } else {
                    "of a retired device"
                },
            });
        }
        if identity.user.status != UserStatus::Active {
            return Err(ApiError::AccountDisabled(identity.user.status.as_str()));
        }
        if identity.facility.status != FacilityStatus::Approved {
            return Err(ApiError::FacilityNotActive(identity.facility.status.as_str()));
        }
        let actor = Actor { user: identity.user.id, role: identity.user.role, facility: identity.facility.id };
        Ok(Caller { actor, identity })
    }
}
