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
use connect_pki_domain::clock::rfc3339;
use serde_json::{Value, json};
use time::OffsetDateTime;

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
    /// The issuing CA's certificate (DER, `x5c[1]`), which the trusted
    /// root signed: the proofs inside a receipt are checked against it.
    pub issuer_der: Vec<u8>,
    signer_validity: Validity,
    issuer_validity: Validity,
}

#[derive(Debug, Clone, Copy)]
struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    fn of(c: &x509_parser::certificate::X509Certificate<'_>) -> Self {
        let v = c.validity();
        Self { not_before: v.not_before.to_datetime(), not_after: v.not_after.to_datetime() }
    }

    fn check(&self, whose: &str, at: OffsetDateTime) -> Result<(), CaError> {
        if self.not_before <= at && at <= self.not_after {
            return Ok(());
        }
        let when = if at < self.not_before { "not yet valid" } else { "expired" };
        Err(bad(format!(
            "{whose} was {when} at {} (valid from {} to {})",
            rfc3339(at),
            rfc3339(self.not_before),
            rfc3339(self.not_after)
        )))
    }
}

impl Verified {
    /// Checks that the signer's certificate and the issuing CA's were both
    /// valid at `at`: a key past its certificate may have been thrown away
    /// or stolen since, and vouches for nothing it signs.
    pub fn check_valid_at(&self, at: OffsetDateTime) -> Result<(), CaError> {
        self.signer_validity.check("the signer's certificate", at)?;
        self.issuer_validity.check("the issuing CA's certificate", at)
    }
}

/// Checks a compact JWS made by [`sign`]: ES256 over its first two parts by
/// the key of `x5c[0]`, a delegated OCSP signer whose certificate was
/// signed by `x5c[1]`, which `root_der` signed, both certificates valid at
/// `at` (when the receipt says it was signed). Returns the payload.
pub fn verify(jws: &str, root_der: &[u8], at: OffsetDateTime) -> Result<Verified, CaError> {
    let verified = verify_signature(jws, root_der)?;
    verified.check_valid_at(at)?;
    Ok(verified)
}

