//! Client addresses as the per-address limits see them.
//!
//! One host on IPv6 usually holds a whole /64 (privacy addresses rotate inside it), so every
//! per-address limit counts an IPv6 client by its /64 prefix; IPv4 addresses (and IPv4 mapped
//! into IPv6) count one by one.

use std::net::{IpAddr, Ipv6Addr};

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

#[cfg(test)]
mod tests {
    use super::*;

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
