//! How many requests without one of our client certificates may read the
//! database at once.
//!
//! A request that carries a code, a password or an application reads the
//! database, and holds a pool connection while it does. Those requests are
//! served on the lower-priority threads (see `app::PublicThreads`): under a
//! flood of wrong codes, each of them waits there for a core while holding
//! its connection, and a few hundred of them held all eight of SQLite's for
//! seconds at a time, so a manager's revoke waited for a connection as long
//! (measured with the hostile-load benchmark: p99 over 2 s). Strangers
//! share [`PLACES`] places, taken after the per-address limit (a refusal
//! that costs nothing never queues) and before the first read; the rest of
//! the pool stays free for callers with a client certificate, whose
//! handlers never take one.
//!
//! Inside its place, a stranger's database work runs on the main threads,
//! not on the lower-priority ones its connection is served on: the pool
//! takes a connection back in a task of the runtime that drops it (it pings
//! it first), and on the busy threads that task waited behind the flood
//! while the revoke waited for the connection (p50 80 ms).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::ApiError;
use crate::http::ratelimit::Limit;
use crate::http::state::AppState;

/// Requests without a client certificate reading the database at once:
/// half of SQLite's pool (eight connections), a quarter of PostgreSQL's.
pub(crate) const PLACES: usize = 4;

/// How long a stranger's request waits for a place before it is told to
/// come back: long enough for a person at a page to get in behind a flood,
/// short enough that the flood does not queue without end.
const WAIT: Duration = Duration::from_secs(5);

/// The places strangers share, and the threads their work runs on.
#[derive(Debug)]
pub(crate) struct Strangers {
    places: Arc<Semaphore>,
    wait: Duration,
    /// The main runtime; `None`: wherever the request is served.
    home: Option<tokio::runtime::Handle>,
}

impl Strangers {
    /// Places whose work runs on the runtime this is called on.
    pub(crate) fn here() -> Self {
        Self { home: tokio::runtime::Handle::try_current().ok(), ..Self::with(PLACES, WAIT) }
    }

    fn with(places: usize, wait: Duration) -> Self {
        Self { places: Arc::new(Semaphore::new(places)), wait, home: None }
    }

    /// Runs `work` in a place, on the main threads. The place goes with
    /// the work: a client that hangs up does not free it while the work
    /// it started still runs.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let place = self.enter().await?;
        let work = async move {
            let r = work.await;
            drop(place);
            r
        };
        match &self.home {
            Some(home) => home.spawn(work).await.map_err(|e| anyhow::anyhow!("a stranger's request failed: {e}"))?,
            None => work.await,
        }
    }

    /// Waits (bounded) for a place, held until the result is dropped.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.wait, self.places.clone().acquire_owned()).await {
            Ok(Ok(place)) => Ok(place),
            _ => {
                ::metrics::counter!("connect_pki_strangers_turned_away_total").increment(1);
                Err(ApiError::Crowded(self.wait.as_secs().max(1)))
            }
        }
    }
}

/// Serves a stranger's request: counted against `limit` for its address
/// (if any), then `work` in one of the places, on the main threads.
pub(crate) async fn serve<T, Fut>(
    state: &AppState,
    limit: Option<(&Limit, IpAddr)>,
    work: impl FnOnce(AppState) -> Fut,
) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    if let Some((limit, ip)) = limit {
        limit.check(ip)?;
    }
    state.limits.strangers.run(work(state.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stranger_waits_for_a_place_and_is_told_when_none_frees() {
        let strangers = Strangers::with(2, Duration::from_millis(100));
        let first = strangers.enter().await.expect("a place");
        let second = strangers.enter().await.expect("a place");
        let third = strangers.enter().await.expect_err("no place left");
        assert!(matches!(third, ApiError::Crowded(1)), "{third:?}");
        assert!(third.message_ja().contains("混み合って"), "{}", third.message_ja());
        drop(first);
        let again = strangers.enter().await.expect("a place freed");
        // One waiting is let in when a place frees, within its wait.
        let waiting = async { strangers.enter().await.map(drop) };
        let (r, ()) = tokio::join!(waiting, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(second);
        });
        r.expect("let in when a place freed");
        drop(again);
    }

    #[test]
    fn a_caller_that_gives_up_leaves_the_place_taken_until_its_work_ends() {
        let main = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let strangers =
            Arc::new(Strangers { home: Some(main.handle().clone()), ..Strangers::with(1, Duration::from_millis(50)) });
        let lower = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        lower.block_on(async {
            let caller = tokio::spawn({
                let strangers = strangers.clone();
                async move { strangers.run(async move { rx.await.map_err(|e| anyhow::anyhow!("{e}").into()) }).await }
            });
            while strangers.places.available_permits() > 0 {
                tokio::task::yield_now().await;
            }
            caller.abort();
            let _ = caller.await;
            let refused = strangers.run(async { Ok(()) }).await.expect_err("the work still runs in its place");
            assert!(matches!(refused, ApiError::Crowded(_)), "{refused:?}");
            tx.send(()).expect("the work still waits");
            for _ in 0..500 {
                if strangers.places.available_permits() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(strangers.places.available_permits(), 1, "the place is free once the work ended");
        });
    }

    #[test]
    fn the_work_runs_on_the_main_threads() {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("main-threads")
            .enable_all()
            .build()
            .expect("runtime");
        let strangers = Strangers { home: Some(main.handle().clone()), ..Strangers::with(1, Duration::from_secs(1)) };
        let lower = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let ran_on = lower
            .block_on(strangers.run(async { Ok(std::thread::current().name().map(str::to_string)) }))
            .expect("the work ran");
        assert_eq!(ran_on.as_deref(), Some("main-threads"));
        assert_eq!(strangers.places.available_permits(), 1, "the place is given back");
    }
}
