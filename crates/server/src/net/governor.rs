//! Who may hold one of a listener's connection slots, for how long, and
//! what happens when they run out — so that clients that connect and stall (slowloris, forgotten
//! keep-alives, HTTP/2 connections kept open with PINGs) cannot hold the
//! service's sockets, tasks and memory, and a manager or 行政管理課 can
//! always connect.
//!
//! A connection is *idle* while no request of it is being answered, however
//! many bytes (PINGs, window updates) it exchanges. Idle connections are
//! closed after the idle timeout, or after the header timeout if they never
//! sent a request; they are also the first to go when the listener or their
//! source is full, oldest first, so a new client is served instead of
//! waiting. Every connection is asked to finish (HTTP/2 GOAWAY, HTTP/1
//! `Connection: close`) at its maximum age, and closed at its client
//! certificate's `notAfter`. A connection that presents one of our client
//! certificates leaves its source's count (staff behind one office NAT) and
//! may use the slots kept for such connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;

/// How long a connection asked to finish (maximum age, shutdown) may take
/// to answer the requests it has in flight.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How often the listener looks for connections to close.
const SWEEP: Duration = Duration::from_millis(250);

/// The key a source is counted and limited under: IPv4 as is (also when
/// mapped into IPv6), IPv6 cut to its /64 — what one customer line gets;
/// keying by /128 would let anyone with a /64 rotate through 2^64 keys.
pub(crate) fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why the listener closed or refused a connection (the label of
/// `connect_pki_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Its source already held its share and none of them was idle.
    SourceFull,
    /// Every slot was busy answering a request.
    Full,
    /// Idle, and a new connection needed its slot.
    Evicted,
    /// Idle for longer than the idle (or header) timeout.
    Idle,
    /// Past its maximum age and still not finished after the grace.
    Age,
    /// Its client certificate ran out.
    Expired,
    /// No client certificate while the slots left were kept for those with one.
    Reserved,
    /// Its source opened new connections faster than its limit.
    Arrivals,
}

impl Why {
    fn label(self) -> &'static str {
        match self {
            Self::SourceFull => "source_full",
            Self::Full => "full",
            Self::Evicted => "evicted",
            Self::Idle => "idle",
            Self::Age => "age",
            Self::Expired => "certificate_expired",
            Self::Reserved => "reserved",
            Self::Arrivals => "source_rate",
        }
    }
}

#[derive(Debug)]
struct Slot {
    source: IpAddr,
    certified: bool,
    /// Whether it counts against its source's share (not once certified,
    /// never for a trusted proxy, whose connections carry many clients).
    counted: bool,
    in_flight: u32,
    /// Whether it ever sent a complete request.
    served: bool,
    /// When it last became idle (or opened).
    since: Instant,
    opened: Instant,
    not_after: Option<Instant>,
    draining: bool,
    close: CancellationToken,
    drain: CancellationToken,
}

#[derive(Debug, Default)]
struct Slots {
    open: HashMap<u64, Slot>,
    /// Connections without a client certificate, per [`network_of`] source.
    per_source: HashMap<IpAddr, usize>,
    anonymous: usize,
    next: u64,
}

impl Slots {
    /// The connection idle longest among those `which` picks.
    fn oldest_idle(&self, which: impl Fn(u64, &Slot) -> bool) -> Option<u64> {
        self.open
            .iter()
            .filter(|(id, s)| s.in_flight == 0 && which(**id, s))
            .min_by_key(|(_, s)| s.since)
            .map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) -> Option<Slot> {
        let slot = self.open.remove(&id)?;
        if !slot.certified {
            self.anonymous -= 1;
        }
        if slot.counted {
            self.forget_source(slot.source);
        }
        Some(slot)
    }

