//! Who a client is, by network address, and what one address may do:
//! open connections ([`ConnectionTracker`]) and create guests and try passwords ([`AddressLimiter`]).
//!
//! The address is the TCP peer's, unless the peer is a trusted reverse proxy
//! (`net.trusted_proxies`): then it is the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy. IPv6 clients are
//! counted per /64, the block one subscriber usually holds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use actix_web::HttpRequest;
use actix_web::dev::ServiceRequest;
use tokio::time::Instant;

use crate::config::NetConfig;

pub mod ipnet;
pub use ipnet::IpNet;
use ipnet::canonical;

/// What a client is counted as: its IPv4 address or its IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & (u128::MAX << 64);
                ClientKey(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => ClientKey(v4),
        }
    }

    pub fn is_loopback(&self) -> bool {
        self.0.is_loopback()
    }
}

impl std::fmt::Display for ClientKey {
    /// The address (IPv6: its /64, as `prefix::`), for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The trusted proxies, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<IpNet>);

impl Proxies {
    pub fn new(config: &NetConfig) -> Proxies {
        Proxies(
            config
                .trusted_proxies
                .iter()
                .filter_map(|p| IpNet::parse(p).ok())
                .collect(),
        )
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address for a request from `peer` with these
    /// `X-Forwarded-For` values (see the module docs).
    pub fn client_ip<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = forwarded_for
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        Some(
            hops.into_iter()
                .rev()
                .find(|ip| !self.trusts(*ip))
                .unwrap_or(peer),
        )
    }

    fn of_parts(
        &self,
        peer: Option<SocketAddr>,
        headers: &actix_web::http::header::HeaderMap,
    ) -> Option<ClientKey> {
        let xff = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        self.client_ip(peer.map(|p| p.ip()), xff).map(ClientKey::of)
    }

    /// The client of a request.
    pub fn client_of(&self, req: &HttpRequest) -> Option<ClientKey> {
        self.of_parts(req.peer_addr(), req.headers())
    }

    /// The client of a request in a middleware.
    pub fn client_of_service(&self, req: &ServiceRequest) -> Option<ClientKey> {
        self.of_parts(req.peer_addr(), req.headers())
    }
}

/// Counts open connections per client address. A connection registers when it
/// is accepted ([`ConnectionTracker::open`], from `HttpServer::on_connect`) and
/// unregisters when its [`Connection`] guard drops with the connection.
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    inner: Arc<Mutex<HashMap<ClientKey, usize>>>,
    limit: usize,
    exempt_loopback: bool,
    proxies: Proxies,
}

/// One accepted connection (lives in the connection's extensions).
#[derive(Debug)]
pub struct Connection {
    key: Option<ClientKey>,
    /// This connection is over its address's limit: its requests are refused.
    pub over_limit: bool,
    tracker: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        if let Ok(mut map) = self.tracker.lock()
            && let Some(n) = map.get_mut(&key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
        }
    }
}

impl ConnectionTracker {
    pub fn new(config: &NetConfig) -> ConnectionTracker {
        ConnectionTracker {
            inner: Arc::new(Mutex::new(HashMap::new())),
            limit: config.per_ip_connections,
            exempt_loopback: config.exempt_loopback,
            proxies: Proxies::new(config),
        }
    }

    /// Registers a connection from `peer`. Connections from trusted proxies
    /// are not counted (their clients are, per request, by the other limits).
    pub fn open(&self, peer: Option<SocketAddr>) -> Connection {
        let key = peer
            .map(|p| canonical(p.ip()))
            .filter(|ip| !self.proxies.trusts(*ip))
            .map(ClientKey::of)
            .filter(|k| self.limit > 0 && !(self.exempt_loopback && k.is_loopback()));
        let mut over_limit = false;
        if let Some(k) = key
            && let Ok(mut map) = self.inner.lock()
        {
            let n = map.entry(k).or_insert(0);
            *n += 1;
            over_limit = *n > self.limit;
        }
        Connection {
            key,
            over_limit,
            tracker: self.inner.clone(),
        }
    }

    /// Open connections from `peer`'s address.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(&ClientKey::of(peer)).copied())
            .unwrap_or(0)
    }
}

