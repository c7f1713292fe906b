//! Creating the CA hierarchy at `init`: a root CA, the issuing CA below it,
//! the delegated OCSP signer and the TLS certificate of the mTLS listener.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::error::CaError;
use crate::issue::{IssuingCa, Profile, ee_params, random_serial};
use crate::keys::{CaKey, InMemory, KeyGenerator, KeyKind};

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): relying parties do not check
/// the responder certificate's own revocation.
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// Lifetimes of the certificates `init` creates (DESIGN §4).
#[derive(Debug, Clone)]
pub struct HierarchyNames {
    pub(crate) root_cn: String,
    pub(crate) issuing_cn: String,
    pub(crate) root_validity: Duration,
    pub(crate) issuing_validity: Duration,
    /// The OCSP signer and TLS certificates, re-issued by the service before they run out.
    pub service_validity: Duration,
}

impl Default for HierarchyNames {
    fn default() -> Self {
        Self {
            root_cn: "CONNECT Root CA".into(),
            issuing_cn: "CONNECT Issuing CA 1".into(),
            root_validity: Duration::days(20 * 365 + 5),
            issuing_validity: Duration::days(10 * 365 + 2),
            service_validity: Duration::days(397),
        }
    }
}

/// Every certificate and key `init` writes.
#[derive(Debug)]
pub struct Hierarchy {
    pub root_der: Vec<u8>,
    pub root_key: CaKey,
    pub issuing_der: Vec<u8>,
    pub issuing_key: CaKey,
    pub ocsp_der: Vec<u8>,
    pub ocsp_key: CaKey,
    pub tls_der: Vec<u8>,
    pub tls_key: CaKey,
}

impl Hierarchy {
    /// Creates a new root (P-384), issuing CA (P-256, pathLen 0), OCSP signer
    /// and TLS server certificate valid for `tls_names` (DNS names or IPs),
    /// with keys from `keys`.
    pub fn create(
        profile: &Profile,
        names: &HierarchyNames,
        tls_names: &[String],
        keys: &dyn KeyGenerator,
        now: OffsetDateTime,
    ) -> Result<Self, CaError> {
        Self::create_apart(profile, names, tls_names, keys, keys, now)
    }

    /// The same with the root key from `root_keys` (a token of its own, which
    /// the service never opens) and every other key from `keys`.
    pub fn create_apart(
        profile: &Profile,
        names: &HierarchyNames,
        tls_names: &[String],
        root_keys: &dyn KeyGenerator,
        keys: &dyn KeyGenerator,
        now: OffsetDateTime,
    ) -> Result<Self, CaError> {
        let root_key = root_keys.generate(KeyKind::P384, "connect-pki root")?;
        let root_params =
            ca_params(profile, &names.root_cn, BasicConstraints::Unconstrained, now, names.root_validity)?;
        let root_der = root_params.self_signed(&root_key)?.der().to_vec();
        let root_issuer = Issuer::from_params(&root_params, &root_key);

        let issuing_key = keys.generate(KeyKind::P256, &key_label(1, "issuing"))?;
        let mut issuing_params =
            ca_params(profile, &names.issuing_cn, BasicConstraints::Constrained(0), now, names.issuing_validity)?;
        issuing_params.use_authority_key_identifier_extension = true;
        let issuing_der = issuing_params.signed_by(&issuing_key, &root_issuer)?.der().to_vec();
        drop(root_issuer);

        let (ocsp_der, ocsp_key, tls_der, tls_key) = {
            let ca = IssuingCa::new(issuing_der.clone(), issuing_key.clone_key()?, root_der.clone(), profile.clone())?;
            let (ocsp_der, ocsp_key) = ocsp_signer(&ca, keys, now, names.service_validity)?;
            let (tls_der, tls_key) = tls_server(&ca, tls_names, keys, now, names.service_validity)?;
            (ocsp_der, ocsp_key, tls_der, tls_key)
        };
        Ok(Self { root_der, root_key, issuing_der, issuing_key, ocsp_der, ocsp_key, tls_der, tls_key })
    }
}

/// A new issuing CA of generation `generation` under the root (`root_der`,
/// `root_key`): the rollover's successor, with the profile of the first
/// (P-256, pathLen 0, the same lifetime) and the generation in its name.
pub fn successor_issuing_ca(
    root_der: &[u8],
    root_key: CaKey,
    profile: &Profile,
    generation: u32,
    keys: &dyn KeyGenerator,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, CaKey), CaError> {
    let names = HierarchyNames::default();
    let root = Issuer::from_ca_cert_der(&root_der.into(), root_key)?;
    let key = keys.generate(KeyKind::P256, &key_label(generation, "issuing"))?;
    let cn = format!("CONNECT Issuing CA {generation}");
    let mut params = ca_params(profile, &cn, BasicConstraints::Constrained(0), now, names.issuing_validity)?;
    params.use_authority_key_identifier_extension = true;
    let der = params.signed_by(&key, &root)?.der().to_vec();
    Ok((der, key))
}