    fn forget_source(&mut self, source: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

/// The slots of one listener and the rules for holding them.
#[derive(Debug)]
pub(crate) struct Governor {
    listener: &'static str,
    limits: Limits,
    /// Slots only connections with one of our client certificates may hold.
    reserved: usize,
    slots: parking_lot::Mutex<Slots>,
    /// New connections per source, where each costs a TLS handshake.
    arrivals: Option<governor::DefaultKeyedRateLimiter<IpAddr>>,
    /// Peers held to no per-source share or rate: the trusted proxies, whose
    /// connections carry many clients.
    proxies: crate::net::proxy::Trusted,
}

impl Governor {
    /// `reserved` slots of `limits.max_connections` are kept for connections
    /// that present a client certificate (0 on the plain listener).
    pub(crate) fn new(listener: &'static str, limits: Limits, reserved: usize) -> Arc<Self> {
        let reserved = reserved.min(limits.max_connections.saturating_sub(1));
        Arc::new(Self {
            listener,
            limits,
            reserved,
            slots: parking_lot::Mutex::default(),
            arrivals: None,
            proxies: crate::net::proxy::Trusted::default(),
        })
    }

    /// The same, holding the trusted proxies to no per-source share or rate.
    pub(crate) fn trusting(mut self: Arc<Self>, proxies: crate::net::proxy::Trusted) -> Arc<Self> {
        if let Some(g) = Arc::get_mut(&mut self) {
            g.proxies = proxies;
        }
        self
    }

    /// The same, with new connections from one source limited to
    /// `limits.new_connections_per_source_per_minute`, bursts of a fifth of
    /// it: a client that closes and reopens connections as fast as it can
    /// (each one a handshake the service signs) is slowed down to that.
    pub(crate) fn with_arrival_limit(listener: &'static str, limits: Limits, reserved: usize) -> Arc<Self> {
        let per_minute = std::num::NonZeroU32::new(limits.new_connections_per_source_per_minute.max(1))
            .unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new((per_minute.get() / 5).max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::per_minute(per_minute).allow_burst(burst);
        let mut g = Self::new(listener, limits, reserved);
        if let Some(g) = Arc::get_mut(&mut g) {
            g.arrivals = Some(governor::RateLimiter::keyed(quota));
        }
        g
    }

    fn closed(&self, why: Why) {
        ::metrics::counter!("connect_pki_connections_closed_total", "listener" => self.listener, "why" => why.label())
            .increment(1);
    }

    fn evict(&self, slots: &mut Slots, id: u64, why: Why) {
        if let Some(slot) = slots.remove(id) {
            slot.close.cancel();
            self.closed(why);
        }
    }

    /// A slot for a new connection from `source`, taken from an idle
    /// connection if need be; `None` when its source, or the listener, has
    /// only busy connections left.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr, shutdown: &CancellationToken) -> Option<Admitted> {
        let key = network_of(source);
        let counted = !self.proxies.trusts(source);
        if let Some(arrivals) = self.arrivals.as_ref().filter(|_| counted) {
            if arrivals.check_key(&key).is_err() {
                self.closed(Why::Arrivals);
                return None;
            }
            // Keep the table from growing without bound under a scan of addresses.
            if arrivals.len() > 100_000 {
                arrivals.retain_recent();
            }
        }
        let mut slots = self.slots.lock();
        if counted && slots.per_source.get(&key).copied().unwrap_or(0) >= self.limits.max_connections_per_source.max(1)
        {
            match slots.oldest_idle(|_, s| !s.certified && s.source == key) {
                Some(id) => self.evict(&mut slots, id, Why::Evicted),
                None => {
                    self.closed(Why::SourceFull);
                    return None;
                }
            }
        }
        if slots.open.len() >= self.limits.max_connections.max(1) {
            match slots.oldest_idle(|_, s| !s.certified) {
                Some(id) => self.evict(&mut slots, id, Why::Evicted),
                None => {
                    self.closed(Why::Full);
                    return None;
                }
            }
        }
        let id = slots.next;
        slots.next += 1;
        let (close, drain) = (CancellationToken::new(), shutdown.child_token());
        let now = Instant::now();
        slots.open.insert(
            id,
            Slot {
                source: key,
                certified: false,
                counted,
                in_flight: 0,
                served: false,
                since: now,
                opened: now,
                not_after: None,
                draining: false,
                close: close.clone(),
                drain: drain.clone(),
            },
        );
        slots.anonymous += 1;
        if counted {
            *slots.per_source.entry(key).or_default() += 1;
        }
        Some(Admitted { governor: self.clone(), id, close, drain })
    }

    /// Closes what has been idle too long, drains what is too old, and
    /// closes what outlived its certificate, until `shutdown`.
    pub(crate) async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            self.sweep_once(Instant::now());
        }
    }

    fn sweep_once(&self, now: Instant) {
        let Limits { idle_timeout, header_read_timeout, max_connection_age, .. } = self.limits;
        let mut slots = self.slots.lock();
        let mut close = Vec::new();
        for (id, s) in &mut slots.open {
            let quiet = if s.served { idle_timeout } else { header_read_timeout };
            if s.not_after.is_some_and(|t| t <= now) {
                close.push((*id, Why::Expired));
            } else if s.in_flight == 0 && now.duration_since(s.since) >= quiet {
                close.push((*id, Why::Idle));
            } else if now.duration_since(s.opened) >= max_connection_age + DRAIN_GRACE {
                close.push((*id, Why::Age));
            } else if !s.draining && now.duration_since(s.opened) >= max_connection_age {
                s.draining = true;
                s.drain.cancel();
            }
        }
        for (id, why) in close {
            self.evict(&mut slots, id, why);
        }
    }
}