/// Token bucket: `rate` tokens per second, at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32) -> TokenBucket {
        TokenBucket {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes a token if one is available.
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Most client addresses the guest limiter remembers; past it, addresses
/// whose allowance has refilled are forgotten (and if none has, all are).
const MAX_TRACKED: usize = 65_536;

/// Events per client address (new guests: `net.guest_burst` at once, then
/// `net.guests_per_ip_per_hour`; sign-in attempts: `net.login_burst`, then
/// `net.logins_per_ip_per_minute`), in bounded memory.
#[derive(Debug, Clone)]
pub struct AddressLimiter {
    buckets: Arc<Mutex<HashMap<ClientKey, TokenBucket>>>,
    per_hour: u32,
    burst: u32,
    exempt_loopback: bool,
}

impl AddressLimiter {
    /// The new-guest limiter.
    pub fn new(config: &NetConfig) -> AddressLimiter {
        AddressLimiter::with_rate(
            config.guests_per_ip_per_hour,
            config.guest_burst,
            config.exempt_loopback,
        )
    }

    /// The sign-in attempt limiter.
    pub fn logins(config: &NetConfig) -> AddressLimiter {
        AddressLimiter::with_rate(
            config.logins_per_ip_per_minute.saturating_mul(60),
            config.login_burst,
            config.exempt_loopback,
        )
    }

    /// `per_hour` events per address (0: no limit), `burst` at once.
    pub fn with_rate(per_hour: u32, burst: u32, exempt_loopback: bool) -> AddressLimiter {
        AddressLimiter {
            buckets: Arc::new(Mutex::new(HashMap::new())),
            per_hour,
            burst: burst.max(1),
            exempt_loopback,
        }
    }

    /// Whether `client` may do one more now (and counts it).
    pub fn allow(&self, client: Option<ClientKey>) -> bool {
        if self.per_hour == 0 {
            return true;
        }
        let Some(key) = client else { return true };
        if self.exempt_loopback && key.is_loopback() {
            return true;
        }
        let Ok(mut map) = self.buckets.lock() else {
            return false;
        };
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, b| !b.is_full());
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        map.entry(key)
            .or_insert_with(|| TokenBucket::new(f64::from(self.per_hour) / 3600.0, self.burst))
            .take()
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn networks_contain_their_addresses() {
        let n = IpNet::parse("10.1.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert!(n.contains(ip("10.1.200.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")));
        let one = IpNet::parse("192.168.1.7").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6 = IpNet::parse("fd00::/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("nope").is_err());
        assert!(IpNet::parse("0.0.0.0/0").is_ok_and(|n| n.contains(ip("8.8.8.8"))));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let config = NetConfig {
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..NetConfig::default()
        };
        let p = Proxies::new(&config);
        // A direct client cannot choose its address.
        assert_eq!(
            p.client_ip(Some(ip("203.0.113.9")), ["1.2.3.4"].into_iter()),
            Some(ip("203.0.113.9"))
        );
        // Through the proxy: the right-most address that is not a proxy.
        assert_eq!(
            p.client_ip(
                Some(ip("10.0.0.2")),
                ["1.2.3.4, 198.51.100.7, 10.0.0.3"].into_iter()
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            p.client_ip(Some(ip("10.0.0.2")), [].into_iter()),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn connections_are_counted_and_released() {
        let t = ConnectionTracker::new(&NetConfig {
            per_ip_connections: 2,
            ..NetConfig::default()
        });
        let peer = Some(SocketAddr::new(ip("198.51.100.1"), 1000));
        let a = t.open(peer);
        let b = t.open(peer);
        let c = t.open(peer);
        assert!(!a.over_limit && !b.over_limit && c.over_limit);
        assert_eq!(t.open_from(ip("198.51.100.1")), 3);
        drop(c);
        drop(b);
        assert!(!t.open(peer).over_limit);
        drop(a);
        assert_eq!(t.open_from(ip("198.51.100.1")), 0);
    }

    #[test]
    fn guests_are_limited_per_address_and_the_memory_is_bounded() {
        let g = AddressLimiter::new(&NetConfig {
            guests_per_ip_per_hour: 1,
            guest_burst: 3,
            ..NetConfig::default()
        });
        let a = Some(ClientKey::of(ip("198.51.100.1")));
        assert!((0..3).all(|_| g.allow(a)));
        assert!(!g.allow(a));
        assert!(g.allow(Some(ClientKey::of(ip("198.51.100.2")))));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            g.allow(Some(ClientKey::of(IpAddr::V4(std::net::Ipv4Addr::from(i)))));
        }
        assert!(g.tracked() <= MAX_TRACKED);
    }
}
