//! OCSP (RFC 6960, RFC 5019 profile): parsing requests and signing responses
//! with the delegated OCSP signer. The ASN.1 structures are x509-ocsp's; the
//! signature and the CertID hashes are made with aws-lc-rs, the backend every
//! other signature here uses.

use aws_lc_rs::digest;
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rcgen::SigningKey;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};

use connect_pki_domain::Reason;

use crate::error::CaError;
use crate::keys::CaKey;

const OID_SHA1: &str = "1.3.14.3.2.26";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// Most CertIDs answered in one request.
pub(crate) const MAX_CERT_IDS: usize = 64;
/// Longest nonce accepted (RFC 8954: 1 to 32 octets).
const MAX_NONCE: usize = 32;

/// Why a request gets no per-certificate answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed OCSP request (or beyond our limits).
    Malformed,
    /// Asks about a certificate of another issuer.
    Unauthorized,
}

/// The answer for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked { at: OffsetDateTime, reason: Reason },
    Unknown,
}

/// One certificate asked about.
#[derive(Debug, Clone)]
pub struct Item {
    /// The CertID answered: built here from our own hashes and the serial,
    /// never copied from the request, so that no byte a requester chose is
    /// signed into an answer others are served (issue 24).
    pub id: CertId,
    /// The serial as DER INTEGER content without leading zeros.
    pub serial: Vec<u8>,
    /// Whether the CertID hashes are SHA-256 (else SHA-1).
    pub sha256: bool,
    /// Whether the hash algorithm's parameters are NULL (else absent): the
    /// two forms clients send, answered in the form asked.
    pub null_parameters: bool,
}

/// A parsed request: the CertIDs asked about and the nonce extension, if any
/// (built here around the requester's nonce, non-critical).
#[derive(Debug, Clone)]
pub struct Request {
    pub items: Vec<Item>,
    pub nonce: Option<Extension>,
}

/// The CertID hashes of our issuing CA, for both hash algorithms clients use.
#[derive(Debug, Clone)]
struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

/// Signs OCSP responses for the issuing CA with the delegated signer.
pub struct OcspSigner {
    key: CaKey,
    cert: Certificate,
    cert_der: Vec<u8>,
    responder_key_hash: Vec<u8>,
    issuer: IssuerHashes,
    sha1: ObjectIdentifier,
    sha256: ObjectIdentifier,
}

impl std::fmt::Debug for OcspSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspSigner").finish_non_exhaustive()
    }
}

fn oid(s: &str) -> Result<ObjectIdentifier, CaError> {
    ObjectIdentifier::new(s).map_err(|e| CaError::malformed("OID", e))
}

fn hash(alg: &'static digest::Algorithm, data: &[u8]) -> Vec<u8> {
    digest::digest(alg, data).as_ref().to_vec()
}

fn spki_key_and_name(der: &[u8], what: &str) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| CaError::malformed(what, e))?;
    Ok((c.public_key().subject_public_key.data.to_vec(), c.subject().as_raw().to_vec()))
}