/// A connection's slot, given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    governor: Arc<Governor>,
    id: u64,
    /// Cancelled when the connection must be dropped at once.
    pub(crate) close: CancellationToken,
    /// Cancelled when the connection should finish what it has in flight.
    pub(crate) drain: CancellationToken,
}

impl Admitted {
    /// The connection finished its TLS handshake: the header timeout
    /// counts from now. Handshakes run at a lower priority (see
    /// `app::PublicThreads`); on a busy machine one can take a good part of
    /// the header timeout, and the client has not yet been able to send a
    /// byte of its request. One that never finishes is closed by the
    /// clock started at admission.
    pub(crate) fn handshaken(&self) {
        if let Some(s) = self.governor.slots.lock().open.get_mut(&self.id) {
            s.since = Instant::now();
        }
    }

    /// The connection proved one of our client certificates, valid until
    /// `not_after`: it no longer counts against its source and is closed
    /// when the certificate runs out.
    pub(crate) fn certified(&self, not_after: Instant) {
        let mut slots = self.governor.slots.lock();
        let Some(slot) = slots.open.get_mut(&self.id) else { return };
        slot.not_after = Some(not_after);
        if slot.certified {
            return;
        }
        slot.certified = true;
        let (source, counted) = (slot.source, std::mem::replace(&mut slot.counted, false));
        slots.anonymous -= 1;
        if counted {
            slots.forget_source(source);
        }
    }

    /// Whether a connection without a client certificate may stay: only
    /// while the slots kept for certificates are free, making room by
    /// closing the longest-idle anonymous connection if need be.
    pub(crate) fn may_stay_anonymous(&self) -> bool {
        let g = &self.governor;
        let mut slots = g.slots.lock();
        if !slots.open.contains_key(&self.id) {
            return false;
        }
        if slots.anonymous <= g.limits.max_connections.saturating_sub(g.reserved) {
            return true;
        }
        let me = self.id;
        match slots.oldest_idle(|id, s| id != me && !s.certified) {
            Some(id) => {
                g.evict(&mut slots, id, Why::Evicted);
                true
            }
            None => {
                g.evict(&mut slots, me, Why::Reserved);
                false
            }
        }
    }

    /// Marks a request as being answered until the guard is dropped.
    pub(crate) fn request(&self) -> InFlight {
        if let Some(s) = self.governor.slots.lock().open.get_mut(&self.id) {
            s.in_flight += 1;
            s.served = true;
        }
        InFlight { governor: self.governor.clone(), id: self.id }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.governor.slots.lock().remove(self.id);
    }
}