/// A CSR for the successor issuing CA, for a root kept offline: the key
/// stays here, the signed certificate comes back through `import`.
pub fn successor_csr(profile: &Profile, generation: u32, keys: &dyn KeyGenerator) -> Result<(String, CaKey), CaError> {
    let key = keys.generate(KeyKind::P256, &key_label(generation, "issuing"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(profile, &format!("CONNECT Issuing CA {generation}"));
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key))
}

/// The name of a key in a token: `connect-pki issuing`, `connect-pki ocsp-2`.
fn key_label(generation: u32, what: &str) -> String {
    if generation <= 1 { format!("connect-pki {what}") } else { format!("connect-pki {what}-{generation}") }
}

/// A delegated OCSP signing certificate: EKU id-kp-OCSPSigning, ocsp-nocheck.
pub fn ocsp_signer(
    ca: &IssuingCa,
    keys: &dyn KeyGenerator,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(Vec<u8>, CaKey), CaError> {
    let key = keys.generate(KeyKind::P256, &key_label(ca.generation(), "ocsp"))?;
    let mut params = ee_params(now, validity)?;
    params.distinguished_name = dn(ca.profile(), "CONNECT OCSP Responder");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    // The extension value is an ASN.1 NULL.
    params.custom_extensions.push(CustomExtension::from_oid_content(OID_OCSP_NOCHECK, vec![0x05, 0x00]));
    let der = ca.sign(&params, &key)?;
    Ok((der, key))
}

/// The SCEP RA certificate: an RSA-2048 key of its own (never the CA key),
/// made in memory so aws-lc-rs decrypts with it in constant time;
/// keyEncipherment for the requests' envelopes, digitalSignature for the
/// answers, EKU id-kp-cmcRA (RFC 6402).
pub fn scep_ra(ca: &IssuingCa, now: OffsetDateTime, validity: Duration) -> Result<(Vec<u8>, CaKey), CaError> {
    let key = InMemory.generate(KeyKind::Rsa2048, "connect-pki scep-ra")?;
    let mut params = ee_params(now, validity)?;
    params.distinguished_name = dn(ca.profile(), "CONNECT SCEP RA");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 28])];
    let der = ca.sign(&params, &key)?;
    Ok((der, key))
}

/// The TLS server certificate of the mTLS listener: EKU serverAuth, SANs for
/// each of `names` (IP addresses become iPAddress SANs).
pub fn tls_server(
    ca: &IssuingCa,
    names: &[String],
    keys: &dyn KeyGenerator,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(Vec<u8>, CaKey), CaError> {
    let key = keys.generate(KeyKind::P256, "connect-pki tls")?;
    let mut params = ee_params(now, validity)?;
    let cn = names.first().cloned().unwrap_or_else(|| "localhost".into());
    params.distinguished_name = dn(ca.profile(), &cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| CaError::Invalid { field: "TLS server name", why: format!("{n:?}: {e}") }),
        })
        .collect::<Result<_, _>>()?;
    let der = ca.sign(&params, &key)?;
    Ok((der, key))
}

/// Whether the service certificate `der` (the OCSP signer or the TLS server
/// certificate) should be re-issued at `now`: two thirds of its life have
/// passed, or it is not valid at `now` at all (expired, or issued "later"
/// than a clock that was set back). The third left over is the margin for a
/// service that was down, or could not write its data directory, when the
/// first attempt fell due.
pub fn renewal_due(der: &[u8], now: OffsetDateTime) -> Result<bool, CaError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CaError::malformed("service certificate", e))?;
    let (from, to) = (cert.validity().not_before.to_datetime(), cert.validity().not_after.to_datetime());
    Ok(now < from || now >= from + (to - from) * 2 / 3)
}

/// The DNS names and IP addresses a TLS server certificate names, in its
/// order, so that its successor is issued for the same names.
pub fn tls_names(der: &[u8]) -> Result<Vec<String>, CaError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CaError::malformed("TLS server certificate", e))?;
    let san = cert.subject_alternative_name().map_err(|e| CaError::malformed("TLS server certificate SAN", e))?;
    let names = san.map(|s| s.value.general_names.iter().filter_map(general_name_text).collect()).unwrap_or_default();
    return Ok(names);

    fn general_name_text(n: &GeneralName<'_>) -> Option<String> {
        match n {
            GeneralName::DNSName(d) => Some((*d).to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b).ok().map(|a| IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b).ok().map(|a| IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        }
    }
}

fn dn(profile: &Profile, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, profile.organization.clone());
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(
    profile: &Profile,
    cn: &str,
    constraints: BasicConstraints,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(profile, cn);
    params.serial_number = Some(random_serial()?);
    params.not_before = now - crate::issue::BACKDATE;
    params.not_after = now + validity;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}