impl OcspSigner {
    /// The signer from its certificate and key, answering for the CA whose
    /// certificate is `issuer_der`.
    pub fn new(signer_der: &[u8], key: CaKey, issuer_der: &[u8]) -> Result<Self, CaError> {
        let cert = Certificate::from_der(signer_der).map_err(|e| CaError::malformed("OCSP signer certificate", e))?;
        let (signer_key, _) = spki_key_and_name(signer_der, "OCSP signer certificate")?;
        // A key left over from an interrupted renewal would sign answers no
        // relying party can verify.
        let (_, cert_x509) = x509_parser::parse_x509_certificate(signer_der)
            .map_err(|e| CaError::malformed("OCSP signer certificate", e))?;
        if cert_x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(CaError::malformed("OCSP signer key", "it does not belong to the OCSP signer certificate"));
        }
        let (issuer_key, issuer_name) = spki_key_and_name(issuer_der, "issuing CA certificate")?;
        let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
        Ok(Self {
            key,
            cert,
            cert_der: signer_der.to_vec(),
            responder_key_hash: hash(sha1, &signer_key),
            issuer: IssuerHashes {
                sha1: (hash(sha1, &issuer_name), hash(sha1, &issuer_key)),
                sha256: (hash(&digest::SHA256, &issuer_name), hash(&digest::SHA256, &issuer_key)),
            },
            sha1: oid(OID_SHA1)?,
            sha256: oid(OID_SHA256)?,
        })
    }

    /// The signer's own certificate (DER), as sent in every response.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// `payload` signed as a receipt (`crate::receipt`) by this signer,
    /// whose issuing CA is `issuer_der`.
    pub fn receipt(&self, issuer_der: &[u8], payload: &[u8]) -> Result<String, CaError> {
        crate::receipt::sign(&self.key, &[&self.cert_der, issuer_der], payload)
    }

    /// Parses a DER request and checks that every CertID names our issuing CA.
    pub fn parse(&self, der: &[u8]) -> Result<Request, Refusal> {
        let req = OcspRequest::from_der(der).map_err(|_| Refusal::Malformed)?;
        let list = &req.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_CERT_IDS {
            return Err(Refusal::Malformed);
        }
        let nonce = match &req.tbs_request.request_extensions {
            Some(exts) => nonce_of(exts)?,
            None => None,
        };
        let mut items = Vec::with_capacity(list.len());
        for r in list {
            items.push(self.item(&r.req_cert)?);
        }
        Ok(Request { items, nonce })
    }

    /// The CertID `id` asked about, rebuilt from our issuer hashes: SHA-1 or
    /// SHA-256 with NULL or absent parameters (anything else is malformed);
    /// another issuer's hashes are not ours to answer.
    fn item(&self, id: &CertId) -> Result<Item, Refusal> {
        let null_parameters = match &id.hash_algorithm.parameters {
            None => false,
            Some(p) if der::Tagged::tag(p) == der::Tag::Null && p.value().is_empty() => true,
            Some(_) => return Err(Refusal::Malformed),
        };
        let sha256 = id.hash_algorithm.oid == self.sha256;
        let (name, key) = if sha256 {
            &self.issuer.sha256
        } else if id.hash_algorithm.oid == self.sha1 {
            &self.issuer.sha1
        } else {
            return Err(Refusal::Malformed);
        };
        if id.issuer_name_hash.as_bytes() != name.as_slice() || id.issuer_key_hash.as_bytes() != key.as_slice() {
            return Err(Refusal::Unauthorized);
        }
        let serial = id.serial_number.as_bytes();
        let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        let canonical = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: id.hash_algorithm.oid,
                parameters: null_parameters.then(|| der::asn1::Null.into()),
            },
            issuer_name_hash: OctetString::new(name.clone()).map_err(|_| Refusal::Malformed)?,
            issuer_key_hash: OctetString::new(key.clone()).map_err(|_| Refusal::Malformed)?,
            // Decoded as DER, so already in its one encoding.
            serial_number: id.serial_number.clone(),
        };
        Ok(Item { id: canonical, serial: serial[start..].to_vec(), sha256, null_parameters })
    }

    /// A signed successful response with one SingleResponse per item, valid
    /// from `this_update` to `next_update`, echoing `nonce` when given.
    pub fn respond(
        &self,
        items: &[(CertId, Status)],
        nonce: Option<&Extension>,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, CaError> {
        let t = |at: OffsetDateTime| -> Result<OcspGeneralizedTime, CaError> {
            let since = std::time::Duration::from_secs(at.unix_timestamp().max(0) as u64);
            Ok(OcspGeneralizedTime(
                GeneralizedTime::from_unix_duration(since).map_err(|e| CaError::malformed("time", e))?,
            ))
        };
        let responses = items
            .iter()
            .map(|(id, status)| {
                Ok(SingleResponse {
                    cert_id: id.clone(),
                    cert_status: match status {
                        Status::Good => CertStatus::good(),
                        Status::Unknown => CertStatus::unknown(),
                        Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                            revocation_time: t(*at)?,
                            revocation_reason: crl_reason(*reason),
                        }),
                    },
                    this_update: t(this_update)?,
                    next_update: Some(t(next_update)?),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(self.responder_key_hash.clone()).map_err(|e| CaError::malformed("key hash", e))?,
            ),
            produced_at: t(this_update)?,
            responses,
            response_extensions: nonce.map(|n| vec![n.clone()]),
        };
        let tbs_der = tbs.to_der().map_err(|e| CaError::malformed("OCSP response", e))?;
        let signature = self.key.sign(&tbs_der)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned { oid: oid(OID_ECDSA_SHA256)?, parameters: None },
            signature: BitString::from_bytes(&signature).map_err(|e| CaError::malformed("signature", e))?,
            certs: Some(vec![self.cert.clone()]),
        };
        OcspResponse::successful(basic).and_then(|r| r.to_der()).map_err(|e| CaError::malformed("OCSP response", e))
    }
}

