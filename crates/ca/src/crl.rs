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
