//! Client addresses as the per-address limits and the logs see them.
//!
//! One host on IPv6 usually holds a whole /64 (privacy addresses rotate inside it), so every
//! per-address limit counts an IPv6 client by its /64 prefix; IPv4 addresses (and IPv4 mapped
//! into IPv6) count one by one.
//!
//! Behind a reverse proxy every connection comes from the proxy. [`TrustedProxies`] names the
//! proxies whose `X-Forwarded-For` or `Forwarded` (RFC 7239) headers are believed; the client is
//! the rightmost address in them that is not a trusted proxy. Without trusted proxies, and for
//! connections from anywhere else, the headers are ignored: anyone can write them.

use axum::http::header::{HeaderMap, FORWARDED};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The key every per-address limit counts `ip` under: IPv4 as is, IPv6 by its /64 prefix.
pub fn ip_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// A block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(u32::from(ip).into(), 32, self.prefix) == u32::from(net).into(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), 128, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` with only the first `prefix` of its `width` bits kept.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - u32::from(width)))
    }
}

/// Why a `--trusted-proxies` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an address or ADDRESS/PREFIX (e.g. 10.0.0.0/8, fd00::/8), got `{0}`")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (s.trim(), None),
        };
        let ip = IpAddr::from_str(ip).map_err(|_| bad())?.to_canonical();
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
        };
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4((masked(u32::from(v4).into(), 32, prefix) as u32).into()),
            IpAddr::V6(v6) => IpAddr::V6(masked(u128::from(v6), 128, prefix).into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The reverse proxies whose forwarding headers are believed (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts the proxies in `blocks`.
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies(blocks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client a request from `peer` with `headers` comes from: `peer` itself unless it is a
    /// trusted proxy; then the rightmost address of `X-Forwarded-For` (or, without one, of
    /// `Forwarded`'s `for=`) that is not a trusted proxy — each proxy appends the address it
    /// saw, so addresses to the left of the last untrusted one may be forged. A hop that names
    /// no address (`unknown`, an obfuscated name) ends the walk at the proxy that wrote it.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded_for(headers);
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(client) => client = ip.to_canonical(),
                _ => break,
            }
        }
        client
    }
}

/// The addresses the forwarding headers name, first hop first: `X-Forwarded-For` if the request
/// has one (the header common proxies write; they pass a client's `Forwarded` through untouched),
/// else the `for=` of each `Forwarded` element. `None` for a hop that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let xff: Vec<Option<IpAddr>> = values("x-forwarded-for").flat_map(|v| v.split(',')).map(node_ip).collect();
    if !xff.is_empty() {
        return xff;
    }
    values(FORWARDED.as_str())
        .flat_map(split_unquoted(','))
        .filter_map(|element| {
            split_unquoted(';')(element).into_iter().find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| node_ip(value))
            })
        })
        .collect()
}

/// Splits on `sep` outside double quotes (RFC 7239 values may be quoted strings).
fn split_unquoted(sep: char) -> impl Fn(&str) -> Vec<&str> {
    move |s: &str| {
        let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
        for (i, c) in s.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    parts.push(&s[start..i]);
                    start = i + c.len_utf8();
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
}

/// The address of one hop: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// possibly quoted; `None` for `unknown`, obfuscated names (`_hidden`) and anything else.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"').trim();
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip);
    }
    if let Ok(addr) = SocketAddr::from_str(node) {
        return Some(addr.ip());
    }
    let bracketed = node.strip_prefix('[')?;
    let (ip, rest) = bracketed.split_once(']')?;
    (rest.is_empty() || rest.starts_with(':')).then(|| ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "example.org", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2")]);
        assert_eq!(TrustedProxies::default().client_ip(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
        let others = proxies(&["10.0.0.0/8"]);
        assert_eq!(others.client_ip(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_of_x_forwarded_for_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.0.0.2")]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        // Split over several header lines, and ports and brackets as some proxies write them.
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "[2001:db8::7]:4711 , 10.0.0.2:80")]);
        assert_eq!(trusted.client_ip(ip("fd00::1"), &h), ip("2001:db8::7"));
        // Every hop a trusted proxy: the leftmost is the client.
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // No header: the proxy itself.
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // A hop that is not an address stops the walk at the proxy that wrote it.
        let h = headers(&[("x-forwarded-for", "203.0.113.5, unknown, 10.0.0.2")]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // A mapped peer address is the IPv4 one.
        let h = headers(&[("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(trusted.client_ip(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn forwarded_for_is_read_as_rfc_7239_writes_it() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";proto=https"#,
        )]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=192.0.2.43, for=10.0.0.9"), ("forwarded", "proto=https;for=10.0.0.8")]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("192.0.2.43"));
        let h = headers(&[("forwarded", r#"for="_gazonk""#)]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // X-Forwarded-For wins: common proxies write it and pass a client's Forwarded through.
        let h = headers(&[("forwarded", "for=198.51.100.66"), ("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn ipv4_counts_alone() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(ip_group(ip), ip);
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_group(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(ip_group(a), ip_group(b));
        assert_ne!(ip_group(a), ip_group(other));
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let mapped: IpAddr = "::ffff:198.51.100.9".parse().unwrap();
        assert_eq!(ip_group(mapped), "198.51.100.9".parse::<IpAddr>().unwrap());
    }
}
