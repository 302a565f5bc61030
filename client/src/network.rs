//! Which network an address sits in: an IPv4 /24 or an IPv6 /48, where one operator's or
//! one datacenter's machines usually share one. Storage providers budget reads per network
//! (`cairn_storage::throttle`), and placement spreads a blob's shards over networks
//! (`store::place`), so one grouping serves both.

use std::net::IpAddr;

/// An address's network (IPv4-mapped IPv6 addresses count as IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network([u8; 7]);

impl Network {
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self([4, a, b, c, 0, 0, 0])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Self([6, o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [family, o0, o1, o2, o3, o4, o5] = self.0;
        if family == 4 {
            write!(f, "{o0}.{o1}.{o2}.0/24")
        } else {
            let segment = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
            write!(
                f,
                "{:x}:{:x}:{:x}::/48",
                segment(o0, o1),
                segment(o2, o3),
                segment(o4, o5)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_share_a_network_and_mapped_addresses_are_ipv4() {
        use std::net::{IpAddr, Ipv6Addr};
        let a = Network::of(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(a, Network::of(IpAddr::from([192, 0, 2, 200])));
        assert_ne!(a, Network::of(IpAddr::from([192, 0, 3, 1])));
        assert_eq!(
            a,
            Network::of(IpAddr::V6(
                std::net::Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped()
            ))
        );
        let v6: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let same48: Ipv6Addr = "2001:db8:1:ffff::2".parse().unwrap();
        let other48: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(Network::of(v6.into()), Network::of(same48.into()));
        assert_ne!(Network::of(v6.into()), Network::of(other48.into()));
    }

    #[test]
    fn networks_print_as_prefixes() {
        assert_eq!(
            Network::of(IpAddr::from([10, 1, 2, 3])).to_string(),
            "10.1.2.0/24"
        );
        let v6: std::net::Ipv6Addr = "2001:db8:5:6::1".parse().unwrap();
        assert_eq!(Network::of(v6.into()).to_string(), "2001:db8:5::/48");
    }
}
