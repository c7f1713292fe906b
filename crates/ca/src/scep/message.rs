//! Reading a pkiMessage (RFC 8894, 3.2): a CMS SignedData whose signed
//! attributes say what it is, signed by the requester, enclosing the
//! envelope only the RA can open.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use cms::content_info::ContentInfo;
use der::asn1::{OctetString, PrintableStringRef};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};

use super::envelope::{self, Opener};
use super::lenient::{Certificate, IssuerSerial, SignedData, SignerInfo};
use super::{FailInfo, MessageType, Rejected, ReplyTo, Request, ScepRa, ber, oid};
use crate::CaError;

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("SCEP message", why)
}

/// Reads, checks and opens a request from `body` (BER or DER).
pub(crate) fn read(ra: &ScepRa, body: &[u8]) -> Result<Request, Rejected> {
    let unanswerable = |e: CaError| Rejected { reply_to: None, fail: FailInfo::BadRequest, why: e };
    let der = ber::to_der(body).map_err(unanswerable)?;
    let info = ContentInfo::from_der(&der).map_err(|e| unanswerable(bad(e)))?;
    if info.content_type != oid::SIGNED_DATA {
        return Err(unanswerable(bad("not a SignedData")));
    }
    let signed: SignedData = info.content.decode_as().map_err(|e| unanswerable(bad(e)))?;
    let signers = signed.signers().map_err(|e| unanswerable(bad(e)))?;
    let [signer] = signers.as_slice() else {
        return Err(unanswerable(bad("a pkiMessage has exactly one signer")));
    };
    let signer_cert = signer_certificate(&signed, signer).map_err(unanswerable)?;
    let attrs = Attributes::of(signer).map_err(unanswerable)?;
    let reply_to = ReplyTo {
        transaction_id: attrs.transaction_id.clone(),
        sender_nonce: attrs.sender_nonce.clone(),
        signer: signer_cert.clone(),
        kind: attrs.kind,
    };
    let answerable = |fail, why| Rejected { reply_to: Some(Box::new(reply_to.clone())), fail, why };
    let Some(kind) = attrs.kind else {
        return Err(answerable(FailInfo::BadRequest, bad("the messageType is not a request")));
    };
    let econtent = signed.encap_content_info.econtent.as_ref().ok_or_else(|| bad("no content"));
    let econtent: OctetString =
        econtent.and_then(|a| a.decode_as().map_err(bad)).map_err(|e| answerable(FailInfo::BadRequest, e))?;
    verify(signer, &signer_cert, econtent.as_bytes(), &attrs).map_err(|e| answerable(FailInfo::BadMessageCheck, e))?;
    let envelope = ber::to_der(econtent.as_bytes()).map_err(|e| answerable(FailInfo::BadRequest, e))?;
    let opener = Opener { issuer_and_serial: &ra.issuer_and_serial, key: &ra.decrypting };
    let (content, cipher) = envelope::open(&envelope, &opener).map_err(|e| answerable(FailInfo::BadMessageCheck, e))?;
    Ok(Request { kind, reply_to, content, cipher })
}

/// The certificate `signer` names among those the message carries.
fn signer_certificate(signed: &SignedData, signer: &SignerInfo) -> Result<Certificate, CaError> {
    let mut certs = signed.certificates.iter().flat_map(|s| s.iter());
    certs
        .find(|c| IssuerSerial::of(c) == signer.sid)
        .cloned()
        .ok_or_else(|| bad("the signer's certificate is not in the message"))
}

/// The signed attributes SCEP needs.
struct Attributes {
    kind: Option<MessageType>,
    transaction_id: String,
    sender_nonce: Vec<u8>,
    message_digest: Vec<u8>,
    /// The attributes as signed: a DER SET (RFC 5652, 5.4).
    signed_der: Vec<u8>,
}

