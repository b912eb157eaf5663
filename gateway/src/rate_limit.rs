//! Per-client rate limiting of every request but the probes (`/health`,
//! `/ready`, `/metrics`), including those to routes that do not exist:
//! `RATE_LIMIT_PER_SECOND` requests per second sustained, bursts of
//! `RATE_LIMIT_BURST`, per client (GCRA, from the `governor` crate). Past it
//! the client gets `429` with `Retry-After`, and other clients are not
//! affected.
//!
//! A client is an IPv4 address, or an IPv6 /64: one host usually holds a
//! whole /64, so keying on the exact IPv6 address would give it 2^64
//! budgets.
//!
//! The client is the TCP peer. Behind a reverse proxy every request would
//! come from the proxy, so `RATE_LIMIT_TRUST_FORWARDED_FOR=true` keys on the
//! last `X-Forwarded-For` address instead (the one the proxy appended; the
//! ones before it are the client's own claims). Only set it behind a proxy:
//! anyone can send the header.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::error::ApiError;

/// How many requests pass between two sweeps of idle clients' state, so the
/// table stays as small as the set of recently active clients.
const SWEEP_EVERY: u64 = 4096;

/// The configured limit (`None` in the settings turns limiting off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
    pub trust_forwarded_for: bool,
}

/// The shared limiter state; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    limits: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    checks: Arc<AtomicU64>,
    config: RateLimit,
}

impl Limiter {
    pub fn new(config: RateLimit) -> Self {
        let quota = Quota::per_second(config.per_second).allow_burst(config.burst);
        Self {
            limits: Arc::new(RateLimiter::keyed(quota)),
            clock: DefaultClock::default(),
            checks: Arc::new(AtomicU64::new(0)),
            config,
        }
    }

    /// `Ok` if `client` may send a request now, else how long it must wait.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limits.retain_recent();
        }
        self.limits
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// The client a request counts against (see the module docs).
    fn client_of(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let mut address = peer;
        if self.config.trust_forwarded_for {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .next_back();
            address = forwarded.or(peer);
        }
        address.map(client_key)
    }
}

/// An IPv4 address as it is (also when written as an IPv4-mapped IPv6
/// address); an IPv6 address as its /64 network.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Middleware: answers `429` with `Retry-After` (whole seconds, rounded up)
/// to a client over its limit; counts every refusal.
pub async fn enforce(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    // An orchestrator's probes must not fail because a client is flooding.
    if runtime::http::is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    // Without a known client (a test calling the router directly), no limit.
    let Some(client) = limiter.client_of(request.headers(), peer) else {
        return next.run(request).await;
    };
    match limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!("gateway_rate_limited_total").increment(1);
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                per_second: limiter.config.per_second.get(),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32, trust_forwarded_for: bool) -> Limiter {
        Limiter::new(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
            trust_forwarded_for,
        })
    }

    #[test]
    fn a_client_over_its_burst_waits_and_others_do_not() {
        let limiter = limiter(1, 3, false);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_client_its_address() {
        let keys = limiter(1, 1, false);
        let client = |peer: &str| keys.client_of(&HeaderMap::new(), peer.parse().ok());
        assert_eq!(
            client("2001:db8:1:2:aaaa::1"),
            client("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:192.0.2.7"), client("192.0.2.7"));
        assert_ne!(client("192.0.2.7"), client("192.0.2.8"));

        // The same budget for every address of the /64.
        let limiter = limiter(1, 2, false);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let headers = HeaderMap::new();
        assert!(
            limiter
                .check(limiter.client_of(&headers, Some(a)).unwrap())
                .is_ok()
        );
        assert!(
            limiter
                .check(limiter.client_of(&headers, Some(b)).unwrap())
                .is_ok()
        );
        assert!(
            limiter
                .check(limiter.client_of(&headers, Some(a)).unwrap())
                .is_err()
        );
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted_and_the_last_entry_wins() {
        let peer: IpAddr = "172.18.0.5".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        assert_eq!(
            limiter(1, 1, false).client_of(&headers, Some(peer)),
            Some(peer)
        );
        assert_eq!(
            limiter(1, 1, true).client_of(&headers, Some(peer)),
            Some("2.2.2.2".parse().unwrap())
        );
        assert_eq!(
            limiter(1, 1, true).client_of(&HeaderMap::new(), Some(peer)),
            Some(peer)
        );
    }
}
