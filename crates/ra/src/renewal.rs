//! Renewal from the device's own browser (わたしの端末 → 証明書の更新):
//! signed in with the certificate it replaces, the person gets a new key and
//! certificate as a PKCS#12 file sealed with a password shown once. The
//! replaced certificate keeps working until the new one is first used, or
//! until the grace period ends (`domain::renewal`); a worker hands over.

use connect_pki_ca::{KeyKind, pkcs12};
use connect_pki_domain::renewal::{self, Handover, Terms};
use connect_pki_domain::{DeviceId, Serial};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;
use crate::secrets::random_secret;

/// What a browser renewal hands over: shown once, never stored.
pub struct Renewed {
    pub device: DeviceId,
    pub serial: Serial,
    pub not_after: OffsetDateTime,
    /// The certificate it replaces, and when it stops at the latest.
    pub replaces: Serial,
    pub replaced_by: OffsetDateTime,
    pub pkcs12: Vec<u8>,
    pub password: String,
}

impl std::fmt::Debug for Renewed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewed")
            .field("serial", &self.serial)
            .field("replaces", &self.replaces)
            .field("pkcs12", &connect_pki_domain::redact::REDACTED)
            .field("password", &connect_pki_domain::redact::REDACTED)
            .finish_non_exhaustive()
    }
}

/// When the caller's certificate may be renewed from the browser: `None`
/// when it may now, else the first day it may.
pub fn renewable_from(ra: &Ra, not_after: OffsetDateTime) -> Option<OffsetDateTime> {
    let window = ra.settings.expiry_notice_days;
    let now = ra.clock.now();
    (!renewal::in_window(not_after, now, window) && not_after > now)
        .then(|| not_after - time::Duration::days(i64::from(window)))
}

/// Renews the caller's own certificate with a key made here. Refused
/// outside the renewal window, and for anything `check_renewal` refuses
/// (revoked, held, expired, superseded, a retired user, a suspended
/// facility), or past the hourly limit.
pub async fn renew(ra: &Ra, caller: &Requester) -> Result<Renewed, ServiceError> {
    let old = caller.certificate.clone();
    let record = ra.store.certificate(&old).await?.ok_or(ServiceError::NotFound("certificate"))?;
    if let Some(from) = renewable_from(ra, record.not_after) {
        return Err(ServiceError::NotYetRenewable { from });
    }
    let key = ra.key_generation.generate(KeyKind::P256).await?;
    let spki = key.public_key_der();
    let now = ra.clock.now();
    let by = now + ra.settings.renewal_grace;
    let terms = Terms { per_hour: ra.settings.renewals_per_hour, handover: Handover::OnFirstUse { by } };
    let (device, cert) = ra
        .store
        .renew_certificate::<ServiceError>(&old, terms, &caller.audit_name, now, |d| {
            Ok(crate::stored(ra.ca.issue_device_for(&spki, &crate::subject_of(d), now, crate::lifetime(ra, d))?))
        })
        .await?;
    crate::journal(ra, connect_pki_store::Issued { device: device.clone(), label: String::new(), cert: cert.clone() })
        .await?;
    crate::publish(ra).await?;
    let password = random_secret(12)?;
    let alias = format!("connect-pki device {}", device.device);
    let pkcs12 = pkcs12::build(&key, &cert.der, &[ra.ca.cert_der()], &password, &alias)?;
    Ok(Renewed {
        device: device.device,
        serial: cert.serial,
        not_after: cert.not_after,
        replaces: old,
        replaced_by: by,
        pkcs12,
        password,
    })
}

/// Hands over every browser renewal whose new certificate was used or
/// whose grace ended, and publishes the change. Run by a worker.
pub async fn hand_over_due(ra: &Ra) -> Result<Vec<Serial>, ServiceError> {
    let superseded = ra.store.hand_over_renewals(ra.clock.now()).await?;
    if !superseded.is_empty() {
        crate::publish(ra).await?;
    }
    Ok(superseded)
}