impl Attributes {
    fn of(signer: &SignerInfo) -> Result<Self, CaError> {
        let attrs = signer.signed_attrs.as_ref().ok_or_else(|| bad("no signed attributes"))?;
        let one = |oid: ObjectIdentifier| {
            attrs
                .iter()
                .find(|a| a.oid == oid)
                .and_then(|a| a.values.iter().next())
                .ok_or_else(|| bad(format!("the signed attribute {oid} is missing")))
        };
        let printable = |oid| -> Result<String, CaError> {
            Ok(one(oid)?.decode_as::<PrintableStringRef<'_>>().map_err(bad)?.as_str().to_string())
        };
        let octets = |oid| -> Result<Vec<u8>, CaError> {
            Ok(one(oid)?.decode_as::<OctetString>().map_err(bad)?.as_bytes().to_vec())
        };
        let content_type: ObjectIdentifier = one(oid::CONTENT_TYPE)?.decode_as().map_err(bad)?;
        if content_type != oid::DATA {
            return Err(bad("the signed content type is not id-data"));
        }
        let transaction_id = printable(oid::TRANSACTION_ID)?;
        if transaction_id.is_empty() || transaction_id.len() > 128 {
            return Err(bad("a transactionID of 1 to 128 characters is required"));
        }
        let sender_nonce = octets(oid::SENDER_NONCE)?;
        if sender_nonce.len() > 64 {
            return Err(bad("the senderNonce is longer than 64 bytes"));
        }
        Ok(Attributes {
            kind: MessageType::parse(&printable(oid::MESSAGE_TYPE)?),
            transaction_id,
            sender_nonce,
            message_digest: octets(oid::MESSAGE_DIGEST)?,
            signed_der: attrs.to_der().map_err(bad)?,
        })
    }
}

/// The digest and the requester's signature over the signed attributes.
/// SHA-1 is read from clients that sign with it whatever GetCACaps says
/// (it proves possession of a key, it certifies nothing); our answers use
/// SHA-256.
fn verify(signer: &SignerInfo, cert: &Certificate, content: &[u8], attrs: &Attributes) -> Result<(), CaError> {
    let (hash, rsa): (&'static digest::Algorithm, &'static signature::RsaParameters) = match signer.digest_alg.oid {
        oid::SHA1 => (&digest::SHA1_FOR_LEGACY_USE_ONLY, &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        oid::SHA256 => (&digest::SHA256, &signature::RSA_PKCS1_2048_8192_SHA256),
        oid::SHA384 => (&digest::SHA384, &signature::RSA_PKCS1_2048_8192_SHA384),
        oid::SHA512 => (&digest::SHA512, &signature::RSA_PKCS1_2048_8192_SHA512),
        other => return Err(bad(format!("digest {other} is not offered: use SHA-256"))),
    };
    let algorithm = signer.signature_algorithm.oid;
    let named_hash = match algorithm {
        oid::RSA_ENCRYPTION => None,
        oid::SHA1_WITH_RSA => Some(oid::SHA1),
        oid::SHA256_WITH_RSA => Some(oid::SHA256),
        oid::SHA384_WITH_RSA => Some(oid::SHA384),
        oid::SHA512_WITH_RSA => Some(oid::SHA512),
        other => return Err(bad(format!("signature algorithm {other} is not offered: sign with RSA"))),
    };
    if named_hash.is_some_and(|h| h != signer.digest_alg.oid) {
        return Err(bad("the signature algorithm and the digest algorithm disagree"));
    }
    if digest::digest(hash, content).as_ref() != attrs.message_digest.as_slice() {
        return Err(bad("the messageDigest does not match the content"));
    }
    let key = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    UnparsedPublicKey::new(rsa, key)
        .verify(&attrs.signed_der, signer.signature.as_bytes())
        .map_err(|_| bad("the signature does not verify with the signer's certificate"))
}

/// The challengePassword of a PKCS#10 request, if it has one.
pub(crate) fn challenge_of(csr_der: &[u8]) -> Option<String> {
    use x509_parser::cri_attributes::ParsedCriAttribute;
    use x509_parser::prelude::FromDer;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(csr_der).ok()?;
    csr.certification_request_info.iter_attributes().find_map(|a| match a.parsed_attribute() {
        ParsedCriAttribute::ChallengePassword(p) => Some(p.0.clone()),
        _ => None,
    })
}
