//! IP networks (`--allow`, the server's own addresses) and the IPv4-mapped
//! IPv6 rule: shared by the server's guard and `net::local_addrs`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is
/// a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network's address and prefix length.
    pub fn parts(&self) -> (IpAddr, u8) {
        (self.network, self.prefix)
    }

    /// Whether `ip` (already unmapped) is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let invalid = || {
            format!(
                "invalid network '{text}': expected ADDRESS/PREFIX such as 192.0.2.0/24, 127.0.0.2/32 or 2001:db8::/32"
            )
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network = addr.parse::<IpAddr>().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
            None => max,
        };
        // Sources are unmapped before matching, so a mapped network (at least
        // the whole ::ffff:0:0/96 prefix) becomes the IPv4 network it covers.
        match unmap(network) {
            IpAddr::V4(v4) if network.is_ipv6() && prefix >= 96 => Ok(Cidr {
                network: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Ok(Cidr { network, prefix }),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; any other address unchanged.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a `--allow` value (clap value parser).
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_refuse_junk() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.2".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.2/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            "::/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        for junk in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host/8",
            "",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            let err = junk.parse::<Cidr>().unwrap_err();
            assert!(err.contains("expected ADDRESS/PREFIX"), "{junk}: {err}");
        }
    }
}
