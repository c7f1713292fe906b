//! Redeeming an enrollment code: with a CSR (the device keeps its key) or for
//! a key generated here and delivered as a PKCS#12.

use base64::Engine;
use connect_pki_ca::{KeyKind, PrivateKey, parse_csr, pkcs12};
use connect_pki_domain::enrollment::{Channel, CodeInput};
use connect_pki_domain::{DeviceId, Serial, validate};
use connect_pki_store::{DeviceRef, Issued, NewCertificate, Redemption};

use crate::Ra;
use crate::error::ServiceError;
use crate::secrets::random_secret;
use crate::secrets::{code_hash, hash_password};
use crate::{sign_from_csr, stored, subject_of};

/// An enrollment request.
#[derive(Clone, Default)]
pub struct EnrollRequest {
    pub code: String,
    pub csr: Option<String>,
    pub generate_key: bool,
    /// `p256` (default) or `rsa2048`, for a generated key.
    pub key_type: Option<String>,
    /// Sets the account password on first enrollment.
    pub password: Option<String>,
    pub device_label: Option<String>,
    pub channel: Channel,
}

connect_pki_domain::redacted_debug!(EnrollRequest { csr, generate_key, key_type, device_label, channel; code, password });

/// What the device receives.
pub enum Enrolled {
    Certificate {
        device: DeviceId,
        serial: Serial,
        certificate_pem: String,
        chain_pem: String,
    },
    Pkcs12 {
        device: DeviceId,
        serial: Serial,
        pkcs12: Vec<u8>,
        password: String,
    },
    /// A key made here for a managed device (EST `serverkeygen`): the key as
    /// PKCS#8 and the certificate, both DER, for a channel that already
    /// protects them (TLS), with no password to hand on.
    Key {
        device: DeviceId,
        serial: Serial,
        pkcs8: Vec<u8>,
        certificate: Vec<u8>,
    },
}

/// The key and its password never reach a log line.
impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Enrolled::Certificate { device, serial, .. } => {
                f.debug_struct("Certificate").field("device", device).field("serial", serial).finish_non_exhaustive()
            }
            Enrolled::Pkcs12 { device, serial, .. } => f
                .debug_struct("Pkcs12")
                .field("device", device)
                .field("serial", serial)
                .field("pkcs12", &connect_pki_domain::redact::REDACTED)
                .field("password", &connect_pki_domain::redact::REDACTED)
                .finish(),
            Enrolled::Key { device, serial, .. } => f
                .debug_struct("Key")
                .field("device", device)
                .field("serial", serial)
                .field("pkcs8", &connect_pki_domain::redact::REDACTED)
                .finish_non_exhaustive(),
        }
    }
}

/// Redeems a code. Everything that can be checked without the database
/// (code format, CSR, password) is checked first, so a bad request neither
/// uses the code nor counts as a wrong try.
pub async fn enroll(ra: &Ra, req: EnrollRequest, client: &str) -> Result<Enrolled, ServiceError> {
    let code = CodeInput::parse(&req.code)?;
    let csr = match (&req.csr, req.generate_key) {
        (Some(csr), false) => Some(parse_csr(csr.as_bytes())?),
        (None, true) => None,
        _ => {
            return Err(connect_pki_domain::DomainError::Invalid {
                field: "csr",
                why: "send either \"csr\" (PEM) or \"generate_key\": true, not both and not neither".into(),
            }
            .into());
        }
    };
    let key_kind = match req.key_type.as_deref() {
        None | Some("p256") => KeyKind::P256,
        Some("rsa2048") => KeyKind::Rsa2048,
        Some(other) => {
            return Err(connect_pki_domain::DomainError::Invalid {
                field: "key_type",
                why: format!("{other:?} is not one of p256, rsa2048"),
            }
            .into());
        }
    };
    if let Some(p) = req.password.as_deref().filter(|p| !p.is_empty()) {
        validate::password(p)?;
    }
    let label = validate::optional_text("device_label", req.device_label.as_deref(), 100)?.unwrap_or_default();
    let secret_hash = code_hash(&code.secret);
    // A code is found by its secret: a wrong one names no code, so nobody
    // can aim guesses at someone else's, and it is refused at once, counted
    // for the audit log per client and minute, with no write while the
    // caller waits. Older codes carry their id.
    let actor = format!("public:{client}");
    let code_id = match code.id {
        Some(id) => id,
        None => match ra.store.code_id_by_secret(&secret_hash).await? {
            Some(id) => id,
            None => {
                crate::audit::record_public_refusal(ra, &actor, "POST /api/v1/enroll (no such code)");
                return Err(ServiceError::Enrollment(connect_pki_domain::enrollment::Refusal::WrongCode));
            }
        },
    };
    // argon2 and key generation only for the holder of a real code: a guess
    // (unknown id or wrong secret) costs a lookup and goes straight to the
    // redemption, which refuses and counts it.
    let genuine = ra.store.code_secret_matches(code_id, &secret_hash).await?;
    let password_hash = match req.password.filter(|p| !p.is_empty()) {
        Some(p) if genuine => Some(hash_password(p).await?),
        _ => None,
    };
    let redemption = Redemption {
        code_id,
        secret_hash,
        password_hash,
        device_label: label,
        actor: format!("public:{client}"),
        channel: req.channel,
    };
    let now = ra.clock.now();
    let key_kind = genuine.then_some(key_kind);
    let enrolled = issue(ra, &redemption, csr, key_kind, now).await?;
    // The new certificate is known to OCSP ("good") before the device has it.
    crate::publish(ra).await?;
    Ok(enrolled)
}

