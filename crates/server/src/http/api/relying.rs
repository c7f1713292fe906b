//! Who relies on us, and a certificate's use and checks (`service::sightings`).

use axum::Json;
use axum::extract::State;
use connect_pki_domain::Serial;
use connect_pki_store::{CertificateSightings, RelyingParty};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ApiResult;
use super::views::{CertificateView, ErrorBody, rfc3339};
use crate::http::identity::Caller;
use crate::http::json::ApiPath;
use crate::http::state::AppState;
use connect_pki_ra::sightings;

fn unix(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map(rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A relying party (a client address, or the name config.toml gives its network).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RelyingPartyView {
    pub name: String,
    /// OCSP questions answered, over the retention period.
    pub(crate) ocsp_queries: i64,
    pub(crate) last_ocsp_at: Option<String>,
    /// The newest CRL it downloaded, per issuing CA.
    pub(crate) crls: Vec<HeldCrlView>,
    /// Set when a CRL it holds predates a revocation: it would still accept
    /// that certificate.
    pub(crate) warning: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HeldCrlView {
    /// The issuing CA generation (1 for `issuing`, 2 for `issuing-2`…).
    pub(crate) ca_generation: i64,
    pub crl_number: i64,
    pub(crate) this_update: String,
    pub(crate) last_download_at: String,
    /// The newest revocation of that CA's certificates, when the CRL predates it.
    pub(crate) missing_revocation_at: Option<String>,
}

impl From<RelyingParty> for RelyingPartyView {
    fn from(p: RelyingParty) -> Self {
        let stale: Vec<String> = p
            .crls
            .iter()
            .filter_map(|c| {
                let at = c.missing_revocation_at?;
                Some(format!(
                    "its CRL of issuing CA {} (number {}, {}) predates the revocation at {}",
                    c.ca_generation,
                    c.crl_number,
                    rfc3339(c.this_update),
                    rfc3339(at)
                ))
            })
            .collect();
        Self {
            name: p.party,
            ocsp_queries: p.ocsp_queries,
            last_ocsp_at: p.last_ocsp_at.map(rfc3339),
            crls: p
                .crls
                .into_iter()
                .map(|c| HeldCrlView {
                    ca_generation: c.ca_generation,
                    crl_number: c.crl_number,
                    this_update: rfc3339(c.this_update),
                    last_download_at: rfc3339(c.last_download_at),
                    missing_revocation_at: c.missing_revocation_at.map(rfc3339),
                })
                .collect(),
            warning: (!stale.is_empty())
                .then(|| format!("{}: it would still accept a revoked device", stale.join("; "))),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RelyingPartyList {
    pub(crate) relying_parties: Vec<RelyingPartyView>,
}

/// Every relying party that asked the OCSP responder or downloaded a CRL
/// within the retention period, with its last OCSP question, the newest CRL
/// it holds and a warning when that CRL predates a revocation (行政管理課 only).
#[utoipa::path(get, path = "/api/v1/relying-parties", tag = "certificates",
    responses((status = 200, body = RelyingPartyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_relying_parties(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<RelyingPartyList>> {
    let parties = sightings::relying_parties(&state, &caller.requester).await?;
    Ok(Json(RelyingPartyList { relying_parties: parties.into_iter().map(Into::into).collect() }))
}

/// One relying party's OCSP questions about a certificate.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OcspUseView {
    pub(crate) relying_party: String,
    pub(crate) queries: i64,
    pub(crate) last_at: String,
    /// `good`, `revoked` or `unknown`: the answer it was given last.
    pub(crate) last_answer: String,
    pub(crate) last_good_at: Option<String>,
    pub(crate) first_revoked_at: Option<String>,
    pub(crate) last_revoked_at: Option<String>,
}

/// A download of a CRL that lists the certificate.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CrlUseView {
    pub(crate) relying_party: String,
    pub crl_number: i64,
    pub(crate) this_update: String,
    pub(crate) first_download_at: String,
    pub(crate) last_download_at: String,
    pub(crate) downloads: i64,
}

/// A certificate's use on our listener and its checks by relying parties.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CertificateUse {
    pub(crate) certificate: CertificateView,
    /// The last handshake that let it in on our listener, and from where.
    pub(crate) last_handshake_at: Option<String>,
    pub(crate) last_handshake_from: Option<String>,
    pub(crate) handshakes: i64,
    /// Handshakes refused because of its status (revoked or on hold).
    pub(crate) refused_handshakes: i64,
    pub(crate) first_refused_at: Option<String>,
    pub(crate) last_refused_at: Option<String>,
    pub(crate) ocsp: Vec<OcspUseView>,
    /// Downloads of CRLs issued since its revocation (each lists it).
    pub(crate) crl_downloads: Vec<CrlUseView>,
}

impl CertificateUse {
    fn of(certificate: connect_pki_store::CertificateRecord, s: CertificateSightings) -> Self {
        let h = s.handshakes.unwrap_or_default();
        Self {
            certificate: certificate.into(),
            last_handshake_at: h.last_ok_at.map(unix),
            last_handshake_from: h.last_ok_from,
            handshakes: h.ok,
            refused_handshakes: h.refused,
            first_refused_at: h.first_refused_at.map(unix),
            last_refused_at: h.last_refused_at.map(unix),
            ocsp: s
                .ocsp
                .into_iter()
                .map(|o| OcspUseView {
                    relying_party: o.party,
                    queries: o.queries,
                    last_at: unix(o.last_at),
                    last_answer: o.last_answer.as_str().to_string(),
                    last_good_at: o.last_good_at.map(unix),
                    first_revoked_at: o.first_revoked_at.map(unix),
                    last_revoked_at: o.last_revoked_at.map(unix),
                })
                .collect(),
            crl_downloads: s
                .crl
                .into_iter()
                .map(|c| CrlUseView {
                    relying_party: c.party,
                    crl_number: c.crl_number,
                    this_update: unix(c.this_update),
                    first_download_at: unix(c.first_at),
                    last_download_at: unix(c.last_at),
                    downloads: c.downloads,
                })
                .collect(),
        }
    }
}

/// When a certificate was last used on our listener and last checked by
/// each relying party, with the answer it was given (whoever manages the
/// facility's certificates).
#[utoipa::path(get, path = "/api/v1/certificates/{serial}/use", tag = "certificates", params(("serial" = String, Path, description = "The serial in hex, as the API shows it")),
    responses((status = 200, body = CertificateUse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn certificate_use(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<CertificateUse>> {
    let serial: Serial = serial.parse()?;
    let (holder, seen) = sightings::certificate_use(&state, &caller.requester, &serial).await?;
    Ok(Json(CertificateUse::of(holder.certificate, seen)))
}

/// A signed incident record: the record, and the JWS whose payload it is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IncidentRecord {
    /// The timeline and the proof of revocation (see docs/operations/incident-record.md).
    #[schema(value_type = Object)]
    pub(crate) record: connect_pki_ra::incident::IncidentRecord,
    /// Compact JWS (ES256) over `record`, signed by the delegated OCSP
    /// signer, whose certificate and the issuing CA's are in `x5c`.
    pub(crate) signed: String,
}

/// The incident record of a certificate — reported, held, revoked,
/// notifications, what each relying party was told and when, the CRL
/// downloads listing it, handshakes refused after — with a fresh OCSP
/// response and the CRL that list it, signed (whoever manages the
/// facility's certificates). `connect-pki receipt verify` checks the file.
#[utoipa::path(get, path = "/api/v1/certificates/{serial}/incident", tag = "certificates", params(("serial" = String, Path, description = "The serial in hex, as the API shows it")),
    responses((status = 200, body = IncidentRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn certificate_incident(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<IncidentRecord>> {
    let serial: Serial = serial.parse()?;
    let i = connect_pki_ra::incident::record(&state, &caller.requester, &serial).await?;
    Ok(Json(IncidentRecord { record: i.record, signed: i.signed }))
}
