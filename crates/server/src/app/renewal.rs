//! The service's own certificates — the delegated OCSP signer and the TLS
//! server certificate of the HTTPS listener — renewed by the running service.
//!
//! Both live 397 days. At two thirds of their life (or at once, if they are
//! not valid now) the service issues a successor under the issuing CA, writes
//! it to the data directory (old pair or new pair, never one of each: see
//! [`DataDir::replace_cert_and_key`]) and then swaps it in: OCSP answers and
//! new handshakes use the new one, requests and connections in flight finish
//! with the old one, which is still valid for a third of its life. No
//! restart, no moment without a valid certificate.
//!
//! Several instances each renew their own pair (each has its own data
//! directory); every pair is a valid delegated signer, so relying parties
//! accept answers from any of them.

use connect_pki_domain::AuditAction;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use connect_pki_ca::hierarchy::{HierarchyNames, ocsp_signer, renewal_due, tls_names, tls_server};
use connect_pki_ca::ocsp::OcspSigner;
use connect_pki_store::AuditEntry;
use tokio_util::sync::CancellationToken;

use crate::datadir::DataDir;
use crate::net::tls::{ServerCert, TlsIdentity};
use connect_pki_ra::Ra;

/// What the renewal needs besides the registration authority: held by the
/// running service (`run::Running`) and this worker, not by every handler.
#[derive(Debug)]
pub struct OwnCerts {
    /// The HTTPS listener's certificate (renewed only when ours).
    pub tls: Arc<ServerCert>,
    pub dir: DataDir,
    /// Where the CA keys are, and new ones go.
    pub keys: crate::datadir::keys::Keys,
}

/// Which of the service's certificates a renewal replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewed {
    /// The OCSP signer of issuing CA generation N.
    OcspSigner(u32),
    TlsServer,
}

impl Renewed {
    fn file(self) -> String {
        match self {
            Renewed::OcspSigner(g) => crate::datadir::ocsp_file(g),
            Renewed::TlsServer => "tls".into(),
        }
    }
}

