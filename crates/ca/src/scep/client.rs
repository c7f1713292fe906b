//! What a SCEP client sends, made here for the benchmark and the in-process
//! tests (devices use their own clients; the end-to-end tests use
//! micromdm's and strongSwan's): a PKCSReq for a one-time code, signed by a
//! self-signed certificate of the requester's RSA key and encrypted to the
//! RA, and the certificate read back out of the CertRep.

use der::Encode;
use der::asn1::SetOfVec;
use rcgen::{CertificateParams, DistinguishedName, DnType};

use super::{envelope, oid, reply};
use crate::CaError;
use crate::keys::PrivateKey;

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("SCEP request", why)
}

/// A requester: an RSA key and the self-signed certificate it signs with.
pub struct Requester {
    key: PrivateKey,
    cert: x509_cert::Certificate,
}

impl Requester {
    /// `key` must be RSA: the answer is encrypted to it.
    pub fn new(key: PrivateKey) -> Result<Self, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "SCEP requester");
        let cert = params.self_signed(&key.0)?;
        Ok(Self { cert: reply::certificate(cert.der())?, key })
    }

    /// A PKCSReq for `login` (the CN; `None`: an empty subject) with the
    /// one-time `challenge`, encrypted to the RA certificate `ra_der`.
    pub fn pkcs_req(
        &self,
        ra_der: &[u8],
        login: Option<&str>,
        challenge: &str,
        transaction_id: &str,
    ) -> Result<Vec<u8>, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = login {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let values = SetOfVec::try_from(vec![reply::printable(challenge)?]).map_err(bad)?.to_der().map_err(bad)?;
        let password = rcgen::Attribute { oid: &[1, 2, 840, 113549, 1, 9, 7], values };
        let csr = params.serialize_request_with_attributes(&self.key.0, vec![password])?;
        let ra = <super::lenient::Certificate as der::Decode>::from_der(ra_der).map_err(bad)?;
        let envelope = envelope::seal(csr.der(), &ra)?;
        let kind = reply::attribute(oid::MESSAGE_TYPE, reply::printable("19")?)?;
        reply::signed(&self.cert, &self.key.0, transaction_id, vec![kind], Some(&envelope))
    }
}

impl Requester {
    /// The certificate a CertRep carries for this requester (DER), opened
    /// with its key; `None` for a FAILURE (no envelope).
    pub fn certificate_of(&self, cert_rep: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        use cms::content_info::ContentInfo;
        use cms::signed_data::SignedData;
        use der::Decode;
        let info = ContentInfo::from_der(&super::ber::to_der(cert_rep)?).map_err(bad)?;
        let signed: SignedData = info.content.decode_as().map_err(bad)?;
        let Some(content) = signed.encap_content_info.econtent else { return Ok(None) };
        let envelope: der::asn1::OctetString = content.decode_as().map_err(bad)?;
        let me = reply::issuer_and_serial(&self.cert);
        let key = envelope::decrypting_key(self.key.pkcs8_der())?;
        let opener = envelope::Opener { issuer_and_serial: &me, key: &key };
        let (certs_only, _) = envelope::open(envelope.as_bytes(), &opener)?;
        Ok(crate::est::certificates_of(&certs_only)?.into_iter().next())
    }
}
