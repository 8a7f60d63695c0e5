//! The Location TLV (RFC 8972 §4.2, type 2): the addresses and ports of the
//! test packet as the reflector received it, so that the sender sees what a
//! NAT or a load balancer on the way rewrote.
//!
//! ```text
//! |       Destination Port        |          Source Port          |
//! |                           Sub-TLVs ...                        |
//! ```
//!
//! The sender sends the ports zero and, in sub-TLVs (each with the usual
//! flags, type, 16-bit length header), asks for what it wants to know; the
//! reflector answers each in place, in the same length (RFC 8972 §4.2.2):
//!
//! | asked (sender) | length | answered (reflector) |
//! |---|---|---|
//! | Source MAC (1) | 8 | Source EUI-64 (3), zero: a UDP socket never sees the link layer (§4.2.2: "MUST zero the EUI-64 field") |
//! | Destination IP (4) | 16 | Destination IPv4 (5): address + 12 zero bytes, or Destination IPv6 (6) |
//! | Source IP (7) | 16 | Source IPv4 (8), or Source IPv6 (9) |
//! | anything else | any | flagged U, left as it came |
//!
//! A sub-TLV of a known type with another length, or one running past the
//! Location TLV, is flagged M and the walk of the sub-TLVs stops (RFC 8972
//! §4.2.1: sub-TLV flags as in §4). An IPv4 sender of a dual-stack socket
//! (`::ffff:a.b.c.d`) is reported as IPv4: that is what was on the wire.
//!
//! The destination address is the kernel's (`IP_PKTINFO`, asked for by the
//! batched and GRO loops of a wildcard-bound socket), else the socket's own
//! when it is bound to one; a wildcard-bound socket that was not told (the
//! plain loop, the portable build) flags a Destination IP request U and
//! leaves it zero rather than answer wrongly.
//!
//! What may be disclosed is the operator's choice ([`Disclosure`], RFC 8972
//! §4.2.2: "MAY leave some fields unreported by filling them with zeroes"):
//! a withheld port is zero, a withheld address sub-TLV keeps its generic
//! request type with a zero value (an IPv4 or IPv6 answer type would give
//! the address family away), flags clear.

use std::net::{IpAddr, SocketAddr};

use super::tlv::{TLV_HEADER_LEN, tlv_flags};

/// The Location TLV's type (RFC 8972 §4.2).
pub const TLV_LOCATION: u8 = 2;

/// The shortest Location TLV value: the two ports.
pub const LOCATION_MIN_VALUE_LEN: usize = 4;

/// The length of [`request_tlv`]'s TLV: header, ports, and the Source MAC
/// (4 + 8), Destination IP and Source IP (4 + 16 each) requests.
pub const LOCATION_REQUEST_LEN: usize = 60;

/// Location sub-TLV types (RFC 8972 §4.2.1, Table 5).
pub mod sub_type {
    /// Source MAC Address (sender's request, 8 bytes MBZ).
    pub const SOURCE_MAC: u8 = 1;
    /// Source EUI-48 Address (reflector's answer).
    pub const SOURCE_EUI48: u8 = 2;
    /// Source EUI-64 Address (reflector's answer).
    pub const SOURCE_EUI64: u8 = 3;
    /// Destination IP Address (sender's request, 16 bytes MBZ).
    pub const DESTINATION_IP: u8 = 4;
    /// Destination IPv4 Address (reflector's answer).
    pub const DESTINATION_IPV4: u8 = 5;
    /// Destination IPv6 Address (reflector's answer).
    pub const DESTINATION_IPV6: u8 = 6;
    /// Source IP Address (sender's request, 16 bytes MBZ).
    pub const SOURCE_IP: u8 = 7;
    /// Source IPv4 Address (reflector's answer).
    pub const SOURCE_IPV4: u8 = 8;
    /// Source IPv6 Address (reflector's answer).
    pub const SOURCE_IPV6: u8 = 9;
}

