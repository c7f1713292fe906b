//! `/metrics` (Prometheus text format), for 行政管理課's client certificate
//! only (a scraper holds one): open escalations and the age of the oldest,
//! holds, revocations by reason, device certificates running out and the CA
//! certificates' ends (read from the database and the CA at scrape time),
//! and counters and latencies recorded as requests happen.

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

/// The page, for a caller who may read it (the refusal comes before any
/// SQL is run).
pub(crate) async fn render(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    authorize(&caller.requester.actor, Action::ReadOperations)?;
    set_gauges(&state).await;
    let page = state.metrics.render();
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response())
}

async fn set_gauges(state: &AppState) {
    match state.store.figures().await {
        Ok(f) => {
            metrics::gauge!("connect_pki_escalations_open").set(f.open_escalations as f64);
            let age = f.oldest_open_created_at.map_or(0.0, |t| (state.clock.now() - t).as_seconds_f64().max(0.0));
            metrics::gauge!("connect_pki_escalation_oldest_open_age_seconds").set(age);
            metrics::gauge!("connect_pki_certificates_on_hold").set(f.holds as f64);
            for (reason, n) in f.revoked_by_reason {
                metrics::gauge!("connect_pki_certificates_revoked", "reason" => reason).set(n as f64);
            }
            metrics::gauge!("connect_pki_certificates_known").set(state.revocations.index.len() as f64);
            metrics::gauge!("connect_pki_crl_number").set(state.revocations.crl().number as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: database figures unavailable"),
    }
    match connect_pki_ra::expiry::figures(state).await {
        Ok(f) => {
            for (days, n) in f.expiring {
                metrics::gauge!("connect_pki_certificates_expiring", "within_days" => days.to_string()).set(n as f64);
            }
            for ca in f.ca {
                metrics::gauge!("connect_pki_ca_certificate_not_after_seconds", "certificate" => ca.label())
                    .set(ca.not_after.unix_timestamp() as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e.to_string(), "metrics: expiry figures unavailable"),
    }
}
