//! Signed receipts: a JSON document signed as a JWS (RFC 7515, compact
//! serialization) with ES256 by the delegated OCSP signer, whose certificate
//! and the issuing CA's travel in the `x5c` header. Anyone holding our root
//! certificate can check one with any JOSE library, or with an X.509
//! library and a few lines: the signature is over
//! `BASE64URL(header) || '.' || BASE64URL(payload)`.
//!
//! JWS is assembled here from `serde_json` and `base64` because no JOSE
//! crate signs with a key it cannot hold (a key in a token); the signature
//! itself is the CA key's ([`CaKey`]), the DER↔raw conversion `der`'s.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::error::CaError;
use crate::keys::CaKey;

const OID_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("signed record", why)
}

/// Signs `payload` with `key` (P-256), naming the signer by `chain`
/// (its certificate first, then the CA above it), as a compact JWS.
pub(crate) fn sign(key: &CaKey, chain: &[&[u8]], payload: &[u8]) -> Result<String, CaError> {
    let header = json!({
        "alg": "ES256",
        "typ": "JOSE",
        "cty": "json",
        "x5c": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
    });
    let header = serde_json::to_vec(&header).map_err(bad)?;
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    if rcgen::PublicKeyData::algorithm(key) != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(bad("the key is not a P-256 key"));
    }
    let der = rcgen::SigningKey::sign(key, input.as_bytes())?;
    let raw = crate::ecdsa::raw_from_der(&der, 32)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// A receipt whose signature and signer were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub payload: Value,
    /// The signer's certificate (DER).
    pub signer_der: Vec<u8>,
    /// Its subject, as openssl prints it.
    pub signer: String,
}

/// Checks a compact JWS made by [`sign`]: ES256 over its first two parts by
/// the key of `x5c[0]`, a delegated OCSP signer whose certificate was
/// signed by `x5c[1]`, which `root_der` signed. Returns the payload.
pub fn verify(jws: &str, root_der: &[u8]) -> Result<Verified, CaError> {
    let mut parts = jws.trim().split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a compact JWS (three base64url parts separated by dots)"));
    };
    let decode = |part: &str, what: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| bad(format!("{what}: {e}")));
    let header: Value = serde_json::from_slice(&decode(h, "header")?).map_err(|e| bad(format!("header: {e}")))?;
    if header["alg"] != "ES256" {
        return Err(bad(format!("algorithm {} (expected ES256)", header["alg"])));
    }
    let chain: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .ok_or_else(|| bad("no x5c certificate chain in the header"))?
        .iter()
        .map(|c| STANDARD.decode(c.as_str().unwrap_or_default()).map_err(|e| bad(format!("x5c: {e}"))))
        .collect::<Result<_, _>>()?;
    let [signer_der, issuer_der, ..] = chain.as_slice() else {
        return Err(bad("x5c must hold the signer's certificate and its issuing CA"));
    };
    let (signer, issuer, root) =
        (parse(signer_der, "signer")?, parse(issuer_der, "issuing CA")?, parse(root_der, "root CA")?);
    signer
        .verify_signature(Some(issuer.public_key()))
        .map_err(|_| bad("the signer's certificate was not signed by the issuing CA in x5c"))?;
    issuer
        .verify_signature(Some(root.public_key()))
        .map_err(|_| bad("the issuing CA in x5c was not signed by the trusted root"))?;
    let ocsp_signing =
        signer.extended_key_usage().ok().flatten().is_some_and(|e| {
            e.value.ocsp_signing || e.value.other.iter().any(|o| o.to_id_string() == OID_OCSP_SIGNING)
        });
    if !ocsp_signing {
        return Err(bad("the signer is not the CA's delegated OCSP signer"));
    }
    let sig = decode(s, "signature")?;
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key().subject_public_key.data.to_vec());
    key.verify(format!("{h}.{p}").as_bytes(), &sig).map_err(|_| bad("the signature does not verify"))?;
    let payload: Value = serde_json::from_slice(&decode(p, "payload")?).map_err(|e| bad(format!("payload: {e}")))?;
    Ok(Verified { payload, signer_der: signer_der.clone(), signer: signer.subject().to_string() })
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<x509_parser::certificate::X509Certificate<'a>, CaError> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("{what}: {e}")))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::{Hierarchy, HierarchyNames};
    use crate::{InMemory, Profile};

    fn hierarchy() -> Hierarchy {
        let profile = Profile::new("http://pki.example.test").expect("profile");
        Hierarchy::create(&profile, &HierarchyNames::default(), &[], &InMemory, time::OffsetDateTime::now_utc())
            .expect("hierarchy")
    }

    #[test]
    fn a_receipt_verifies_and_a_changed_one_does_not() {
        let h = hierarchy();
        let jws = sign(&h.ocsp_key, &[&h.ocsp_der, &h.issuing_der], br#"{"serial":"0a"}"#).expect("signs");
        let ok = verify(&jws, &h.root_der).expect("verifies");
        assert_eq!(ok.payload["serial"], "0a");
        assert!(ok.signer.contains("OCSP"), "{}", ok.signer);

        // One byte of the payload changed.
        let parts: Vec<&str> = jws.split('.').collect();
        let changed = URL_SAFE_NO_PAD.encode(br#"{"serial":"0b"}"#);
        let forged = format!("{}.{}.{}", parts[0], changed, parts[2]);
        assert!(verify(&forged, &h.root_der).is_err());
        // Another CA's root does not vouch for it.
        assert!(verify(&jws, &hierarchy().root_der).is_err());
        // Signed by a key that is not a delegated OCSP signer.
        let by_tls = sign(&h.tls_key, &[&h.tls_der, &h.issuing_der], b"{}").expect("signs");
        assert!(verify(&by_tls, &h.root_der).is_err());
    }
}
