//! The places of a SCEP exchange that name the requester's own certificate,
//! whose serial number may break RFC 5280's 20-byte limit: it is a
//! client's throwaway self-signed certificate, not one of ours (certmonger
//! gives its own 32 bytes). Read and written with x509-cert's `Raw`
//! profile; everything else keeps the `cms` crate's types, which check the
//! limit.

use cms::content_info::CmsVersion;
use cms::enveloped_data::EncryptedContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedAttributes, UnsignedAttributes};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Reader, Sequence, SliceReader};
use spki::AlgorithmIdentifierOwned;
use x509_cert::certificate::{CertificateInner, Raw};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

/// A requester's certificate, whatever the length of its serial number.
pub type Certificate = CertificateInner<Raw>;

/// IssuerAndSerialNumber (RFC 5652, 10.2.4) of such a certificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct IssuerSerial {
    pub issuer: Name,
    pub serial_number: SerialNumber<Raw>,
}

impl IssuerSerial {
    pub(crate) fn of(cert: &Certificate) -> Self {
        Self { issuer: cert.tbs_certificate.issuer.clone(), serial_number: cert.tbs_certificate.serial_number.clone() }
    }
}

/// SignerInfo (RFC 5652, 5.3) whose signer is named by issuer and serial.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SignerInfo {
    pub version: CmsVersion,
    pub sid: IssuerSerial,
    pub digest_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub signed_attrs: Option<SignedAttributes>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: OctetString,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub unsigned_attrs: Option<UnsignedAttributes>,
}

/// SignedData (RFC 5652, 5.1) as a request carries it. The SETs whose
/// members hold such serial numbers are read member by member: the `Raw`
/// profile has no DER ordering, and nothing here depends on their order.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SignedData {
    pub version: CmsVersion,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<Vec<Certificate>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<Vec<Any>>,
    /// SET OF SignerInfo.
    pub signer_infos: Any,
}

impl SignedData {
    /// The members of `signer_infos`.
    pub(crate) fn signers(&self) -> der::Result<Vec<SignerInfo>> {
        let mut reader = SliceReader::new(self.signer_infos.value())?;
        let mut out = Vec::new();
        while !reader.is_finished() {
            out.push(SignerInfo::decode(&mut reader)?);
        }
        Ok(out)
    }
}

/// KeyTransRecipientInfo (RFC 5652, 6.2.1) addressed to such a certificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct KeyTransRecipientInfo {
    pub version: CmsVersion,
    pub rid: IssuerSerial,
    pub key_enc_alg: AlgorithmIdentifierOwned,
    pub enc_key: OctetString,
}

/// EnvelopedData (RFC 5652, 6.1) with key-transport recipients only: the
/// answer to a requester.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EnvelopedData {
    pub version: CmsVersion,
    /// SET OF RecipientInfo: here one KeyTransRecipientInfo.
    pub recip_infos: Any,
    pub encrypted_content: EncryptedContentInfo,
}
