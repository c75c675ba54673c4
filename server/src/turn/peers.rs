//! Which peer addresses the embedded TURN server relays to.
//!
//! A TURN relay sends UDP wherever its client asks (CreatePermission, ChannelBind), from inside
//! the operator's network. Browsers in a call only ever relay to each other's relayed or public
//! addresses, so by default the relay refuses (403 Forbidden) every address that is not a public
//! unicast address, the way coturn's `no-loopback-peers`, `no-multicast-peers` and
//! `denied-peer-ip` do:
//!
//! - loopback, unspecified, "this network", broadcast and the reserved ranges;
//! - private networks (RFC 1918, fc00::/7), carrier-grade NAT (100.64.0.0/10), link-local
//!   (169.254.0.0/16 — cloud metadata services live there — and fe80::/10), multicast;
//! - documentation, benchmarking and IETF protocol ranges;
//! - IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by that address;
//! - **this host's own addresses**, except the ports its own relays are bound to right now:
//!   that is how two browsers relayed by this server reach each other.
//!
//! The operator may allow ranges (`--turn-allow-peers`) for a private deployment; the host's
//! own addresses stay refused outside the live relay ports even then.

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Decides whether the relay may send to a peer address.
#[derive(Debug)]
pub struct PeerPolicy {
    /// Ranges the operator allows although they are internal.
    allow: Vec<IpNet>,
    /// The addresses of this host (its interfaces and the advertised relay address).
    own: RwLock<HashSet<IpAddr>>,
    /// The ports this server's relays are bound to now.
    relay_ports: Arc<RelayPorts>,
    /// Other ports of this host browsers may reach through the relay: the SFU's media port.
    services: RwLock<HashSet<u16>>,
}

/// The ports of the live relay sockets, kept by the relay sockets themselves.
#[derive(Debug, Default)]
pub struct RelayPorts(Mutex<HashSet<u16>>);

impl RelayPorts {
    /// Records a relay socket bound to `port`.
    pub fn insert(&self, port: u16) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(port);
    }

    /// Forgets the relay socket bound to `port`.
    pub fn remove(&self, port: u16) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&port);
    }

    /// Whether a relay socket is bound to `port` now.
    pub fn contains(&self, port: u16) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(&port)
    }
}

impl PeerPolicy {
    /// A policy allowing `allow` on top of the public internet; `own` are this host's
    /// addresses.
    pub fn new(allow: Vec<IpNet>, own: impl IntoIterator<Item = IpAddr>, relay_ports: Arc<RelayPorts>) -> Self {
        PeerPolicy {
            allow,
            own: RwLock::new(own.into_iter().map(canonical).collect()),
            relay_ports,
            services: RwLock::default(),
        }
    }

    /// Lets relays reach `port` on this host's own addresses (the SFU's media port: a browser
    /// that only uses TURN reaches the SFU through it).
    pub fn allow_own_port(&self, port: u16) {
        self.services.write().unwrap_or_else(PoisonError::into_inner).insert(port);
    }

    /// Replaces the host's own addresses (interfaces come and go).
    pub fn set_own(&self, own: impl IntoIterator<Item = IpAddr>) {
        *self.own.write().unwrap_or_else(PoisonError::into_inner) = own.into_iter().map(canonical).collect();
    }

    /// Whether the relay may send to (and take datagrams from) `peer`.
    pub fn allows(&self, peer: SocketAddr) -> bool {
        let ip = canonical(peer.ip());
        if self.own.read().unwrap_or_else(PoisonError::into_inner).contains(&ip) {
            return self.relay_ports.contains(peer.port())
                || self.services.read().unwrap_or_else(PoisonError::into_inner).contains(&peer.port());
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        !is_internal(ip) && peer.port() != 0
    }
}

/// IPv4 mapped into IPv6 as the IPv4 address itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is anything but a public unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    match s[0] {
        // NAT64 (64:ff9b::/96) carries an IPv4 address; 64:ff9b:1::/48 is for local use.
        0x64 if s[1] == 0xff9b => s[2] == 1 || is_internal_v4(embedded_v4(s[6], s[7])),
        // Discard-only (100::/64).
        0x100 if s[1] == 0 && s[2] == 0 && s[3] == 0 => true,
        // Teredo (2001::/32) tunnels to anywhere; documentation (2001:db8::/32); ORCHID and
        // benchmarking live in 2001:0::/23 as well.
        0x2001 if s[1] < 0x200 || s[1] == 0xdb8 => true,
        // 6to4 (2002::/16) carries an IPv4 address.
        0x2002 => is_internal_v4(embedded_v4(s[1], s[2])),
        // Documentation (3fff::/20).
        0x3fff if s[1] < 0x1000 => true,
        // IPv4-compatible (::/96, deprecated) and the rest of ::/8.
        0 => true,
        first => {
            (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (first & 0xff00) == 0xff00 // multicast
        }
    }
}

