//! Device certificate issuance under the DESIGN §4 profile.

use der::Encode;
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use connect_pki_domain::{DeviceId, FacilityId, Serial, UserId};

use crate::error::CaError;
use crate::keys::{CaKey, KeyKind, PrivateKey};

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const OID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const OID_AD_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";

/// How far `notBefore` is set back, so that a device whose clock runs a few
/// minutes slow still accepts a certificate issued just now.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// Where relying parties find the CA, the CRL and the OCSP responder, and how
/// long device certificates live.
#[derive(Debug, Clone)]
pub struct Profile {
    public_url: url::Url,
    /// Lifetime of a device certificate (DESIGN §4: one year).
    pub(crate) device_validity: Duration,
    /// The `O=` of every subject.
    pub(crate) organization: String,
}

impl Profile {
    /// A profile whose URLs hang under `public_url` (`http://` or `https://`,
    /// no query or fragment).
    pub fn new(public_url: &str) -> Result<Self, CaError> {
        let invalid = |why: String| CaError::Invalid { field: "public URL", why };
        let mut url = url::Url::parse(public_url).map_err(|e| invalid(format!("{public_url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(format!("{public_url:?} must be an http:// or https:// URL with a host")));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(format!("{public_url:?} must not carry credentials, a query or a fragment")));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self { public_url: url, device_validity: Duration::days(365), organization: "Chitose City CONNECT".into() })
    }

    /// The base URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// The host of the public URL, for the TLS server certificate.
    pub fn public_host(&self) -> Option<&str> {
        self.public_url.host_str()
    }

    /// The CRL distribution point of the issuing CA named `ca` (see
    /// [`IssuingCa::name`]), written into the certificates it issues.
    pub(crate) fn crl_url(&self, ca: &str) -> String {
        format!("{}/crl/{ca}.crl", self.public_url())
    }

    /// The OCSP responder written into the AIA extension.
    pub(crate) fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.public_url())
    }

    /// The caIssuers URL (DER certificate) of the issuing CA named `ca`.
    pub(crate) fn ca_issuers_url(&self, ca: &str) -> String {
        format!("{}/ca/{ca}.crt", self.public_url())
    }

    fn aia_extension(&self, ca: &str) -> Result<CustomExtension, CaError> {
        let uri = |u: String| -> Result<GeneralName, CaError> {
            let ia5 = der::asn1::Ia5String::new(&u).map_err(|e| CaError::malformed("AIA URL", e))?;
            Ok(GeneralName::UniformResourceIdentifier(ia5))
        };
        let oid = |s: &str| der::asn1::ObjectIdentifier::new(s).map_err(|e| CaError::malformed("AIA OID", e));
        let aia = AuthorityInfoAccessSyntax(vec![
            AccessDescription { access_method: oid(OID_AD_OCSP)?, access_location: uri(self.ocsp_url())? },
            AccessDescription {
                access_method: oid(OID_AD_CA_ISSUERS)?,
                access_location: uri(self.ca_issuers_url(ca))?,
            },
        ]);
        let der = aia.to_der().map_err(|e| CaError::malformed("AIA extension", e))?;
        Ok(CustomExtension::from_oid_content(OID_AIA, der))
    }
}

/// Who a device certificate is for. The SAN URI built from it is what the
/// service reads back to identify the caller.
#[derive(Debug, Clone)]
pub struct DeviceSubject {
    pub facility: FacilityId,
    pub user: UserId,
    pub device: DeviceId,
    /// Shown as the subject CN, so that a person reading the certificate sees whose it is.
    pub login_id: String,
}

impl DeviceSubject {
    /// `urn:connect-pki:facility:{f}:user:{u}:device:{d}` (DESIGN §4).
    pub(crate) fn san_uri(&self) -> String {
        format!("urn:connect-pki:facility:{}:user:{}:device:{}", self.facility, self.user, self.device)
    }
}

/// A certificate just signed.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub serial: Serial,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The generation of the issuing CA that signed it.
    pub ca_generation: u32,
}

impl IssuedCert {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }
}

/// The name of issuing CA generation `generation` (see [`IssuingCa::name`]).
pub fn name_of_generation(generation: u32) -> String {
    if generation <= 1 { "issuing".into() } else { format!("issuing-{generation}") }
}