/// [`verify`] but for the validity periods, for a caller that learns the
/// instant to check them at from the payload, which only the signature
/// makes worth reading.
pub(crate) fn verify_signature(jws: &str, root_der: &[u8]) -> Result<Verified, CaError> {
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
    // Only a CA may delegate OCSP signing; anything else the root signed
    // must not be able to mint a signer.
    if !issuer.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca) {
        return Err(bad("the issuing CA in x5c is not a CA certificate"));
    }
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
    Ok(Verified {
        payload,
        signer_der: signer_der.clone(),
        signer: signer.subject().to_string(),
        issuer_der: issuer_der.clone(),
        signer_validity: Validity::of(&signer),
        issuer_validity: Validity::of(&issuer),
    })
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<x509_parser::certificate::X509Certificate<'a>, CaError> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("{what}: {e}")))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::{Hierarchy, HierarchyNames};
    use crate::keys::{KeyGenerator, KeyKind};
    use crate::{InMemory, Profile};

    fn hierarchy() -> Hierarchy {
        let profile = Profile::new("http://pki.example.test").expect("profile");
        Hierarchy::create(&profile, &HierarchyNames::default(), &[], &InMemory, time::OffsetDateTime::now_utc())
            .expect("hierarchy")
    }

    #[test]
    fn a_receipt_verifies_and_a_changed_one_does_not() {
        let h = hierarchy();
        let now = time::OffsetDateTime::now_utc();
        let jws = sign(&h.ocsp_key, &[&h.ocsp_der, &h.issuing_der], br#"{"serial":"0a"}"#).expect("signs");
        let ok = verify(&jws, &h.root_der, now).expect("verifies");
        assert_eq!(ok.payload["serial"], "0a");
        assert!(ok.signer.contains("OCSP"), "{}", ok.signer);
        assert_eq!(ok.issuer_der, h.issuing_der);

        // One byte of the payload changed.
        let parts: Vec<&str> = jws.split('.').collect();
        let changed = URL_SAFE_NO_PAD.encode(br#"{"serial":"0b"}"#);
        let forged = format!("{}.{}.{}", parts[0], changed, parts[2]);
        refused(verify(&forged, &h.root_der, now), "the signature does not verify");
        // Another CA's root does not vouch for it.
        refused(verify(&jws, &hierarchy().root_der, now), "not signed by the trusted root");
        // Signed by a key that is not a delegated OCSP signer.
        let by_tls = sign(&h.tls_key, &[&h.tls_der, &h.issuing_der], b"{}").expect("signs");
        refused(verify(&by_tls, &h.root_der, now), "not the CA's delegated OCSP signer");
        // An OCSP signer under a certificate the root signed that is no CA.
        let root = rcgen::Issuer::from_ca_cert_der(&h.root_der.as_slice().into(), h.root_key.clone_key().expect("key"))
            .expect("root");
        let mut not_ca = rcgen::CertificateParams::default();
        not_ca.is_ca = rcgen::IsCa::ExplicitNoCa;
        let not_ca_key = InMemory.generate(KeyKind::P256, "test").expect("key");
        let not_ca_der = not_ca.signed_by(&not_ca_key, &root).expect("signed").der().to_vec();
        let not_ca_issuer = rcgen::Issuer::from_params(&not_ca, &not_ca_key);
        let mut signer = rcgen::CertificateParams::default();
        signer.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
        let signer_key = InMemory.generate(KeyKind::P256, "test").expect("key");
        let signer_der = signer.signed_by(&signer_key, &not_ca_issuer).expect("signed").der().to_vec();
        let under_not_ca = sign(&signer_key, &[&signer_der, &not_ca_der], b"{}").expect("signs");
        refused(verify(&under_not_ca, &h.root_der, now), "not a CA certificate");
    }

    #[test]
    fn a_receipt_is_refused_at_an_instant_its_signer_was_not_valid() {
        let h = hierarchy();
        let jws = sign(&h.ocsp_key, &[&h.ocsp_der, &h.issuing_der], b"{}").expect("signs");
        let (_, signer) = x509_parser::parse_x509_certificate(&h.ocsp_der).expect("signer");
        let (from, to) = (signer.validity().not_before.to_datetime(), signer.validity().not_after.to_datetime());
        verify(&jws, &h.root_der, from).expect("valid from notBefore");
        verify(&jws, &h.root_der, to).expect("valid to notAfter");
        let second = time::Duration::seconds(1);
        refused(verify(&jws, &h.root_der, from - second), "the signer's certificate was not yet valid");
        refused(verify(&jws, &h.root_der, to + second), "the signer's certificate was expired");
    }

    #[test]
    fn a_receipt_is_refused_at_an_instant_its_issuing_ca_was_not_valid() {
        // A signer certified, by hand, to outlive its issuing CA.
        let h = hierarchy();
        let now = time::OffsetDateTime::now_utc();
        let (_, issuing) = x509_parser::parse_x509_certificate(&h.issuing_der).expect("issuing CA");
        let issuing_until = issuing.validity().not_after.to_datetime();
        let ca =
            rcgen::Issuer::from_ca_cert_der(&h.issuing_der.as_slice().into(), h.issuing_key.clone_key().expect("key"))
                .expect("issuing CA");
        let mut params = rcgen::CertificateParams::default();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
        params.not_before = now - time::Duration::days(1);
        params.not_after = issuing_until + time::Duration::days(30);
        let key = InMemory.generate(KeyKind::P256, "test").expect("key");
        let signer_der = params.signed_by(&key, &ca).expect("signed").der().to_vec();
        let jws = sign(&key, &[&signer_der, &h.issuing_der], b"{}").expect("signs");
        verify(&jws, &h.root_der, issuing_until).expect("both valid");
        refused(
            verify(&jws, &h.root_der, issuing_until + time::Duration::days(1)),
            "the issuing CA's certificate was expired",
        );
    }

    fn refused(result: Result<Verified, CaError>, words: &str) {
        match result {
            Ok(v) => panic!("accepted, expected refusal saying {words:?}: {v:?}"),
            Err(e) => assert!(e.to_string().contains(words), "{e} does not say {words:?}"),
        }
    }
}
