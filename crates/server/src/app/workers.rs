//! The service's periodic work, each on a task of its own until shutdown:
//! scheduled retirements, escalations and holds that fall due, browser
//! renewals handed over, rejected
//! applications' purge and notification delivery (every second); the
//! service's check of its own database; refused requests written to the
//! audit log (every minute). The relying parties' record has its own
//! (`relying`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::state::AppState;

/// Writes the refused requests counted in the last minute to the audit log,
/// one row per caller and route with its count.
pub(super) async fn refusal_writer(ra: connect_pki_ra::Ra, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = connect_pki_ra::audit::flush_refusals(&ra).await {
            tracing::error!(error = %e, "refused requests could not be written to the audit log; kept for the next minute");
        }
    }
}

/// Carries out scheduled retirements, escalations past their SLA, holds
/// past their limit and browser renewals' handovers when they fall due.
pub(super) async fn retirement_worker(state: AppState, shutdown: CancellationToken) {
    let delivering = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
        if let Err(e) = connect_pki_ra::users::run_due_retirements(&state).await {
            tracing::error!(error = %e.to_string(), "scheduled retirement failed; retrying");
        }
        if let Err(e) = connect_pki_ra::escalations::run_due(&state).await {
            tracing::error!(error = %e.to_string(), "escalation or hold-limit worker failed; retrying");
        }
        match connect_pki_ra::renewal::hand_over_due(&state).await {
            Ok(s) if !s.is_empty() => tracing::info!(superseded = s.len(), "renewed certificates handed over"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.to_string(), "handing over renewed certificates failed; retrying"),
        }
        // Rejected applications leave once their retention ends, and account
        // reviews come due: looked at every minute, cheap reads that usually
        // find nothing.
        if tick.is_multiple_of(60) {
            match connect_pki_ra::applications::purge_rejected(&state).await {
                Ok(ids) if !ids.is_empty() => tracing::info!(purged = ids.len(), "rejected applications purged"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e.to_string(), "purging rejected applications failed; retrying"),
            }
            match connect_pki_ra::review::remind_due(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(facilities = n, "account review reminders queued"),
                Err(e) => tracing::error!(error = %e.to_string(), "account review reminders failed; retrying"),
            }
        }
        tick += 1;
        // Deliveries run on their own so that a slow mail server never delays the other workers.
        let s = state.clone();
        if !delivering.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let flag = delivering.clone();
            tokio::spawn(async move {
                if let Err(e) = connect_pki_ra::notify::deliver_due(&s).await {
                    tracing::error!(error = %e.to_string(), "notification delivery failed; retrying");
                }
                flag.store(false, std::sync::atomic::Ordering::Release);
            });
        }
    }
}

/// Runs `connect-pki check` on the service's own database every `every`:
/// a certificate in force that should not be (a retired user's, a closed
/// facility's, a lost device's) is what a restored backup or a hand-edited
/// database leaves behind. The count goes to /metrics; any at all is an
/// error line naming them, for the log's alerting.
pub(super) async fn consistency_worker(state: AppState, every: Duration, shutdown: CancellationToken) {
    loop {
        match state.store.consistency_offenders().await {
            Ok(offenders) => {
                ::metrics::gauge!("connect_pki_consistency_offenders").set(offenders.len() as f64);
                ::metrics::gauge!("connect_pki_consistency_checked_timestamp_seconds")
                    .set(state.clock.now().unix_timestamp() as f64);
                if !offenders.is_empty() {
                    let list: Vec<String> =
                        offenders.iter().map(|o| format!("{} ({})", o.serial.to_hex(), o.why)).collect();
                    tracing::error!(
                        offenders = offenders.len(),
                        certificates = %list.join(", "),
                        "consistency check: certificates in force that should have been revoked; run `connect-pki check`"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e.to_string(), "consistency check could not run"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
    }
}
