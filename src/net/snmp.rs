//! The kernel's host-wide UDP counters, the `Udp:` lines of `/proc/net/snmp`.
//! Pure parsing, tested on captured text; reading degrades to `None`.

/// Parses the `Udp:` header and value lines into (name, value) pairs, in order.
pub fn parse_udp(text: &str) -> Vec<(String, u64)> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| Some((n.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The host's UDP counters now; `None` without `/proc/net/snmp`.
pub fn read_udp() -> Option<Vec<(String, u64)>> {
    let counters = parse_udp(&std::fs::read_to_string("/proc/net/snmp").ok()?);
    (!counters.is_empty()).then_some(counters)
}

/// One counter by name.
pub fn get(counters: &[(String, u64)], name: &str) -> Option<u64> {
    counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 348568024 292783 849058 263524512 849058 0 0 0 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";

    #[test]
    fn parses_the_udp_lines_only() {
        let c = parse_udp(SNMP);
        assert_eq!(c.len(), 9);
        assert_eq!(get(&c, "InDatagrams"), Some(348568024));
        assert_eq!(get(&c, "RcvbufErrors"), Some(849058));
        assert_eq!(get(&c, "MemErrors"), Some(0));
        assert_eq!(get(&c, "Forwarding"), None);
        assert!(parse_udp("Ip: a\nIp: 1\n").is_empty());
    }
}
