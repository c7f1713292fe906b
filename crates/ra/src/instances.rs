//! "Before the call returns, on every instance", as an option.
//!
//! A change of certificate status answers once this instance enforces it
//! (`Revocations::sync`). With `every_instance` on, it also waits — at most
//! [`WAIT`] — until every live instance has recorded (its heartbeat) that it
//! applied the feed that far, and names any that had not. Such an instance
//! has not read the feed for at least that long, and with the option on it
//! fails closed after the same bound (`FeedSettings::max_lag` is capped to
//! it), so it refuses rather than vouches until it catches up.

use std::time::{Duration, Instant};

use connect_pki_store::Behind;

use crate::Ra;
use crate::error::ServiceError;

/// The longest a change waits for the other instances.
pub const WAIT: Duration = Duration::from_secs(1);

/// An instance whose last heartbeat is older is stopped or stalled: not
/// waited for, but named (six missed heartbeats).
const LIVE_MS: i64 = 3_000;

/// An instance not seen for this long has stopped for good: no longer named.
const NAMED_MS: i64 = 60_000;

/// How often the heartbeats are read while waiting.
const POLL: Duration = Duration::from_millis(2);

/// Where the other instances were when a change answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Everywhere {
    /// The feed position that carries the change (or a later one).
    pub position: i64,
    /// Instances seen in the last minute that had not applied it.
    pub not_applied: Vec<Behind>,
}

/// With the option on, waits until every live instance has applied what this
/// one has, or [`WAIT`] has passed; `None` with the option off.
pub async fn wait_for_every_instance(ra: &Ra) -> Result<Option<Everywhere>, ServiceError> {
    if !ra.settings.every_instance {
        return Ok(None);
    }
    let position = ra.revocations.applied();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut behind = ra.store.instances_behind(position, NAMED_MS).await?;
        // This instance applied it before it asked (its heartbeat may lag).
        behind.retain(|b| *b.id != *ra.instance_id);
        let waiting = behind.iter().any(|b| b.seen_ms_ago <= LIVE_MS);
        if !waiting || Instant::now() >= deadline {
            if !behind.is_empty() {
                metrics::counter!("connect_pki_changes_not_applied_everywhere_total").increment(1);
                tracing::warn!(
                    position,
                    instances = %behind.iter().map(|b| b.id.as_str()).collect::<Vec<_>>().join(","),
                    "a change answered before every instance applied it; those fail closed until they do"
                );
            }
            return Ok(Some(Everywhere { position, not_applied: behind }));
        }
        tokio::time::sleep(POLL).await;
    }
}