fn crl_reason(r: Reason) -> Option<CrlReason> {
    Some(match r {
        Reason::Unspecified => return None,
        Reason::KeyCompromise => CrlReason::KeyCompromise,
        Reason::CaCompromise => CrlReason::CaCompromise,
        Reason::AffiliationChanged => CrlReason::AffiliationChanged,
        Reason::Superseded => CrlReason::Superseded,
        Reason::CessationOfOperation => CrlReason::CessationOfOperation,
        Reason::CertificateHold => CrlReason::CertificateHold,
        Reason::RemoveFromCrl => CrlReason::RemoveFromCRL,
        Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        Reason::AaCompromise => CrlReason::AaCompromise,
    })
}

/// The nonce extension of a request, if it has one, rebuilt around its
/// nonce: RFC 8954's OCTET STRING of 1 to 32 octets, non-critical. A nonce of
/// another shape, or two of them, is malformed.
fn nonce_of(extensions: &[Extension]) -> Result<Option<Extension>, Refusal> {
    let nonce_oid = oid(OID_NONCE).map_err(|_| Refusal::Malformed)?;
    let mut found = extensions.iter().filter(|e| e.extn_id == nonce_oid);
    let Some(ext) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(Refusal::Malformed);
    }
    let nonce = OctetString::from_der(ext.extn_value.as_bytes()).map_err(|_| Refusal::Malformed)?;
    if nonce.as_bytes().is_empty() || nonce.as_bytes().len() > MAX_NONCE {
        return Err(Refusal::Malformed);
    }
    let value = nonce.to_der().map_err(|_| Refusal::Malformed)?;
    Ok(Some(Extension {
        extn_id: nonce_oid,
        critical: false,
        extn_value: OctetString::new(value).map_err(|_| Refusal::Malformed)?,
    }))
}

/// The unsigned error response for a refusal (RFC 6960 §2.3).
pub fn refusal_response(r: Refusal) -> Vec<u8> {
    let resp = match r {
        Refusal::Malformed => OcspResponse::malformed_request(),
        Refusal::Unauthorized => OcspResponse::unauthorized(),
    };
    // Encoding a status-only response cannot fail; an empty body would still
    // be answered with the right HTTP status by the caller.
    resp.to_der().unwrap_or_default()
}

/// The unsigned `tryLater` response: the responder cannot vouch for its
/// answers right now (RFC 6960 §2.3).
pub fn try_later_response() -> Vec<u8> {
    OcspResponse::try_later().to_der().unwrap_or_default()
}

/// The unsigned `internalError` response.
pub fn internal_error_response() -> Vec<u8> {
    OcspResponse::internal_error().to_der().unwrap_or_default()
}

