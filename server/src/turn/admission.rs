//! What the TURN port asks of a datagram before it costs anything: a request rate per source
//! (a bounded table of token buckets) and nonces that need no table (stateless, bound to the
//! client's address, expiring).

use super::guard::RequestRate;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most sources the request limiter tracks apart; more share one bucket.
pub(super) const MAX_SOURCES: usize = 65_536;

/// Nonces that need no table: `<expiry as hex>.<HMAC(expiry, client address)>`, under a key
/// made at start.
pub(super) struct NonceMint {
    key: [u8; 32],
    lifetime: Duration,
}

impl NonceMint {
    pub(super) fn new(lifetime: Duration) -> Self {
        NonceMint { key: rand::random(), lifetime }
    }

    fn mac(&self, expiry: u64, ip: IpAddr) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(&expiry.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        mac.finalize().into_bytes().into()
    }

    /// A nonce for `ip`, valid for the lifetime from `now` (Unix seconds).
    pub(super) fn issue(&self, ip: IpAddr, now: u64) -> String {
        let expiry = now + self.lifetime.as_secs();
        let mac = self.mac(expiry, ip);
        let mut nonce = format!("{expiry:x}.");
        for byte in &mac[..12] {
            nonce.push_str(&format!("{byte:02x}"));
        }
        nonce
    }

    /// Whether `nonce` was issued by us to `ip` and has not expired at `now`.
    pub(super) fn valid(&self, nonce: &str, ip: IpAddr, now: u64) -> bool {
        let Some((expiry, mac)) = nonce.split_once('.') else { return false };
        let Ok(expiry) = u64::from_str_radix(expiry, 16) else { return false };
        if expiry < now || mac.len() != 24 {
            return false;
        }
        let expected = self.mac(expiry, ip);
        let given: Option<Vec<u8>> =
            (0..12).map(|i| mac.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
        given.is_some_and(|given| subtle::ConstantTimeEq::ct_eq(&given[..], &expected[..12]).into())
    }
}

/// A token bucket of requests per source.
pub(super) struct SourceLimiter {
    rate: RequestRate,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    /// Shared by the sources beyond [`MAX_SOURCES`].
    overflow: (f64, Instant),
}

impl SourceLimiter {
    pub(super) fn new(rate: RequestRate) -> Self {
        SourceLimiter { rate, buckets: HashMap::new(), overflow: (rate.burst, Instant::now()) }
    }

    pub(super) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let rate = self.rate;
        let room = self.buckets.len() < MAX_SOURCES;
        let bucket = if room || self.buckets.contains_key(&source) {
            self.buckets.entry(source).or_insert((rate.burst, now))
        } else {
            &mut self.overflow
        };
        let (tokens, at) = bucket;
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate.per_second).min(rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets sources whose bucket has filled up again.
    pub(super) fn sweep(&mut self, now: Instant) {
        let rate = self.rate;
        self.buckets.retain(|_, (tokens, at)| {
            *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate.per_second < rate.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_bound_to_the_address_and_expire() {
        let mint = NonceMint::new(Duration::from_secs(600));
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let nonce = mint.issue(ip, 1_000);
        assert!(mint.valid(&nonce, ip, 1_000));
        assert!(mint.valid(&nonce, ip, 1_600));
        assert!(!mint.valid(&nonce, ip, 1_601), "expired");
        assert!(!mint.valid(&nonce, "198.51.100.2".parse().unwrap(), 1_000), "another address");
        let other = NonceMint::new(Duration::from_secs(600));
        assert!(!other.valid(&nonce, ip, 1_000), "another process's key");
        let (expiry, mac) = nonce.split_once('.').unwrap();
        let later = format!("{:x}.{mac}", u64::from_str_radix(expiry, 16).unwrap() + 3600);
        assert!(!mint.valid(&later, ip, 1_000), "a forged expiry");
        for junk in ["", ".", "zz.00", "3e8.", "3e8.0011", &format!("{expiry}.{}", "g".repeat(24))] {
            assert!(!mint.valid(junk, ip, 1_000), "{junk:?}");
        }
    }

    #[test]
    fn each_source_has_its_own_bucket() {
        let rate = RequestRate { burst: 3.0, per_second: 1.0 };
        let mut limiter = SourceLimiter::new(rate);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        assert!((0..3).all(|_| limiter.allow(a, now)));
        assert!(!limiter.allow(a, now));
        assert!(limiter.allow(b, now), "another source is not held back");
        assert!(limiter.allow(a, now + Duration::from_secs(1)), "one more after a second");
        limiter.sweep(now + Duration::from_secs(10));
        assert!(limiter.buckets.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn sources_beyond_the_table_share_one_bucket() {
        let rate = RequestRate { burst: 2.0, per_second: 0.0 };
        let mut limiter = SourceLimiter::new(rate);
        let now = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            limiter.buckets.insert(IpAddr::from(i.to_be_bytes()), (rate.burst, now));
        }
        let (x, y): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        assert!(limiter.allow(x, now));
        assert!(limiter.allow(y, now));
        assert!(!limiter.allow(x, now), "the overflow bucket is shared");
        assert_eq!(limiter.buckets.len(), MAX_SOURCES);
    }
}