/// The addresses of this host's network interfaces (Linux and other Unix systems; empty where
/// they cannot be read).
pub fn host_addresses() -> Vec<IpAddr> {
    #[cfg(unix)]
    {
        let mut found = Vec::new();
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `list` with a linked list that stays valid until
        // freeifaddrs; every node's `ifa_addr` is null or points at a sockaddr of the family
        // it names.
        unsafe {
            if libc::getifaddrs(&mut list) != 0 {
                return found;
            }
            let mut node = list;
            while !node.is_null() {
                let addr = (*node).ifa_addr;
                if !addr.is_null() {
                    match i32::from((*addr).sa_family) {
                        libc::AF_INET => {
                            let sin = &*(addr as *const libc::sockaddr_in);
                            found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
                        }
                        libc::AF_INET6 => {
                            let sin6 = &*(addr as *const libc::sockaddr_in6);
                            found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                        }
                        _ => {}
                    }
                }
                node = (*node).ifa_next;
            }
            libc::freeifaddrs(list);
        }
        found
    }
    #[cfg(not(unix))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_internal() {
        for internal in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::a01:203",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:0a00:0001::1",
            "2002:7f00:0001::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(is_internal(ip(internal)), "{internal} is internal");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
        ] {
            assert!(!is_internal(ip(public)), "{public} is public");
        }
    }

    fn policy(allow: &[&str], own: &[&str], relays: &[u16]) -> PeerPolicy {
        let ports = Arc::new(RelayPorts::default());
        for &p in relays {
            ports.insert(p);
        }
        PeerPolicy::new(allow.iter().map(|n| n.parse().unwrap()).collect(), own.iter().map(|a| ip(a)), ports)
    }

    #[test]
    fn the_hosts_own_addresses_only_at_live_relay_ports() {
        let p = policy(&[], &["127.0.0.1", "203.0.113.5"], &[50_000]);
        assert!(p.allows("127.0.0.1:50000".parse().unwrap()), "another relay of this server");
        assert!(p.allows("[::ffff:127.0.0.1]:50000".parse().unwrap()));
        assert!(!p.allows("127.0.0.1:50001".parse().unwrap()), "no relay there");
        assert!(!p.allows("127.0.0.1:3000".parse().unwrap()), "the signaling port");
        assert!(p.allows("203.0.113.5:50000".parse().unwrap()), "own public address, relay port");
        assert!(!p.allows("203.0.113.5:22".parse().unwrap()), "own public address, any other port");
        assert!(!p.allows("127.0.0.2:50000".parse().unwrap()), "loopback but not this host's address");
        assert!(p.allows("8.8.8.8:53".parse().unwrap()));
        assert!(!p.allows("8.8.8.8:0".parse().unwrap()), "port zero");
    }

    #[test]
    fn the_sfu_port_on_the_hosts_own_addresses_is_allowed_once_named() {
        let p = policy(&[], &["127.0.0.1", "203.0.113.5"], &[]);
        assert!(!p.allows("127.0.0.1:40000".parse().unwrap()));
        p.allow_own_port(40_000);
        assert!(p.allows("127.0.0.1:40000".parse().unwrap()), "the SFU on loopback");
        assert!(p.allows("203.0.113.5:40000".parse().unwrap()), "the SFU at the public address");
        assert!(!p.allows("127.0.0.1:40001".parse().unwrap()), "any other port stays refused");
        assert!(!p.allows("127.0.0.2:40000".parse().unwrap()), "not this host's address");
    }

    #[test]
    fn allowed_ranges_open_internal_peers_but_never_the_hosts_other_ports() {
        let p = policy(&["10.0.0.0/8", "fd00::/8"], &["10.0.0.5"], &[]);
        assert!(p.allows("10.1.2.3:4000".parse().unwrap()));
        assert!(p.allows("[fd00::7]:4000".parse().unwrap()));
        assert!(!p.allows("10.0.0.5:4000".parse().unwrap()), "the host itself stays refused");
        assert!(!p.allows("192.168.0.1:4000".parse().unwrap()));
        p.set_own([ip("10.0.0.6")]);
        assert!(p.allows("10.0.0.5:4000".parse().unwrap()));
        assert!(!p.allows("10.0.0.6:4000".parse().unwrap()));
    }

    #[test]
    fn interfaces_include_loopback() {
        assert!(host_addresses().contains(&ip("127.0.0.1")));
    }
}
