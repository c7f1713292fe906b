//! An OCSP client for the in-process tests: the request `openssl ocsp`
//! sends (SHA-1 CertID) and the checks it makes on the answer.

use der::{Decode, Encode};
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};

/// A DER request about `cert_der`, issued by `issuer_der`.
pub fn request(issuer_der: &[u8], cert_der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("certificate");
    connect_pki_ca::ocsp::request(issuer_der, cert.raw_serial()).expect("DER request")
}

/// The status in a response to a one-certificate request, as `openssl ocsp`
/// prints it. Panics unless the response is successful and signed by the
/// responder certificate `ocsp_der` (what "Response verify OK" says).
pub fn status(response: &[u8], ocsp_der: &[u8]) -> String {
    let r = OcspResponse::from_der(response).expect("an OCSP response");
    assert_eq!(r.response_status, OcspResponseStatus::Successful, "OCSP response status");
    let bytes = r.response_bytes.expect("a basic response");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("a basic response");
    let certs = basic.certs.as_deref().unwrap_or_default();
    let signer = certs.first().expect("the responder certificate").to_der().expect("DER");
    assert_eq!(signer, ocsp_der, "signed by another responder");
    let (_, cert) = x509_parser::parse_x509_certificate(ocsp_der).expect("responder certificate");
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.to_vec(),
    );
    let tbs = basic.tbs_response_data.to_der().expect("DER");
    key.verify(&tbs, basic.signature.raw_bytes()).expect("the response signature verifies");
    let single = basic.tbs_response_data.responses.first().expect("one answer");
    match &single.cert_status {
        CertStatus::Good(_) => "good".into(),
        CertStatus::Unknown(_) => "unknown".into(),
        CertStatus::Revoked(info) => match info.revocation_reason {
            Some(reason) => format!("revoked {}", reason_name(reason)),
            None => "revoked".into(),
        },
    }
}

/// The reason as openssl names it.
fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}
