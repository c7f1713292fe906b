//! The CertRep message (RFC 8894, 3.3.2): signed by the RA, the issued
//! certificate sealed to the requester.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, PrintableStringRef, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::{Outcome, ReplyTo, ScepRa, envelope, oid};
use crate::CaError;

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("SCEP reply", why)
}

pub(crate) fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CaError> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value]).map_err(bad)? })
}

pub(crate) fn printable(s: &str) -> Result<Any, CaError> {
    Any::encode_from(&PrintableStringRef::new(s).map_err(bad)?).map_err(bad)
}

fn octets(b: &[u8]) -> Result<Any, CaError> {
    Any::encode_from(&OctetString::new(b).map_err(bad)?).map_err(bad)
}

/// The CertRep answering `to` with `outcome`, DER.
pub(crate) fn cert_rep(ra: &ScepRa, to: &ReplyTo, outcome: &Outcome<'_>) -> Result<Vec<u8>, CaError> {
    let (status, fail, envelope) = match outcome {
        Outcome::Issued(cert) => {
            let certs_only = crate::est::certs_only(&[cert])?;
            ("0", None, Some(envelope::seal(&certs_only, &to.signer)?))
        }
        Outcome::Failed(fail) => ("2", Some(*fail as u8), None),
    };
    let mut attrs =
        vec![attribute(oid::MESSAGE_TYPE, printable("3")?)?, attribute(oid::PKI_STATUS, printable(status)?)?];
    attrs.push(attribute(oid::RECIPIENT_NONCE, octets(&to.sender_nonce)?)?);
    if let Some(fail) = fail {
        attrs.push(attribute(oid::FAIL_INFO, printable(&fail.to_string())?)?);
    }
    signed(&ra.cert, &ra.key, &to.transaction_id, attrs, envelope.as_deref())
}

/// A pkiMessage: `content` (an envelope, if any) signed by `key`, whose
/// certificate `cert` it carries, with SCEP's `attrs`, the transaction and a
/// new sender nonce; SHA-256 throughout. Answers and (for the benchmark and
/// tests) requests alike.
pub(crate) fn signed(
    cert: &x509_cert::Certificate,
    key: &impl rcgen::SigningKey,
    transaction_id: &str,
    mut attrs: Vec<Attribute>,
    content: Option<&[u8]>,
) -> Result<Vec<u8>, CaError> {
    let mut nonce = [0u8; 16];
    SystemRandom::new().fill(&mut nonce).map_err(|_| bad("no randomness"))?;
    let digest = digest::digest(&digest::SHA256, content.unwrap_or_default());
    attrs.extend([
        attribute(oid::CONTENT_TYPE, Any::encode_from(&oid::DATA).map_err(bad)?)?,
        attribute(oid::MESSAGE_DIGEST, octets(digest.as_ref())?)?,
        attribute(oid::TRANSACTION_ID, printable(transaction_id)?)?,
        attribute(oid::SENDER_NONCE, octets(&nonce)?)?,
    ]);
    let signed_attrs = SetOfVec::try_from(attrs).map_err(bad)?;
    let signature = key.sign(&signed_attrs.to_der().map_err(bad)?).map_err(bad)?;
    let sha256 = AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: None };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(cert)),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        // rsaEncryption with the digest named beside it: what every SCEP
        // client (strongSwan's among them) reads.
        signature_algorithm: AlgorithmIdentifierOwned { oid: oid::RSA_ENCRYPTION, parameters: Some(Any::null()) },
        signature: OctetString::new(signature).map_err(bad)?,
        unsigned_attrs: None,
    };
    let certificates = vec![CertificateChoices::Certificate(cert.clone())];
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(bad)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: content.map(octets).transpose()?,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(certificates).map_err(bad)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(bad)?),
    };
    let info = ContentInfo { content_type: oid::SIGNED_DATA, content: Any::encode_from(&signed).map_err(bad)? };
    info.to_der().map_err(bad)
}

/// The issuer and serial number of `cert` (DER), as CMS names a certificate.
pub(crate) fn issuer_and_serial(cert: &x509_cert::Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
}

/// A certificate from DER.
pub(crate) fn certificate(der: &[u8]) -> Result<x509_cert::Certificate, CaError> {
    x509_cert::Certificate::from_der(der).map_err(bad)
}