/// One request being answered (see [`Admitted::request`]).
#[derive(Debug)]
pub(crate) struct InFlight {
    governor: Arc<Governor>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.governor.slots.lock().open.get_mut(&self.id) {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn limits(max: usize, per_source: usize) -> Limits {
        Limits { max_connections: max, max_connections_per_source: per_source, ..Limits::default() }
    }

    #[test]
    fn one_ipv6_64_is_one_source() {
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa::1")), network_of(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(network_of(ip("2001:db8:1:2::1")), network_of(ip("2001:db8:1:3::1")));
        assert_eq!(network_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[tokio::test]
    async fn a_source_at_its_share_gives_up_its_idle_connection_or_is_refused() {
        let shutdown = CancellationToken::new();
        let g = Governor::new("test", limits(100, 2), 0);
        let a = g.admit(ip("192.0.2.1"), &shutdown).expect("first");
        let b = g.admit(ip("192.0.2.1"), &shutdown).expect("second");
        let busy = (a.request(), b.request());
        assert!(g.admit(ip("192.0.2.1"), &shutdown).is_none(), "both busy: the third is refused");
        assert!(g.admit(ip("192.0.2.2"), &shutdown).is_some(), "another source has a share of its own");
        drop(busy.1);
        let c = g.admit(ip("192.0.2.1"), &shutdown).expect("b was idle and gave way");
        assert!(b.close.is_cancelled() && !a.close.is_cancelled() && !c.close.is_cancelled());
        // A certified connection leaves its source's count.
        c.certified(Instant::now() + Duration::from_secs(3600));
        assert!(g.admit(ip("192.0.2.1"), &shutdown).is_some());
    }

    #[tokio::test]
    async fn a_full_listener_closes_its_longest_idle_anonymous_connection() {
        let shutdown = CancellationToken::new();
        let g = Governor::new("test", limits(3, 100), 1);
        let staff = g.admit(ip("192.0.2.1"), &shutdown).expect("staff");
        staff.certified(Instant::now() + Duration::from_secs(3600));
        let old = g.admit(ip("192.0.2.2"), &shutdown).expect("old");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = g.admit(ip("192.0.2.3"), &shutdown).expect("young");
        let _busy = young.request();
        let next = g.admit(ip("192.0.2.4"), &shutdown).expect("room made");
        assert!(old.close.is_cancelled(), "the idle anonymous one went");
        assert!(!staff.close.is_cancelled(), "not the certified one");
        assert!(next.may_stay_anonymous(), "two anonymous connections fit beside the kept slot");
        // Without staff, a third anonymous connection would hold the slot
        // kept for certificates: the longest-idle other one makes room…
        drop(staff);
        let third = g.admit(ip("192.0.2.5"), &shutdown).expect("a free slot");
        assert!(third.may_stay_anonymous());
        assert!(next.close.is_cancelled());
        // …and when none is idle, the newcomer goes.
        let _busy_too = third.request();
        let fourth = g.admit(ip("192.0.2.6"), &shutdown).expect("a free slot");
        assert!(!fourth.may_stay_anonymous());
        assert!(fourth.close.is_cancelled() && !young.close.is_cancelled() && !third.close.is_cancelled());
    }

    #[tokio::test]
    async fn a_trusted_proxy_is_held_to_no_share() {
        let shutdown = CancellationToken::new();
        let proxies = crate::net::proxy::Trusted(vec!["192.0.2.9/32".parse().expect("net")]);
        let g = Governor::new("test", limits(100, 2), 0).trusting(proxies);
        let mut held = Vec::new();
        for i in 0..10 {
            let c = g.admit(ip("192.0.2.9"), &shutdown).unwrap_or_else(|| panic!("the proxy's connection {i}"));
            held.push((c.request(), c));
        }
        let a = g.admit(ip("192.0.2.1"), &shutdown).expect("first");
        let b = g.admit(ip("192.0.2.1"), &shutdown).expect("second");
        let _busy = (a.request(), b.request());
        assert!(g.admit(ip("192.0.2.1"), &shutdown).is_none(), "anyone else keeps to the share");
    }

    #[tokio::test]
    async fn a_source_opening_connections_too_fast_is_slowed_down() {
        let shutdown = CancellationToken::new();
        let l = Limits { new_connections_per_source_per_minute: 50, ..Limits::default() };
        let g = Governor::with_arrival_limit("test", l, 0);
        let mut kept = Vec::new();
        for i in 0..10 {
            kept.push(g.admit(ip("192.0.2.1"), &shutdown).unwrap_or_else(|| panic!("connection {i} of the burst")));
        }
        assert!(g.admit(ip("192.0.2.1"), &shutdown).is_none(), "past the burst of a fifth of a minute's share");
        assert!(g.admit(ip("192.0.2.2"), &shutdown).is_some(), "another source has its own");
    }

    #[tokio::test]
    async fn idle_connections_close_and_old_ones_are_drained() {
        let shutdown = CancellationToken::new();
        let l = Limits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            ..Limits::default()
        };
        let g = Governor::new("test", l, 0);
        let silent = g.admit(ip("192.0.2.1"), &shutdown).expect("silent");
        let served = g.admit(ip("192.0.2.2"), &shutdown).expect("served");
        drop(served.request());
        let busy = g.admit(ip("192.0.2.3"), &shutdown).expect("busy");
        let _request = busy.request();
        let t0 = Instant::now();
        g.sweep_once(t0 + Duration::from_secs(3));
        assert!(silent.close.is_cancelled(), "no request within the header timeout");
        assert!(!served.close.is_cancelled());
        g.sweep_once(t0 + Duration::from_secs(6));
        assert!(served.close.is_cancelled(), "idle past the idle timeout");
        assert!(!busy.close.is_cancelled(), "a request in flight is not idleness");
        g.sweep_once(t0 + Duration::from_secs(61));
        assert!(busy.drain.is_cancelled() && !busy.close.is_cancelled(), "asked to finish at its age");
        g.sweep_once(t0 + Duration::from_secs(72));
        assert!(busy.close.is_cancelled(), "closed when it did not finish");
    }

    #[tokio::test]
    async fn the_header_timeout_counts_from_the_end_of_the_handshake() {
        let shutdown = CancellationToken::new();
        let l = Limits { header_read_timeout: Duration::from_secs(1), ..Limits::default() };
        let g = Governor::new("test", l, 0);
        let stuck = g.admit(ip("192.0.2.1"), &shutdown).expect("stuck in its handshake");
        let slow = g.admit(ip("192.0.2.2"), &shutdown).expect("a slow handshake");
        tokio::time::sleep(Duration::from_millis(600)).await;
        slow.handshaken();
        let t1 = Instant::now();
        g.sweep_once(t1 + Duration::from_millis(500));
        assert!(stuck.close.is_cancelled(), "no handshake within the header timeout");
        assert!(!slow.close.is_cancelled(), "its request has the whole header timeout after the handshake");
        g.sweep_once(t1 + Duration::from_millis(1000));
        assert!(slow.close.is_cancelled(), "no request within the header timeout after the handshake");
    }
}