/// The request an RFC 5019 client sends about the certificate with `serial`
/// (its DER INTEGER content bytes) from the CA `issuer_der`: one SHA-1
/// CertID, no nonce, unsigned. For clients of our own: the benchmark and the
/// tests.
pub fn request(issuer_der: &[u8], serial: &[u8]) -> Result<Vec<u8>, CaError> {
    let (issuer_key, issuer_name) = spki_key_and_name(issuer_der, "issuer certificate")?;
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let encoding = |e: der::Error| CaError::malformed("OCSP request", e);
    let id = x509_ocsp::CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: oid(OID_SHA1)?, parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: OctetString::new(hash(sha1, &issuer_name)).map_err(encoding)?,
        issuer_key_hash: OctetString::new(hash(sha1, &issuer_key)).map_err(encoding)?,
        serial_number: x509_cert::serial_number::SerialNumber::new(serial).map_err(encoding)?,
    };
    let request = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request { req_cert: id, single_request_extensions: None }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().map_err(encoding)
}

/// What a response read back by [`read_response`] says about its first
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResponse {
    /// DER INTEGER content bytes of the serial asked about.
    pub serial: Vec<u8>,
    /// `good`, `revoked` or `unknown`.
    pub status: &'static str,
    pub(crate) revoked_at: Option<OffsetDateTime>,
    /// Why, when revoked: `Unspecified` when the response gives no reason,
    /// as the responder leaves the extension out for that one.
    pub reason: Option<Reason>,
    pub produced_at: OffsetDateTime,
}

/// Reads a successful response and checks it: signed by the responder
/// certificate it carries, which the CA `issuer_der` issued.
pub fn read_response(der: &[u8], issuer_der: &[u8]) -> Result<ReadResponse, CaError> {
    let bad = |why: &dyn std::fmt::Display| CaError::malformed("OCSP response", why);
    let r = OcspResponse::from_der(der).map_err(|e| bad(&e))?;
    let bytes = r.response_bytes.ok_or_else(|| bad(&"not a successful response"))?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| bad(&e))?;
    let signer = basic.certs.as_deref().unwrap_or_default().first().ok_or_else(|| bad(&"no responder certificate"))?;
    let signer_der = signer.to_der().map_err(|e| bad(&e))?;
    let (_, signer) = x509_parser::parse_x509_certificate(&signer_der).map_err(|e| bad(&e))?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der).map_err(|e| bad(&e))?;
    signer
        .verify_signature(Some(issuer.public_key()))
        .map_err(|_| bad(&"the responder was not certified by the CA"))?;
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        signer.public_key().subject_public_key.data.to_vec(),
    );
    let tbs = basic.tbs_response_data.to_der().map_err(|e| bad(&e))?;
    key.verify(&tbs, basic.signature.raw_bytes()).map_err(|_| bad(&"its signature does not verify"))?;
    let single = basic.tbs_response_data.responses.first().ok_or_else(|| bad(&"no answer"))?;
    let time = |t: &OcspGeneralizedTime| {
        OffsetDateTime::from_unix_timestamp(t.0.to_unix_duration().as_secs() as i64).map_err(|e| bad(&e))
    };
    let (status, revoked_at, reason) = match &single.cert_status {
        CertStatus::Good(_) => ("good", None, None),
        CertStatus::Unknown(_) => ("unknown", None, None),
        CertStatus::Revoked(info) => {
            // `CrlReason` is `repr(u32)` with RFC 5280's numbers, the ones `from_code` reads.
            let reason = match info.revocation_reason {
                None => Reason::Unspecified,
                Some(r) => Reason::from_code(r as u8).ok_or_else(|| bad(&format!("unknown reason {r:?}")))?,
            };
            ("revoked", Some(time(&info.revocation_time)?), Some(reason))
        }
    };
    Ok(ReadResponse {
        serial: single.cert_id.serial_number.as_bytes().to_vec(),
        status,
        revoked_at,
        reason,
        produced_at: time(&basic.tbs_response_data.produced_at)?,
    })
}

/// Largest OCSP request read (a request for 64 certificates with a nonce is
/// under 6 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

/// The DER request in a `GET /ocsp/{request}` path: RFC 6960 appendix A says
/// base64 of the DER, URL-encoded (the router already decoded the `%xx`);
/// some clients send base64url instead. `None` for anything else, or for a
/// path longer than the largest request read.
pub fn decode_get_path(encoded: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if encoded.len() > MAX_REQUEST * 4 / 3 + 4 {
        return None;
    }
    let trimmed = encoded.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
}
