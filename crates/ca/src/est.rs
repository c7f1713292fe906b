//! The bodies of EST (RFC 7030) answers, as DER: a "certs-only" CMS
//! SignedData (RFC 5652 with no signers, how EST hands out the CA
//! certificates and an issued certificate) and the CSR attributes a device
//! should use. Built from the `cms` and `der` crates' types: the encoding is
//! theirs, not ours.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::SetOfVec;
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};

use crate::CaError;

/// id-signedData (RFC 5652, 5.1).
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-data: the (absent) content of a certs-only message.
const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// ecdsa-with-SHA256: what a device's CSR should be signed with.
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-ecPublicKey, and secp256r1: the key the profile prefers.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

fn encoding(e: der::Error) -> CaError {
    CaError::malformed("certs-only message", e)
}

/// A certs-only message holding `certs` (each DER), as `openssl pkcs7
/// -print_certs` and every EST client read it.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, CaError> {
    let mut choices = Vec::with_capacity(certs.len());
    for der in certs {
        let cert = x509_cert::Certificate::from_der(der).map_err(encoding)?;
        choices.push(CertificateChoices::Certificate(cert));
    }
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo { econtent_type: DATA, econtent: None },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices).map_err(encoding)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&signed).map_err(encoding)? };
    info.to_der().map_err(encoding)
}

/// The certificates of a certs-only message (DER each), as an EST client
/// reads an answer.
pub fn certificates_of(der: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    let info = ContentInfo::from_der(der).map_err(encoding)?;
    if info.content_type != SIGNED_DATA {
        return Err(CaError::malformed("certs-only message", "not a SignedData"));
    }
    let signed: SignedData = info.content.decode_as().map_err(encoding)?;
    let mut out = Vec::new();
    for c in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(cert) = c {
            out.push(cert.to_der().map_err(encoding)?);
        }
    }
    Ok(out)
}

/// The CSR attributes (RFC 7030, 4.5.2): a SEQUENCE OF the OIDs a device
/// should use — an EC key, signed with ECDSA and SHA-256.
pub fn csr_attributes() -> Result<Vec<u8>, CaError> {
    vec![EC_PUBLIC_KEY, ECDSA_WITH_SHA256].to_der().map_err(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hierarchy, HierarchyNames, InMemory, Profile};

    #[test]
    fn a_certs_only_message_holds_the_certificates_and_no_signer() {
        let profile = Profile::new("http://pki.example.test").expect("profile");
        let now = time::OffsetDateTime::now_utc();
        let h = Hierarchy::create(&profile, &HierarchyNames::default(), &[], &InMemory, now).expect("hierarchy");
        let (root, issuing) = (h.root_der.clone(), h.issuing_der.clone());
        let der = certs_only(&[&issuing, &root]).expect("message");
        let info = ContentInfo::from_der(&der).expect("ContentInfo");
        let signed: SignedData = info.content.decode_as().expect("SignedData");
        assert!(signed.signer_infos.0.is_empty());
        let held = certificates_of(&der).expect("certificates");
        assert!(held.contains(&root) && held.contains(&issuing) && held.len() == 2);
        assert!(certs_only(&[b"not a certificate"]).is_err());
    }
}
