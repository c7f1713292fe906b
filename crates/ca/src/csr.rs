//! CSR checks. Only the public key is taken from a CSR: its subject and any
//! requested extensions are ignored, because the profile (and the enrollment
//! code's user) decides what the certificate says.

use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};
use x509_parser::public_key::PublicKey;

use crate::error::CaError;
use crate::keys::KeyKind;

/// The smallest RSA modulus accepted (DESIGN §4).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// A CSR whose signature verified and whose key fits the profile.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    /// The SubjectPublicKeyInfo DER to certify.
    pub spki_der: Vec<u8>,
    /// The key's algorithm family (RSA keys are reported as `Rsa2048` for any
    /// size of at least 2048 bits).
    pub key_kind: KeyKind,
    /// The key size in bits.
    pub key_bits: usize,
    /// The subject's common names, as requested (only checked, never copied).
    pub(crate) subject_cns: Vec<String>,
    /// URIs the request asks for in a subjectAltName extension (only checked, never copied).
    pub(crate) requested_uris: Vec<String>,
}

impl CheckedCsr {
    /// Refuses a request that names someone other than `login_id`: a subject
    /// CN that differs from it, or a connect-pki identity URI of its own.
    /// The certificate's identity is always set by the service; this only
    /// turns an attempt to claim another user into a clear error.
    pub fn check_claims(&self, login_id: &str) -> Result<(), CaError> {
        if let Some(cn) = self.subject_cns.iter().find(|cn| cn.as_str() != login_id) {
            return Err(CaError::SubjectMismatch(format!(
                "the request's subject CN {cn:?} names someone else; use CN={login_id} or an empty subject"
            )));
        }
        if let Some(uri) = self.requested_uris.iter().find(|u| u.starts_with("urn:connect-pki:")) {
            return Err(CaError::SubjectMismatch(format!(
                "the request asks for the identity {uri:?}; identities are assigned by the service, leave it out"
            )));
        }
        Ok(())
    }
}

/// Parses a CSR given as PEM (`CERTIFICATE REQUEST`) or DER, verifies its
/// self-signature (proof of possession) and checks the key type and size.
pub fn parse_csr(input: &[u8]) -> Result<CheckedCsr, CaError> {
    let der = to_der(input)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CaError::BadCsr(format!("not a PKCS#10 request ({e})")))?;
    if !rest.is_empty() {
        return Err(CaError::BadCsr("trailing data after the request".into()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let key = spki.parsed().map_err(|e| CaError::BadCsr(format!("unreadable public key ({e})")))?;
    let algorithm = &spki.algorithm.algorithm;
    let (key_kind, key_bits) = if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => (KeyKind::P256, 256),
            Some(c) if c == OID_NIST_EC_P384 => (KeyKind::P384, 384),
            _ => return Err(CaError::KeyNotAllowed("EC keys must be on P-256 or P-384".into())),
        }
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let bits = match &key {
            PublicKey::RSA(rsa) => rsa.key_size(),
            _ => 0,
        };
        if bits < MIN_RSA_BITS {
            return Err(CaError::KeyNotAllowed(format!(
                "RSA key of {bits} bits is too small: at least {MIN_RSA_BITS} bits are required"
            )));
        }
        (KeyKind::Rsa2048, bits)
    } else {
        return Err(CaError::KeyNotAllowed(format!(
            "key algorithm {algorithm} is not allowed: use ECDSA P-256, P-384 or RSA of at least {MIN_RSA_BITS} bits"
        )));
    };
    // Checked after the key policy so that a too-small key is reported as
    // such (aws-lc refuses to verify RSA-1024 signatures at all).
    csr.verify_signature().map_err(|_| {
        CaError::BadCsr("signature does not verify: the request was altered or not signed by its key".into())
    })?;
    let subject_cns = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .map(|cn| cn.as_str().map(str::to_string).unwrap_or_else(|_| format!("{:?}", cn.as_slice())))
        .collect();
    let requested_uris = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|ext| match ext {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.iter().filter_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })),
            _ => None,
        })
        .flatten()
        .collect();
    Ok(CheckedCsr { spki_der: spki.raw.to_vec(), key_kind, key_bits, subject_cns, requested_uris })
}

fn to_der(input: &[u8]) -> Result<Vec<u8>, CaError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(trimmed).map_err(|e| CaError::BadCsr(format!("unreadable PEM ({e})")))?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CaError::BadCsr(format!("expected a CERTIFICATE REQUEST, found {:?}", pem.label)));
        }
        Ok(pem.contents)
    } else if trimmed.is_empty() {
        Err(CaError::BadCsr("the request is empty".into()))
    } else {
        Ok(input.to_vec())
    }
}