/// Which fields of the Location TLV the reflector reveals
/// (`--stamp-location`); by default all it can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure {
    /// The sender's address as received (Source IP).
    pub source_ip: bool,
    /// The sender's UDP port as received.
    pub source_port: bool,
    /// The address the request was sent to (Destination IP).
    pub destination_ip: bool,
    /// The UDP port the request was sent to.
    pub destination_port: bool,
}

impl Default for Disclosure {
    fn default() -> Disclosure {
        Disclosure::ALL
    }
}

impl Disclosure {
    /// Everything the reflector can see.
    pub const ALL: Disclosure = Disclosure {
        source_ip: true,
        source_port: true,
        destination_ip: true,
        destination_port: true,
    };

    /// Nothing: every field zero (the TLV is still answered, U clear).
    pub const NONE: Disclosure = Disclosure {
        source_ip: false,
        source_port: false,
        destination_ip: false,
        destination_port: false,
    };

    /// Parses `all`, `none` or a comma-separated list of `src-ip`,
    /// `src-port`, `dst-ip`, `dst-port`, `ips`, `ports`.
    pub fn parse(text: &str) -> Result<Disclosure, String> {
        let mut d = Disclosure::NONE;
        for word in text.split(',').map(str::trim) {
            match word {
                "all" => d = Disclosure::ALL,
                "none" => {}
                "src-ip" => d.source_ip = true,
                "src-port" => d.source_port = true,
                "dst-ip" => d.destination_ip = true,
                "dst-port" => d.destination_port = true,
                "ips" => (d.source_ip, d.destination_ip) = (true, true),
                "ports" => (d.source_port, d.destination_port) = (true, true),
                other => {
                    return Err(format!(
                        "'{other}' is not a Location field (all, none, src-ip, src-port, dst-ip, dst-port, ips, ports)"
                    ));
                }
            }
        }
        Ok(d)
    }
}

/// What the reflector saw of a request, for its Location TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The request's source address and port.
    pub source: SocketAddr,
    /// The socket's own address: the request's destination port, and its
    /// destination address unless unspecified (a wildcard bind).
    pub local: SocketAddr,
    /// What may be revealed.
    pub disclose: Disclosure,
}

/// An address as it was on the wire: an IPv4-mapped IPv6 one is IPv4.
fn on_the_wire(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The reflector's answer to a Location TLV whose value (ports and
/// sub-TLVs, at least [`LOCATION_MIN_VALUE_LEN`] bytes) is `value`,
/// rewritten in place; returns the TLV's flags: 0, or U without `seen` (the
/// reflector was not told where the request came from and went to).
pub fn reflect(value: &mut [u8], seen: Option<&Seen>) -> u8 {
    let Some(seen) = seen else {
        return tlv_flags::U;
    };
    if value.len() < LOCATION_MIN_VALUE_LEN {
        return tlv_flags::M;
    }
    let d = seen.disclose;
    let port = |show: bool, port: u16| if show { port } else { 0 }.to_be_bytes();
    value[..2].copy_from_slice(&port(d.destination_port, seen.local.port()));
    value[2..4].copy_from_slice(&port(d.source_port, seen.source.port()));
    let subs = &mut value[LOCATION_MIN_VALUE_LEN..];
    let mut at = 0;
    while subs.len() - at >= TLV_HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([subs[at + 2], subs[at + 3]]));
        let end = at + TLV_HEADER_LEN + len;
        if end > subs.len() {
            subs[at] = tlv_flags::M;
            break;
        }
        if !answer_sub_tlv(&mut subs[at..end], seen) {
            break;
        }
        at = end;
    }
    0
}

