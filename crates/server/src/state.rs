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
    /// Days ahead the expiry lists look by default and the first expiry
    /// notice goes (`--expiry-notice-days`).
    pub expiry_notice_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enrollment_code_ttl: connect_pki_domain::enrollment::DEFAULT_LIFETIME,
            apply_limit: Limit::per_minute(30),
            enroll_limit: Limit::per_minute(30),
            emergency_limit: Limit::per_minute(30),
            calendar: Default::default(),
            escalation_sla: connect_pki_domain::escalation::DEFAULT_SLA,
            hold_limit: connect_pki_domain::escalation::DEFAULT_HOLD_LIMIT,
            renewals_per_hour: connect_pki_domain::enrollment::DEFAULT_RENEWALS_PER_HOUR,
            notify: Default::default(),
            terms: crate::terms::Terms::builtin(),
            https_url: None,
            expiry_notice_days: connect_pki_domain::expiry::DEFAULT_WINDOW_DAYS,
        }
    }
}

/// The CA certificates as served on `/ca/*`, encoded once at start.
#[derive(Debug)]
pub struct PublicCerts {
    pub root_der: Vec<u8>,
    pub issuing_der: Vec<u8>,
    pub root_pem: String,
    pub issuing_pem: String,
    /// Issuing CA then root, the order a TLS chain file expects.
    pub chain_pem: String,
}

impl PublicCerts {
    pub fn new(root_der: Vec<u8>, issuing_der: Vec<u8>) -> Self {
        let root_pem = to_pem("CERTIFICATE", &root_der);
        let issuing_pem = to_pem("CERTIFICATE", &issuing_der);
        let chain_pem = format!("{issuing_pem}{root_pem}");
        Self { root_der, issuing_der, root_pem, issuing_pem, chain_pem }
    }
}