/// PEM text of one DER object.
pub fn to_pem(label: &'static str, der: &[u8]) -> String {
    // Encoding fails only for a label with invalid characters or a length
    // beyond memory; neither can come from the fixed labels used here.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// The issuing CA, loaded and ready to sign.
pub struct IssuingCa {
    issuer: Issuer<'static, CaKey>,
    /// 1 for the issuing CA `init` made, one more at each rollover.
    generation: u32,
    cert_der: Vec<u8>,
    root_der: Vec<u8>,
    profile: Profile,
    /// The end of the CA's own validity: nothing it signs outlives it.
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl IssuingCa {
    /// The issuing CA from its certificate, its key and the root above it.
    pub fn new(cert_der: Vec<u8>, key: CaKey, root_der: Vec<u8>, profile: Profile) -> Result<Self, CaError> {
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| CaError::malformed("issuing CA certificate", e))?;
        let not_after = cert.validity().not_after.to_datetime();
        Ok(Self { issuer, generation: 1, cert_der, root_der, profile, not_after })
    }

    /// The same CA as generation `generation` (a rollover's successor).
    pub fn with_generation(self, generation: u32) -> Self {
        Self { generation, ..self }
    }

    /// 1 for the issuing CA `init` made, one more at each rollover.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The CA's name in file names and URLs: `issuing` for the first
    /// generation (the URLs its certificates already carry), `issuing-N` after.
    pub fn name(&self) -> String {
        name_of_generation(self.generation)
    }

    /// The issuing CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root CA certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, CaKey> {
        &self.issuer
    }

    /// The profile the CA issues under.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// When the issuing CA's own certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Certifies the public key `spki_der` (from a checked CSR) for
    /// `subject`, for the profile's device lifetime.
    pub fn issue_device(
        &self,
        spki_der: &[u8],
        subject: &DeviceSubject,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        self.issue_device_for(spki_der, subject, now, self.profile.device_validity)
    }

    /// [`Self::issue_device`] for `validity` (a facility's lifetime policy,
    /// or a managed device's short one).
    pub fn issue_device_for(
        &self,
        spki_der: &[u8],
        subject: &DeviceSubject,
        now: OffsetDateTime,
        validity: time::Duration,
    ) -> Result<IssuedCert, CaError> {
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
        let params = self.device_params(subject, now, validity)?;
        let serial = Serial::from_bytes(params.serial_number.as_ref().map(|s| s.as_ref()).unwrap_or_default())
            .map_err(|e| CaError::malformed("serial", e))?;
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(IssuedCert {
            serial,
            der: cert.der().to_vec(),
            not_before: params.not_before,
            not_after: params.not_after,
            ca_generation: self.generation,
        })
    }

    /// Generates a key of `kind` on the server and certifies it for `subject`.
    pub fn issue_device_with_new_key(
        &self,
        kind: KeyKind,
        subject: &DeviceSubject,
        now: OffsetDateTime,
    ) -> Result<(IssuedCert, PrivateKey), CaError> {
        let key = PrivateKey::generate(kind)?;
        let issued = self.issue_device(&key.public_key_der(), subject, now)?;
        Ok((issued, key))
    }

    /// Signs an end-entity certificate with arbitrary parameters (used for the
    /// service's own TLS and OCSP certificates).
    pub(crate) fn sign(&self, params: &CertificateParams, key: &CaKey) -> Result<Vec<u8>, CaError> {
        let mut params = params.clone();
        params.not_after = params.not_after.min(self.not_after);
        Ok(params.signed_by(key, &self.issuer)?.der().to_vec())
    }

    fn device_params(
        &self,
        subject: &DeviceSubject,
        now: OffsetDateTime,
        validity: time::Duration,
    ) -> Result<CertificateParams, CaError> {
        let mut params = ee_params(now, validity)?;
        // A certificate that outlives its issuer is invalid for its last days
        // anyway; say so in the certificate instead.
        params.not_after = params.not_after.min(self.not_after);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.profile.organization.clone());
        dn.push(DnType::OrganizationalUnitName, format!("facility {}", subject.facility));
        // A pseudonym: the user's id, never their login ID or name. Once a
        // certificate is issued its subject cannot be erased, and it is seen
        // by every relying party and kept in their logs.
        dn.push(DnType::CommonName, subject.user.to_string());
        params.distinguished_name = dn;
        let uri = subject.san_uri().try_into().map_err(|e| CaError::malformed("SAN URI", e))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![self.profile.crl_url(&self.name())] }];
        params.custom_extensions.push(self.profile.aia_extension(&self.name())?);
        Ok(params)
    }
}

/// Parameters every end-entity certificate starts from: a fresh random serial,
/// validity from `now - BACKDATE`, AKI present, no subject, and
/// basicConstraints CA:FALSE with a Subject Key Identifier (RFC 5280
/// §4.2.1.2: end-entity certificates SHOULD carry one; rcgen writes it with
/// the basic constraints).
pub(crate) fn ee_params(now: OffsetDateTime, validity: Duration) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(random_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params.use_authority_key_identifier_extension = true;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    Ok(params)
}

/// 16 random bytes as a positive INTEGER that keeps all 16 bytes in DER:
/// the top bit is cleared (positive) and the next one set (no leading zero
/// byte dropped), leaving 126 bits of entropy — well above the 64 that
/// CA/Browser Forum practice asks for.
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CaError::malformed("random serial", e))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}