/// Answers one sub-TLV (`sub`: its header and value) in place; false when
/// it is malformed (flagged M: the walk stops).
fn answer_sub_tlv(sub: &mut [u8], seen: &Seen) -> bool {
    let kind = sub[1];
    let len = sub.len() - TLV_HEADER_LEN;
    let expected = match kind {
        sub_type::SOURCE_MAC..=sub_type::SOURCE_EUI64 => Some(8),
        sub_type::DESTINATION_IP..=sub_type::SOURCE_IPV6 => Some(16),
        _ => None,
    };
    if expected.is_some_and(|e| e != len) {
        sub[0] = tlv_flags::M;
        return false;
    }
    let d = seen.disclose;
    let (flags, answer) = match kind {
        sub_type::SOURCE_MAC => {
            // No link layer under a UDP socket: EUI-64, zero (§4.2.2).
            sub[TLV_HEADER_LEN..].fill(0);
            (0, sub_type::SOURCE_EUI64)
        }
        sub_type::SOURCE_IP if !d.source_ip => withhold(sub),
        sub_type::SOURCE_IP => {
            let ip = on_the_wire(seen.source.ip());
            (
                0,
                write_ip(sub, ip, sub_type::SOURCE_IPV4, sub_type::SOURCE_IPV6),
            )
        }
        sub_type::DESTINATION_IP if !d.destination_ip => withhold(sub),
        sub_type::DESTINATION_IP if seen.local.ip().is_unspecified() => {
            // A wildcard bind does not know the destination: not answered.
            (tlv_flags::U, kind)
        }
        sub_type::DESTINATION_IP => {
            let ip = on_the_wire(seen.local.ip());
            let answer = write_ip(
                sub,
                ip,
                sub_type::DESTINATION_IPV4,
                sub_type::DESTINATION_IPV6,
            );
            (0, answer)
        }
        _ => (tlv_flags::U, kind),
    };
    sub[0] = flags;
    sub[1] = answer;
    true
}

/// A withheld field: the value zeroed, the generic type kept.
fn withhold(sub: &mut [u8]) -> (u8, u8) {
    sub[TLV_HEADER_LEN..].fill(0);
    (0, sub[1])
}

/// Writes `ip` into a 16-byte sub-TLV value (IPv4: 4 bytes, then 12 zero)
/// and returns the answer type for its family.
fn write_ip(sub: &mut [u8], ip: IpAddr, v4: u8, v6: u8) -> u8 {
    let value = &mut sub[TLV_HEADER_LEN..];
    match ip {
        IpAddr::V4(a) => {
            value.fill(0);
            value[..4].copy_from_slice(&a.octets());
            v4
        }
        IpAddr::V6(a) => {
            value.copy_from_slice(&a.octets());
            v6
        }
    }
}

/// What a reflector's Location TLV says (the sender's reading): the ports
/// and the addresses it reported; an address withheld, not answered or not
/// asked for is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answer {
    /// The port the request was sent to, as the reflector saw it.
    pub destination_port: u16,
    /// The port it came from, as the reflector saw it (a NAT's).
    pub source_port: u16,
    /// The address it was sent to.
    pub destination_ip: Option<IpAddr>,
    /// The address it came from (a NAT's public one).
    pub source_ip: Option<IpAddr>,
}

/// Reads a reflector's Location TLV value (ports and answered sub-TLVs);
/// `None` when it is shorter than the ports. Sub-TLVs that are flagged,
/// of an unexpected length or past the end are skipped or end the walk:
/// never a panic, whatever the bytes.
pub fn read_answer(value: &[u8]) -> Option<Answer> {
    let ports = value.get(..LOCATION_MIN_VALUE_LEN)?;
    let mut answer = Answer {
        destination_port: u16::from_be_bytes([ports[0], ports[1]]),
        source_port: u16::from_be_bytes([ports[2], ports[3]]),
        ..Answer::default()
    };
    let subs = &value[LOCATION_MIN_VALUE_LEN..];
    let mut at = 0;
    while let Some(header) = subs.get(at..at + TLV_HEADER_LEN) {
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let Some(v) = subs.get(at + TLV_HEADER_LEN..at + TLV_HEADER_LEN + len) else {
            break;
        };
        if header[0] & (tlv_flags::U | tlv_flags::M | tlv_flags::I) == 0 && len == 16 {
            let v4 = || IpAddr::from([v[0], v[1], v[2], v[3]]);
            let v6 = || {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(v);
                IpAddr::from(octets)
            };
            match header[1] {
                sub_type::SOURCE_IPV4 => answer.source_ip = Some(v4()),
                sub_type::SOURCE_IPV6 => answer.source_ip = Some(v6()),
                sub_type::DESTINATION_IPV4 => answer.destination_ip = Some(v4()),
                sub_type::DESTINATION_IPV6 => answer.destination_ip = Some(v6()),
                _ => {}
            }
        }
        at += TLV_HEADER_LEN + len;
    }
    Some(answer)
}