/// Renews whichever of the two certificates is due; returns what it renewed.
/// Each is renewed on its own: a failure with one leaves the other renewed.
pub async fn renew_due(state: &Ra, own: &Arc<OwnCerts>) -> anyhow::Result<Vec<Renewed>> {
    let state = state.clone();
    let (worker_state, own) = (state.clone(), own.clone());
    // Key generation, scrypt key encryption and fsync are blocking work.
    let (done, failure) = tokio::task::spawn_blocking(move || {
        let mut done = Vec::new();
        let mut failure = None;
        let signers = worker_state.revocations.cas().iter().map(|ca| Renewed::OcspSigner(ca.generation()));
        for which in signers.chain([Renewed::TlsServer]) {
            match renew_one(&worker_state, &own, which) {
                Ok(Some(audit)) => done.push((which, audit)),
                Ok(None) => {}
                Err(e) => failure = Some(e.context(format!("renewing the {} certificate", which.file()))),
            }
        }
        record_metrics(&worker_state, &own);
        (done, failure)
    })
    .await
    .context("the renewal task")?;
    for (which, entry) in &done {
        tracing::info!(certificate = %which.file(), detail = %entry.detail, "service certificate renewed");
        // The renewal is done whether or not its record can be written now;
        // a failure is reported, and the certificate is not renewed twice.
        if let Err(e) = state.store.audit(state.clock.now(), entry).await {
            tracing::error!(error = %e, action = %entry.action, "the audit record of a renewal could not be written");
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(done.into_iter().map(|(w, _)| w).collect())
}

/// Issues, stores and swaps in one certificate if it is due. Returns the
/// audit record written.
fn renew_one(state: &Ra, own: &OwnCerts, which: Renewed) -> anyhow::Result<Option<AuditEntry>> {
    let now = state.clock.now();
    // An older CA's signer is renewed by that CA: it answers for what it issued.
    let ca = match which {
        Renewed::OcspSigner(g) => {
            state.revocations.cas().iter().find(|ca| ca.generation() == g).cloned().context("no such issuing CA")?
        }
        Renewed::TlsServer => state.ca.clone(),
    };
    let current = match which {
        Renewed::OcspSigner(g) => state.ocsp.signer_cert_der(g).context("no OCSP signer for the CA")?,
        Renewed::TlsServer if own.tls.ours => own.tls.leaf_der(),
        Renewed::TlsServer => return Ok(None),
    };
    if !renewal_due(&current, now)? {
        return Ok(None);
    }
    let _lock = own.dir.lock_ca()?;
    // Another instance sharing this data directory may have renewed it
    // while this one waited: take theirs instead of issuing a second one.
    let file = which.file();
    let on_disk = own.dir.cert_der(&format!("{file}.pem"))?;
    if on_disk != current && !renewal_due(&on_disk, now)? {
        let key = own.keys.load(&own.dir, &file)?;
        match which {
            Renewed::OcspSigner(g) => state.ocsp.replace_signer(g, OcspSigner::new(&on_disk, key, ca.cert_der())?),
            Renewed::TlsServer => own.tls.replace(&TlsIdentity::ours(ca.cert_der(), &on_disk, key))?,
        }
        tracing::info!(certificate = %file, "service certificate renewed by another instance: taken over");
        return Ok(None);
    }
    let validity = HierarchyNames::default().service_validity;
    let (der, key) = match which {
        Renewed::OcspSigner(_) => ocsp_signer(&ca, own.keys.generator(), now, validity)?,
        Renewed::TlsServer => tls_server(&ca, &tls_names(&current)?, own.keys.generator(), now, validity)?,
    };
    // On disk first: if the swap below never happens (a crash), the next
    // start loads the new pair; if writing fails, the old one stays in use.
    own.dir.replace_cert_and_key(&file, &der, &key, &own.keys)?;
    match which {
        Renewed::OcspSigner(g) => state.ocsp.replace_signer(g, OcspSigner::new(&der, key, ca.cert_der())?),
        Renewed::TlsServer => own.tls.replace(&TlsIdentity::ours(ca.cert_der(), &der, key))?,
    }
    let entry = AuditEntry {
        actor: "system:renewal".into(),
        action: match which {
            Renewed::OcspSigner(_) => AuditAction::CaOcspSignerRenew,
            Renewed::TlsServer => AuditAction::CaTlsServerRenew,
        },
        target: format!("certificate:{}", serial_hex(&der)),
        outcome: "ok".into(),
        detail: serde_json::json!({
            "replaces": serial_hex(&current),
            "issuing_ca": ca.name(),
            "not_after": not_after(&der).map(|t| t.unix_timestamp()),
        }),
        facility: None,
        user: None,
    };
    Ok(Some(entry))
}

/// Renews at start and then every `every` until shutdown. A failed renewal
/// is retried at the next tick; the old certificate has a third of its life
/// left when the first attempt falls due.
pub(crate) async fn worker(state: Ra, own: Arc<OwnCerts>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
        if let Err(e) = renew_due(&state, &own).await {
            tracing::error!(error = format!("{e:#}"), "renewing the service's own certificates failed; retrying");
        }
    }
}

/// The end of each service certificate's validity, for alerting.
fn record_metrics(state: &Ra, own: &OwnCerts) {
    let signers = state.revocations.cas().iter().filter_map(|ca| {
        Some((crate::datadir::ocsp_file(ca.generation()), state.ocsp.signer_cert_der(ca.generation())?))
    });
    for (name, der) in signers.chain([("tls".to_string(), own.tls.leaf_der())]) {
        if let Some(t) = not_after(&der) {
            ::metrics::gauge!("connect_pki_ca_certificate_not_after_seconds", "certificate" => name)
                .set(t.unix_timestamp() as f64);
        }
    }
}

fn not_after(der: &[u8]) -> Option<time::OffsetDateTime> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(c.validity().not_after.to_datetime())
}

fn serial_hex(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der).map(|(_, c)| hex::encode(c.raw_serial())).unwrap_or_default()
}
