//! Per-address rate limits on the unauthenticated endpoints (applications,
//! enrollment), where anyone on the network can call.
//!
//! Keyed by the peer address of the TCP connection. Behind a reverse proxy
//! every request shares the proxy's address: put the limit in the proxy then.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::http::error::ApiError;

/// A limit of `per_minute` requests per address, allowing bursts of that size.
#[derive(Clone)]
pub struct Limit(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limit")
    }
}

impl Limit {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts one request from `ip`; refuses it with the wait when over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.0.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited(wait.as_secs().max(1))
        })?;
        // Keep the table from growing without bound under a scan of addresses.
        if self.0.len() > 100_000 {
            self.0.retain_recent();
        }
        Ok(())
    }
}