/// A Location TLV as a sender asks for it (RFC 8972 §4.2.2: only flags,
/// type and length filled in): U set, ports zero, and zeroed Source MAC,
/// Destination IP and Source IP requests: 60 bytes.
pub fn request_tlv() -> [u8; LOCATION_REQUEST_LEN] {
    let mut tlv = [0u8; LOCATION_REQUEST_LEN];
    tlv[..4].copy_from_slice(&super::tlv::sender_header(
        TLV_LOCATION,
        LOCATION_REQUEST_LEN - TLV_HEADER_LEN,
    ));
    let mut at = 8;
    for (kind, len) in [
        (sub_type::SOURCE_MAC, 8),
        (sub_type::DESTINATION_IP, 16),
        (sub_type::SOURCE_IP, 16),
    ] {
        tlv[at..at + 4].copy_from_slice(&super::tlv::sender_header(kind, len));
        at += 4 + len;
    }
    tlv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(source: &str, local: &str) -> Seen {
        Seen {
            source: source.parse().unwrap(),
            local: local.parse().unwrap(),
            disclose: Disclosure::ALL,
        }
    }

    /// RFC 8972 §4.2, Figures 4 and 5: flags, type 2, length; destination
    /// port, source port; then sub-TLVs with 4-byte headers — Source MAC
    /// (1, length 8), Destination IP (4, length 16), Source IP (7, length 16).
    #[test]
    fn the_request_layout_is_the_rfcs() {
        let tlv = request_tlv();
        assert_eq!(tlv[..8], [0x80, 2, 0, 56, 0, 0, 0, 0]);
        assert_eq!(tlv[8..12], [0x80, 1, 0, 8]);
        assert_eq!(tlv[20..24], [0x80, 4, 0, 16]);
        assert_eq!(tlv[40..44], [0x80, 7, 0, 16]);
        assert!(
            tlv[12..20]
                .iter()
                .chain(&tlv[24..40])
                .chain(&tlv[44..])
                .all(|&b| b == 0)
        );
    }

    #[test]
    fn ipv4_answers_are_eui64_zero_and_ipv4_addresses_with_12_zero_bytes() {
        let mut tlv = request_tlv();
        let flags = reflect(
            &mut tlv[4..],
            Some(&seen("198.51.100.7:40000", "192.0.2.1:862")),
        );
        assert_eq!(flags, 0);
        assert_eq!(tlv[4..8], [0x03, 0x5e, 0x9c, 0x40], "ports 862, 40000");
        assert_eq!(
            tlv[8..20],
            [0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
            "EUI-64, zero"
        );
        let mut dst = [0u8; 20];
        dst[..8].copy_from_slice(&[0, 5, 0, 16, 192, 0, 2, 1]);
        assert_eq!(tlv[20..40], dst, "Destination IPv4");
        let mut src = [0u8; 20];
        src[..8].copy_from_slice(&[0, 8, 0, 16, 198, 51, 100, 7]);
        assert_eq!(tlv[40..60], src, "Source IPv4");
        assert_eq!(tlv.len(), 60, "the same length");
    }

    #[test]
    fn ipv6_and_ipv4_mapped_sources_are_reported_as_on_the_wire() {
        let mut tlv = request_tlv();
        reflect(
            &mut tlv[4..],
            Some(&seen("[2001:db8::7]:5000", "[2001:db8::1]:8620")),
        );
        assert_eq!(tlv[20..24], [0, 6, 0, 16]);
        assert_eq!(
            tlv[24..40],
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(tlv[40..44], [0, 9, 0, 16]);
        let mut tlv = request_tlv();
        reflect(
            &mut tlv[4..],
            Some(&seen(
                "[::ffff:198.51.100.7]:5000",
                "[::ffff:192.0.2.1]:862",
            )),
        );
        assert_eq!(
            tlv[40..48],
            [0, 8, 0, 16, 198, 51, 100, 7],
            "IPv4, not mapped"
        );
        assert_eq!(tlv[20..28], [0, 5, 0, 16, 192, 0, 2, 1]);
    }

    #[test]
    fn a_wildcard_bind_leaves_the_destination_unanswered_and_withheld_fields_are_zero() {
        let mut tlv = request_tlv();
        reflect(
            &mut tlv[4..],
            Some(&seen("198.51.100.7:40000", "0.0.0.0:862")),
        );
        assert_eq!(tlv[20..24], [0x80, 4, 0, 16], "U, the generic type");
        assert!(tlv[24..40].iter().all(|&b| b == 0));
        let mut tlv = request_tlv();
        let mut s = seen("198.51.100.7:40000", "192.0.2.1:862");
        s.disclose = Disclosure::parse("dst-port").unwrap();
        reflect(&mut tlv[4..], Some(&s));
        assert_eq!(tlv[4..8], [0x03, 0x5e, 0, 0], "only the destination port");
        assert_eq!(
            tlv[20..24],
            [0, 4, 0, 16],
            "withheld: generic type, U clear"
        );
        assert_eq!(tlv[40..44], [0, 7, 0, 16]);
        assert!(tlv[24..40].iter().chain(&tlv[44..]).all(|&b| b == 0));
        assert_eq!(Disclosure::parse("ips,ports").unwrap(), Disclosure::ALL);
        assert_eq!(Disclosure::parse("none").unwrap(), Disclosure::NONE);
        assert!(Disclosure::parse("mac").unwrap_err().contains("'mac'"));
    }

    #[test]
    fn bad_sub_tlvs_are_flagged_m_and_stop_the_walk_unknown_ones_u() {
        let s = seen("198.51.100.7:40000", "192.0.2.1:862");
        // Source IP with length 8: M, and the Destination IP after it untouched.
        let mut value = vec![0, 0, 0, 0, 0x80, 7, 0, 8];
        value.extend([0; 8]);
        value.extend([0x80, 4, 0, 16]);
        value.extend([0; 16]);
        let before = value.clone();
        reflect(&mut value, Some(&s));
        assert_eq!(value[4], tlv_flags::M);
        assert_eq!(value[16..], before[16..], "the rest as it came");
        // An unknown sub-type: U, and the walk goes on.
        let mut value = vec![0, 0, 0, 0, 0x80, 99, 0, 2, 1, 2, 0x80, 7, 0, 16];
        value.extend([0; 16]);
        reflect(&mut value, Some(&s));
        assert_eq!(value[4..10], [0x80, 99, 0, 2, 1, 2]);
        assert_eq!(value[10..14], [0, 8, 0, 16]);
        // A sub-TLV running past the end: M.
        let mut value = vec![0, 0, 0, 0, 0x80, 7, 0, 16, 1, 2];
        reflect(&mut value, Some(&s));
        assert_eq!(value[4], tlv_flags::M);
        // A tail shorter than a header is left alone; no `seen`: U.
        let mut value = vec![0, 0, 0, 0, 0x80, 7];
        assert_eq!(reflect(&mut value, Some(&s)), 0);
        assert_eq!(value[4..], [0x80, 7]);
        assert_eq!(reflect(&mut value, None), tlv_flags::U);
    }

    #[test]
    fn the_reflector_answers_location_in_place_when_it_knows_its_address() {
        use crate::stamp::{Mode, Reflector, ReflectorConfig, SenderPacket};
        use std::time::SystemTime;
        let mut req = vec![0u8; Mode::Open.base_len()];
        SenderPacket {
            seq: 1,
            timestamp: 0,
            error_estimate: 0,
            ssid: 3,
        }
        .encode(Mode::Open, &mut req);
        req.extend_from_slice(&request_tlv());
        let source: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let answer = |r: &mut Reflector| {
            let mut out = vec![0u8; req.len()];
            let len = r
                .reflect(&req, source, SystemTime::now(), 0, 64, &mut out)
                .unwrap();
            assert_eq!(len, req.len());
            out
        };
        let mut bound =
            Reflector::new(ReflectorConfig::default()).with_local("192.0.2.1:862".parse().unwrap());
        let out = answer(&mut bound);
        assert_eq!(out[44..52], [0, 2, 0, 56, 0x03, 0x5e, 0x9c, 0x40]);
        assert_eq!(out[84..92], [0, 8, 0, 16, 198, 51, 100, 7]);
        let mut unbound = Reflector::new(ReflectorConfig::default());
        assert_eq!(
            answer(&mut unbound)[44],
            tlv_flags::U,
            "no address known: U"
        );
    }

    proptest::proptest! {
        /// Any bytes as a Location value, under any policy and address:
        /// no panic, and nothing but flags, types and values rewritten in
        /// place (the length never changes).
        #[test]
        fn any_location_value_is_answered_in_place_without_panic(
            mut value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            v6 in proptest::prelude::any::<bool>(),
            wildcard in proptest::prelude::any::<bool>(),
            policy in 0u8..16,
        ) {
            let local = match (v6, wildcard) {
                (false, false) => "192.0.2.1:862",
                (false, true) => "0.0.0.0:862",
                (true, false) => "[2001:db8::1]:862",
                (true, true) => "[::]:862",
            };
            let mut s = seen(if v6 { "[2001:db8::7]:9" } else { "198.51.100.7:9" }, local);
            s.disclose = Disclosure {
                source_ip: policy & 1 != 0,
                source_port: policy & 2 != 0,
                destination_ip: policy & 4 != 0,
                destination_port: policy & 8 != 0,
            };
            let len = value.len();
            let flags = reflect(&mut value, Some(&s));
            proptest::prop_assert_eq!(value.len(), len);
            proptest::prop_assert!(flags == 0 || flags == tlv_flags::M);
        }
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn a_reflected_request_reads_back_what_the_reflector_saw() {
        let mut tlv = request_tlv();
        let seen = Seen {
            source: "198.51.100.7:40001".parse().unwrap(),
            local: "[2001:db8::1]:862".parse().unwrap(),
            disclose: Disclosure::ALL,
        };
        assert_eq!(reflect(&mut tlv[TLV_HEADER_LEN..], Some(&seen)), 0);
        let got = read_answer(&tlv[TLV_HEADER_LEN..]).unwrap();
        assert_eq!(
            got,
            Answer {
                destination_port: 862,
                source_port: 40001,
                destination_ip: Some("2001:db8::1".parse().unwrap()),
                source_ip: Some("198.51.100.7".parse().unwrap()),
            }
        );
        // Withheld: the generic types, zero: no address.
        let mut tlv = request_tlv();
        let hidden = Seen {
            disclose: Disclosure::NONE,
            ..seen
        };
        reflect(&mut tlv[TLV_HEADER_LEN..], Some(&hidden));
        let got = read_answer(&tlv[TLV_HEADER_LEN..]).unwrap();
        assert_eq!(got, Answer::default());
    }

    /// Every truncation and every bit flip of an answer reads without panic.
    #[test]
    fn hostile_answers_never_panic() {
        let mut tlv = request_tlv();
        let seen = Seen {
            source: "192.0.2.9:5000".parse().unwrap(),
            local: "192.0.2.1:862".parse().unwrap(),
            disclose: Disclosure::ALL,
        };
        reflect(&mut tlv[TLV_HEADER_LEN..], Some(&seen));
        let value = tlv[TLV_HEADER_LEN..].to_vec();
        for cut in 0..=value.len() {
            let got = read_answer(&value[..cut]);
            assert_eq!(got.is_some(), cut >= LOCATION_MIN_VALUE_LEN);
        }
        for bit in 0..value.len() * 8 {
            let mut flipped = value.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let _ = read_answer(&flipped);
        }
    }
}
