//! What every handler can reach. Cheap to clone.

use std::sync::Arc;

use connect_pki_ca::IssuingCa;
use connect_pki_ca::issue::to_pem;
use connect_pki_domain::Clock;
use connect_pki_store::Store;

use connect_pki_responder::{Responder, Revocations};

use crate::http::ratelimit::Limit;

/// Shared state of both listeners.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub ca: Arc<IssuingCa>,
    pub clock: Arc<dyn Clock>,
    pub certs: Arc<PublicCerts>,
    pub settings: Arc<Settings>,
    pub revocations: Arc<Revocations>,
    pub ocsp: Arc<Responder>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Key of the console's CSRF tokens.
    pub csrf_key: Arc<aws_lc_rs::hmac::Key>,
    /// The service's own TLS certificate and where its renewals are written.
    pub own: Arc<crate::renewal::OwnCerts>,
    /// Keyed hashes of typed login IDs (failed sign-ins) for the audit log.
    pub pseudonyms: Arc<crate::pseudonym::PseudonymKey>,
    /// Names this process as the holder of notification leases.
    pub instance_id: Arc<str>,
}

/// Operating settings of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an enrollment code stays valid (DESIGN §3: 72 h by default).
    pub enrollment_code_ttl: time::Duration,
    /// Public form submissions per client address.
    pub apply_limit: Limit,
    /// Enrollment attempts per client address.
    pub enroll_limit: Limit,
    /// Emergency reports per client address.
    pub emergency_limit: Limit,
    /// The city's business calendar (Asia/Tokyo).
    pub calendar: connect_pki_domain::calendar::BusinessHours,
    /// Time a manager has to claim a report in business hours.
    pub escalation_sla: time::Duration,
    /// Time after which an unresolved hold becomes a revocation.
    pub hold_limit: time::Duration,
    /// Renewals a device may make per hour.
    pub renewals_per_hour: u32,
    /// Where emergency notifications go.
    pub notify: crate::service::notify::NotifyConfig,
    /// The terms of use (利用規約) in force.
    pub terms: crate::terms::Terms,
    /// `--https-url` without a trailing slash: the address printed on code
    /// slips; `None`: the host the manager's browser used.
    pub https_url: Option<String>,
    /// How long a rejected application is kept before it is purged.
    pub rejected_application_retention: time::Duration,
    /// Days ahead the expiry lists look by default and the first expiry
    /// notice goes (`--expiry-notice-days`).
    pub expiry_notice_days: u32,
    /// What is recorded about relying parties and handshakes.
    pub relying: crate::relying::RecordSettings,
}

/// The CA certificates as served on `/ca/*`, encoded once at start.
#[derive(Debug)]
pub struct PublicCerts {
    pub root_der: Vec<u8>,
    pub root_pem: String,
    /// Every issuing CA generation, oldest first: (name, DER, PEM).
    pub issuing: Vec<(String, Vec<u8>, String)>,
    /// The newest issuing CA then the root: the chain of a certificate
    /// issued now, as a TLS chain file expects it.
    pub chain_pem: String,
    /// Every issuing CA (newest first) then the root: what relying parties
    /// trust while certificates of an older CA are still in use.
    pub bundle_pem: String,
}

impl PublicCerts {
    /// `issuing`: every generation's certificate, oldest first.
    pub fn new(root_der: Vec<u8>, issuing: &[Vec<u8>]) -> Self {
        let root_pem = to_pem("CERTIFICATE", &root_der);
        let issuing: Vec<(String, Vec<u8>, String)> = issuing
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let name = connect_pki_ca::issue::name_of_generation(i as u32 + 1);
                (name, der.clone(), to_pem("CERTIFICATE", der))
            })
            .collect();
        let newest = issuing.last().map(|(_, _, pem)| pem.clone()).unwrap_or_default();
        let chain_pem = format!("{newest}{root_pem}");
        let all: String = issuing.iter().rev().map(|(_, _, pem)| pem.as_str()).collect();
        let bundle_pem = format!("{all}{root_pem}");
        Self { root_der, root_pem, issuing, chain_pem, bundle_pem }
    }

    /// The certificate of the issuing CA named `name` (DER, PEM).
    pub fn issuing_ca(&self, name: &str) -> Option<(&[u8], &str)> {
        self.issuing.iter().find(|(n, _, _)| n == name).map(|(_, der, pem)| (der.as_slice(), pem.as_str()))
    }
}
