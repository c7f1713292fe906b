//! Per-address rate limits on the unauthenticated endpoints (applications,
//! enrollment), where anyone on the network can call.
//!
//! Keyed by the peer's network: an IPv4 address, or an IPv6 /64 (what one
//! customer line gets; keying by /128 would let anyone with a /64 rotate
//! through 2^64 keys). Behind a trusted reverse proxy the address is the
//! client's as the proxy reported it (`http/forwarded.rs`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::http::error::ApiError;
use crate::net::governor::network_of;

/// A limit of `per_minute` requests per address, allowing bursts of that size.
#[derive(Clone)]
pub(crate) struct Limit(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limit")
    }
}

impl Limit {
    pub(crate) fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts one request from `ip`; refuses it with the wait when over the limit.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.0.check_key(&network_of(ip)).map_err(|not_until| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn one_ipv6_64_shares_one_limit() {
        let limit = Limit::per_minute(2);
        assert!(limit.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(limit.check(ip("2001:db8:1:2:ffff::9")).is_ok());
        // A third address of the same /64 is the same client.
        assert!(matches!(limit.check(ip("2001:db8:1:2:dead:beef::1")), Err(ApiError::RateLimited(_))));
        // Another /64, and IPv4, have limits of their own.
        assert!(limit.check(ip("2001:db8:1:3::1")).is_ok());
        assert!(limit.check(ip("192.0.2.7")).is_ok());
        assert!(limit.check(ip("::ffff:192.0.2.7")).is_ok());
        assert!(matches!(limit.check(ip("192.0.2.7")), Err(ApiError::RateLimited(_))));
    }
}
