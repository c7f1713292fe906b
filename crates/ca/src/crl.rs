//! The issuing CA's CRL (RFC 5280 v2): CRL number, reason codes, revocation
//! times; signed by the issuing CA with rcgen.

use connect_pki_domain::Reason;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use crate::error::CaError;
use crate::issue::IssuingCa;

/// One revoked certificate on the CRL.
#[derive(Debug, Clone)]
pub struct CrlEntry {
    /// DER INTEGER content bytes of the serial.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    pub reason: Reason,
}

fn rcgen_reason(r: Reason) -> Option<RevocationReason> {
    // RFC 5280 §5.3.1: rather than `unspecified`, leave the extension out.
    match r {
        Reason::Unspecified => None,
        Reason::KeyCompromise => Some(RevocationReason::KeyCompromise),
        Reason::CaCompromise => Some(RevocationReason::CaCompromise),
        Reason::AffiliationChanged => Some(RevocationReason::AffiliationChanged),
        Reason::Superseded => Some(RevocationReason::Superseded),
        Reason::CessationOfOperation => Some(RevocationReason::CessationOfOperation),
        Reason::CertificateHold => Some(RevocationReason::CertificateHold),
        Reason::RemoveFromCrl => Some(RevocationReason::RemoveFromCrl),
        Reason::PrivilegeWithdrawn => Some(RevocationReason::PrivilegeWithdrawn),
        Reason::AaCompromise => Some(RevocationReason::AaCompromise),
    }
}

impl IssuingCa {
    /// Signs a CRL listing `entries`, numbered `number`.
    pub fn sign_crl(
        &self,
        entries: impl IntoIterator<Item = CrlEntry>,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, CaError> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: entries
                .into_iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial),
                    revocation_time: e.revoked_at,
                    reason_code: rcgen_reason(e.reason),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(self.issuer())?.der().to_vec())
    }
}

/// A CRL we published, read back and checked.
#[derive(Debug, Clone)]
pub struct PublishedCrl {
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub entries: Vec<CrlEntry>,
}

/// Reads a DER CRL and checks that the issuing CA `issuer_der` signed it
/// (signature and issuer name). A CRL that fails either is not ours, and
/// says nothing about what we revoked.
pub fn read_published(der: &[u8], issuer_der: &[u8]) -> Result<PublishedCrl, CaError> {
    let (_, issuer) =
        x509_parser::parse_x509_certificate(issuer_der).map_err(|e| CaError::malformed("issuing CA certificate", e))?;
    let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|e| CaError::malformed("CRL", e))?;
    if !rest.is_empty() {
        return Err(CaError::malformed("CRL", "trailing bytes after the CRL"));
    }
    if crl.issuer() != issuer.subject() {
        return Err(CaError::malformed("CRL", format!("issued by {}, not by {}", crl.issuer(), issuer.subject())));
    }
    crl.verify_signature(issuer.public_key()).map_err(|e| {
        CaError::malformed("CRL", format!("its signature does not verify with the issuing CA's key: {e}"))
    })?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n.clone()).ok())
        .ok_or_else(|| CaError::malformed("CRL", "no CRL number"))?;
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntry {
            serial: r.raw_serial().to_vec(),
            revoked_at: r.revocation_date.to_datetime(),
            reason: r.reason_code().and_then(|(_, code)| Reason::from_code(code.0)).unwrap_or(Reason::Unspecified),
        })
        .collect();
    Ok(PublishedCrl { number, this_update: crl.last_update().to_datetime(), entries })
}
