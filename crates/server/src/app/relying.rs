//! The worker that writes what the responder counted about relying parties
//! (`connect_pki_responder::sightings`) to the database and prunes it after
//! the retention period; the names they go by and the write itself are
//! `connect_pki_ra::sightings`.

use std::time::Duration;

use connect_pki_ra::sightings::{RecordSettings, flush, trim};
use tokio_util::sync::CancellationToken;

use connect_pki_ra::Ra;

/// Writes the counts every `flush_every`, keeps the unnamed clients' rows
/// to their cap after every write, and prunes hourly. What is left when the
/// service stops is written by `run::Running::wait`, before the database
/// pool closes.
pub(crate) async fn worker(state: Ra, settings: RecordSettings, shutdown: CancellationToken) {
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(settings.flush_every) => {},
        }
        match flush(&state).await {
            Ok(written) if written > 0 => match trim(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "rows of unnamed relying parties past their cap removed"),
                Err(e) => tracing::error!(error = %e, "keeping unnamed relying parties to their cap failed"),
            },
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "writing the relying parties' record failed; kept for the next attempt")
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(tokio::time::Instant::now());
            match state.store.prune_sightings(state.clock.now() - settings.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "relying parties' record pruned"),
                Err(e) => tracing::error!(error = %e, "pruning the relying parties' record failed"),
            }
        }
    }
}
