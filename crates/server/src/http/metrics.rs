//! `/metrics` (Prometheus text format), for 行政管理課's client certificate
//! only (a scraper holds one): open escalations and the age of the oldest,
//! holds, revocations by reason, device certificates running out and the CA
//! certificates' ends (read from the database and the CA at most every
//! [`GAUGES_FRESH`], however often it is scraped), and counters and
//! latencies recorded as requests happen.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use connect_pki_domain::{Action, authorize};

use crate::http::error::ApiError;
use crate::http::identity::Caller;
use crate::http::state::AppState;

/// Installs the process-wide recorder. Later calls (a second server in the
/// same process, as in tests) reuse the first.
pub(crate) fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .and_then(|b| b.install_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// How long the database figures of the page are served from memory: a
/// scraper asking every second costs one round of SQL per this.
const GAUGES_FRESH: time::Duration = time::Duration::seconds(5);

/// The page, for a caller who may read it (the refusal comes before any
/// SQL is run).
pub(crate) async fn render(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    authorize(&caller.requester.actor, Action::ReadOperations)?;
    {
        // One reader at a time: scrapes that arrive together share one read.
        let mut cached = state.gauges_read.lock().await;
        let now = state.clock.now();
        if cached.as_ref().is_none_or(|(at, _)| (now - *at).abs() >= GAUGES_FRESH) {
            *cached = Some((now, read_figures(&state).await));
            metrics::counter!("connect_pki_metrics_figures_read_total").increment(1);
        }
        // Set on every scrape: the recorder may be shared with another
        // service in the same process (the tests), which set its own.
        if let Some((_, figures)) = cached.as_ref() {
            figures.apply();
        }
    }
    let page = state.metrics.render();
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response())
}

/// One gauge: its name, labels and value.
type Gauge = (&'static str, Vec<(&'static str, String)>, f64);

/// The figures `/metrics` reads from the database and the CA, as last read.
#[derive(Debug, Default)]
pub(crate) struct Figures(Vec<Gauge>);

impl Figures {
    fn set(&mut self, name: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        self.0.push((name, labels, value));
    }

    fn apply(&self) {
        for (name, labels, value) in &self.0 {
            let labels: Vec<metrics::Label> = labels.iter().map(|(k, v)| metrics::Label::new(*k, v.clone())).collect();
            metrics::gauge!(*name, labels).set(*value);
        }
    }
}

async fn read_figures(state: &AppState) -> Figures {
    let mut out = Figures::default();
    match state.store.figures().await {
        Ok(f) => {
            out.set("connect_pki_escalations_open", vec![], f.open_escalations as f64);
            let age = f.oldest_open_created_at.map_or(0.0, |t| (state.clock.now() - t).as_seconds_f64().max(0.0));
            out.set("connect_pki_escalation_oldest_open_age_seconds", vec![], age);
            out.set("connect_pki_certificates_on_hold", vec![], f.holds as f64);
            for (reason, n) in f.revoked_by_reason {
                out.set("connect_pki_certificates_revoked", vec![("reason", reason.to_string())], n as f64);
            }
            out.set("connect_pki_certificates_known", vec![], state.revocations.index.len() as f64);
            out.set("connect_pki_crl_number", vec![], state.revocations.crl().number as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: database figures unavailable"),
    }
    match connect_pki_ra::expiry::figures(state).await {
        Ok(f) => {
            for (days, n) in f.expiring {
                out.set("connect_pki_certificates_expiring", vec![("within_days", days.to_string())], n as f64);
            }
            for ca in f.ca {
                out.set(
                    "connect_pki_ca_certificate_not_after_seconds",
                    vec![("certificate", ca.label().to_string())],
                    ca.not_after.unix_timestamp() as f64,
                );
            }
        }
        Err(e) => tracing::warn!(error = %e.to_string(), "metrics: expiry figures unavailable"),
    }
    out
}