async fn issue(
    ra: &Ra,
    redemption: &Redemption,
    csr: Option<connect_pki_ca::CheckedCsr>,
    key_kind: Option<KeyKind>,
    now: time::OffsetDateTime,
) -> Result<Enrolled, ServiceError> {
    match csr {
        Some(csr) => {
            let (device, cert) = ra
                .store
                .redeem_enrollment_code::<ServiceError>(redemption, now, |d| sign_from_csr(ra, &csr, d))
                .await?;
            journaled(ra, redemption, &device, &cert).await?;
            Ok(Enrolled::Certificate {
                device: device.device,
                serial: cert.serial.clone(),
                certificate_pem: connect_pki_ca::issue::to_pem("CERTIFICATE", &cert.der),
                chain_pem: ra.certs.chain_pem.clone(),
            })
        }
        None => {
            // Key generation (an RSA key takes a while) happens before the
            // write transaction, so no revocation ever waits behind it, and
            // only for a code that matched: for a guess there is no key, and
            // the redemption refuses (and counts) it before it would sign.
            let key = match key_kind {
                Some(kind) => Some(ra.key_generation.generate(kind).await?),
                None => None,
            };
            let no_key = || ServiceError::Internal(anyhow::anyhow!("the code matched only in the transaction"));
            let (device, cert) = ra
                .store
                .redeem_enrollment_code::<ServiceError>(redemption, now, |d| {
                    let spki = key.as_ref().ok_or_else(no_key)?.public_key_der();
                    Ok(stored(ra.ca.issue_device_for(&spki, &subject_of(d), now, crate::lifetime(ra, d))?))
                })
                .await?;
            let key = key.ok_or_else(no_key)?;
            journaled(ra, redemption, &device, &cert).await?;
            if redemption.channel.managed() {
                let pkcs8 = key.pkcs8_der().to_vec();
                return Ok(Enrolled::Key { device: device.device, serial: cert.serial, pkcs8, certificate: cert.der });
            }
            let password = random_secret(12)?;
            let alias = format!("connect-pki device {}", device.device);
            let p12 = pkcs12::build(&key, &cert.der, &[ra.ca.cert_der()], &password, &alias)?;
            Ok(Enrolled::Pkcs12 { device: device.device, serial: cert.serial, pkcs12: p12, password })
        }
    }
}

async fn journaled(
    ra: &Ra,
    redemption: &Redemption,
    device: &DeviceRef,
    cert: &NewCertificate,
) -> Result<(), ServiceError> {
    let label = redemption.device_label.clone();
    crate::journal(ra, Issued { device: device.clone(), label, cert: cert.clone() }).await
}

/// PKCS#12 bytes as base64 for JSON.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Keys generated here for devices: at most one per CPU at once (an RSA key
/// is tens of milliseconds of CPU), and counted.
#[derive(Debug)]
pub struct KeyGeneration {
    bounded: crate::secrets::Bounded,
    generated: std::sync::atomic::AtomicU64,
}

impl Default for KeyGeneration {
    fn default() -> Self {
        Self { bounded: crate::secrets::Bounded::per_cpu(), generated: Default::default() }
    }
}

impl KeyGeneration {
    /// How many keys this service generated since it started.
    pub fn generated(&self) -> u64 {
        self.generated.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) async fn generate(&self, kind: KeyKind) -> Result<PrivateKey, ServiceError> {
        self.generated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.bounded.run("key generation", move || PrivateKey::generate(kind)).await??)
    }
}
