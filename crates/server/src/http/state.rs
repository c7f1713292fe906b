//! What every handler can reach: the registration authority and what only
//! the web needs beside it. Cheap to clone.

use std::sync::Arc;

use connect_pki_ra::Ra;

use super::ratelimit::Limit;

/// Shared state of both listeners. It reads as the registration authority
/// (`state.store`, `state.settings`, and `&state` where an operation takes
/// `&Ra`), so that handlers call the RA without naming the field.
#[derive(Debug, Clone)]
pub struct AppState {
    pub ra: Ra,
    /// Public submissions per client address, by form.
    pub limits: Arc<RateLimits>,
    /// `--https-url` without a trailing slash: the address printed on code
    /// slips; `None`: the host the manager's browser used.
    pub(crate) https_url: Option<Arc<str>>,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// When the database figures of `/metrics` were last read (`http::metrics`).
    pub(crate) gauges_read: Arc<tokio::sync::Mutex<Option<(time::OffsetDateTime, crate::http::metrics::Figures)>>>,
    /// Key of the console's CSRF tokens.
    pub(crate) csrf_key: Arc<aws_lc_rs::hmac::Key>,
    /// The SCEP RA; `None` with the CA keys in a PKCS#11 token.
    pub(crate) scep: Option<Arc<connect_pki_ca::scep::ScepRa>>,
}

impl std::ops::Deref for AppState {
    type Target = Ra;

    fn deref(&self) -> &Ra {
        &self.ra
    }
}

/// Rate limits of the public forms, per client address.
#[derive(Debug)]
pub struct RateLimits {
    pub(crate) apply: Limit,
    pub(crate) enroll: Limit,
    pub(crate) emergency: Limit,
    /// OCSP from clients no relying-party name covers.
    pub(crate) ocsp: Limit,
    /// The places requests without a client certificate share.
    pub(crate) strangers: std::sync::Arc<crate::http::strangers::Strangers>,
}
