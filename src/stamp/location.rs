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
mod tests;

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
