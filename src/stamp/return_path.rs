//! RFC 9503's TLVs (STAMP extensions for segment routing networks): the
//! Destination Node Address TLV (type 9) and the Return Path TLV (type 10).
//!
//! **Destination Node Address** (§3): the address the sender meant the test
//! packet for (4 bytes IPv4, 16 IPv6). The reflector checks it against the
//! address the request was actually sent to — the socket's bound address,
//! or on a wildcard bind the kernel's `IP_PKTINFO` (every loop): the same,
//! U clear; another address, or one the reflector cannot tell (the
//! portable build on a wildcard bind), U set. The TLV is returned as it
//! came otherwise. The reply leaves from the address it was sent to either
//! way.
//!
//! **Return Path** (§4): sub-TLVs (each with the TLV header: flags, type,
//! length) asking where the reply should go: Control Code (1: its 32-bit
//! Control Code Flags, of which RFC 9503 §4.1.1 defines only the Reply
//! Request flag, the least significant bit: 0 no reply requested, 1 a reply
//! requested on the same link), Return Address (2: an IPv4 or IPv6
//! address), an SR-MPLS label stack (3), an SRv6 segment list (4). A Return
//! Address that sends the reply to another host makes the reflector a
//! reflector in the other sense: one unauthenticated packet with a forged
//! source aims replies anywhere. So:
//!
//! - A Control Code of 0 (no reply requested) is honoured: no reply is
//!   sent, the request is counted (the server's `no-reply` drop reason), and
//!   a stateful reflector's session does not count it (the next reply gets
//!   the sequence number it would have had), so a forged one cannot disturb
//!   another sender's session. It silences nothing but itself: less work
//!   than an answered request, after the same guard and rate limit.
//! - A Control Code of 1 (reply on the same link) is honoured by replying as
//!   usual, U clear: the reply goes back to the source from the address the
//!   request came to (on the link the request came in on wherever the route
//!   back is that link, and always with `--interface`). Any other Control
//!   Code (a reserved bit set) is a code this reflector does not know: U,
//!   and the reply goes as usual.
//! - A Return Address inside a network the operator allows
//!   (`--stamp-return-path-allow CIDR`, none by default), of an address
//!   family the socket can send to, is honoured: the reply goes to that
//!   address, at the request's source port, U clear on the TLV and the
//!   sub-TLV.
//! - A Control Code or a Return Address is honoured only as the TLV's one
//!   sub-TLV (RFC 9503 §4.1 gives a sender one of them): a Return Path
//!   asking for more than one thing is not honoured in part.
//! - Anything else — an address outside the allowed networks, a segment
//!   list (this reflector cannot steer a reply by SR-MPLS labels or SRv6
//!   segments), an unknown sub-TLV — is not honoured: U on the TLV and on
//!   the sub-TLVs not honoured, and the reply goes to the request's source
//!   as usual.
//! - A sub-TLV running past the TLV, or a Control Code of a length other
//!   than 4 or a Return Address of a length other than 4 or 16: M, and the
//!   walk of the request's TLVs stops (RFC 8972 §4).
//! - Only the first Return Path TLV counts; later ones get U.
//! - Whatever the allowed networks: never an address that is no single
//!   host (unspecified, which Linux delivers to the host itself; multicast,
//!   which every member of the group would get: one request, many replies;
//!   IPv4 broadcast), and a loopback address only for a request that came
//!   from loopback (else a packet from afar aims the reply at a service of
//!   the reflector's own host). `--stamp-return-path-allow 0.0.0.0/0` is
//!   thus no worse than "any one other host".
//!
//! In authenticated mode none of this is used unless the HMAC TLV passed
//! (RFC 8972 §4.8). Nothing here changes a length: the reply is as long as
//! its request, wherever it goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::tlv::{TLV_HEADER_LEN, sender_header, tlv_flags};

/// The Destination Node Address TLV's type (RFC 9503 §3).
pub const TLV_DESTINATION_NODE_ADDRESS: u8 = 9;

/// The Return Path TLV's type (RFC 9503 §4).
pub const TLV_RETURN_PATH: u8 = 10;

/// Return Path sub-TLV types (RFC 9503 §4.1).
pub mod sub_tlv {
    /// Control Code: 32 bits of flags; the least significant, Reply
    /// Request, asks for a reply on the same link (1) or none (0).
    pub const CONTROL_CODE: u8 = 1;
    /// Return Address: where the reply should go.
    pub const RETURN_ADDRESS: u8 = 2;
    /// SR-MPLS label stack of the return path.
    pub const SR_MPLS_LABEL_STACK: u8 = 3;
    /// SRv6 segment list of the return path.
    pub const SRV6_SEGMENT_LIST: u8 = 4;
}

/// Control Code values (RFC 9503 §4.1.1: the Reply Request flag; every
/// other bit is reserved).
pub mod control_code {
    /// No reply requested: the reflector sends none.
    pub const NO_REPLY: u32 = 0;
    /// A reply requested on the link the request came in on.
    pub const SAME_LINK: u32 = 1;
}

/// The Control Code sub-TLV's value length (RFC 9503 §4.1.1).
pub const CONTROL_CODE_LEN: usize = 4;

/// The networks a Return Path's Return Address may name
/// (`--stamp-return-path-allow`); empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnAllow {
    nets: Vec<(IpAddr, u8)>,
}

impl ReturnAllow {
    /// The networks `(address, prefix length)`; IPv4-mapped IPv6 addresses
    /// are matched as the IPv4 addresses they map.
    pub fn new(nets: Vec<(IpAddr, u8)>) -> ReturnAllow {
        ReturnAllow { nets }
    }

    /// Whether no address is allowed.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// What the start-up report says of it: nothing when none is allowed
    /// (the default), else `, Return Path TLVs may send replies to NETS`.
    pub fn describe(&self) -> String {
        if self.nets.is_empty() {
            return String::new();
        }
        let nets: Vec<String> = self
            .nets
            .iter()
            .map(|(net, prefix)| format!("{net}/{prefix}"))
            .collect();
        format!(
            ", Return Path TLVs may send replies to {} (--stamp-return-path-allow)",
            nets.join(", ")
        )
    }

    /// Whether `ip` is inside an allowed network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.nets.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address value of 4 or 16 bytes.
fn address(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            value[0], value[1], value[2], value[3],
        ))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(value);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// Whether a Destination Node Address TLV's value has a length RFC 9503
/// allows (4 or 16).
pub fn destination_len_ok(len: usize) -> bool {
    len == 4 || len == 16
}

/// The reflector's answer to a Destination Node Address TLV whose value has
/// a valid length: its flags, 0 when the address is `sent_to` (the address
/// the request was sent to, when known), U otherwise. The value is left as
/// it came.
pub fn reflect_destination(value: &[u8], sent_to: Option<IpAddr>) -> u8 {
    match (address(value), sent_to) {
        (Some(asked), Some(to)) if unmap(asked) == unmap(to) => 0,
        _ => tlv_flags::U,
    }
}

/// What the reflector made of a Return Path TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPath {
    /// Honoured: the reply goes to this address. Flags 0.
    To(SocketAddr),
    /// Honoured, a Control Code of 0: no reply is sent. Flags 0.
    NoReply,
    /// Honoured, a Control Code of 1 (reply on the same link): the reply
    /// goes to the source as usual. Flags 0.
    SameLink,
    /// Not honoured: flagged U, the reply goes to the source.
    NotHonoured,
    /// A sub-TLV overruns the TLV or has a wrong length: flagged M.
    Malformed,
}

/// The reflector's pass over a Return Path TLV's `value` (its sub-TLVs),
/// rewriting each sub-TLV's flags in place: U on what is not honoured, 0 on
/// a Control Code or Return Address that is. `source` is the request's
/// source (its port is the reply's; its family says which addresses the
/// socket can send to).
pub fn reflect_return_path(
    value: &mut [u8],
    source: SocketAddr,
    allow: &ReturnAllow,
) -> ReturnPath {
    let mut at = 0;
    let mut subs = 0;
    let mut honoured = None;
    while value.len() - at >= TLV_HEADER_LEN {
        let (kind, len) = (
            value[at + 1],
            usize::from(u16::from_be_bytes([value[at + 2], value[at + 3]])),
        );
        let Some(end) = (at + TLV_HEADER_LEN)
            .checked_add(len)
            .filter(|&e| e <= value.len())
        else {
            return ReturnPath::Malformed;
        };
        subs += 1;
        let sub = &value[at + TLV_HEADER_LEN..end];
        let answer = match kind {
            sub_tlv::CONTROL_CODE => {
                let Ok(code) = <[u8; CONTROL_CODE_LEN]>::try_from(sub) else {
                    return ReturnPath::Malformed;
                };
                match u32::from_be_bytes(code) {
                    control_code::NO_REPLY => Some(ReturnPath::NoReply),
                    control_code::SAME_LINK => Some(ReturnPath::SameLink),
                    // A reserved bit set: a code this reflector does not know.
                    _ => None,
                }
            }
            sub_tlv::RETURN_ADDRESS => {
                let Some(ip) = address(sub) else {
                    return ReturnPath::Malformed;
                };
                reply_to(ip, source)
                    .filter(|_| allow.contains(ip) && may_go(ip, source))
                    .map(ReturnPath::To)
            }
            _ => None,
        };
        value[at] = match answer {
            Some(answer) if honoured.is_none() => {
                honoured = Some(answer);
                0
            }
            _ => tlv_flags::U,
        };
        at = end;
    }
    match honoured {
        Some(answer) if subs == 1 => answer,
        Some(_) => {
            // Honoured only whole: the one understood is not used either.
            flag_sub_tlvs(value, tlv_flags::U);
            ReturnPath::NotHonoured
        }
        None => ReturnPath::NotHonoured,
    }
}

/// Sets every sub-TLV's flags of a well-formed Return Path value.
fn flag_sub_tlvs(value: &mut [u8], flags: u8) {
    let mut at = 0;
    while value.len() - at >= TLV_HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([value[at + 2], value[at + 3]]));
        value[at] = flags;
        at += TLV_HEADER_LEN + len;
        if at > value.len() {
            return;
        }
    }
}

/// Whether a reply may be sent to Return Address `ip` for a request from
/// `source`, whatever the allowed networks: one host, and a loopback one
/// only for a loopback source (see the module doc).
fn may_go(ip: IpAddr, source: SocketAddr) -> bool {
    let one_host = match unmap(ip) {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    };
    one_host && (!unmap(ip).is_loopback() || unmap(source.ip()).is_loopback())
}

/// Where a reply to `ip` goes from a socket that got a request from
/// `source`: `ip` at the source's port, in the source's family (an IPv4
/// address from a dual-stack IPv6 socket as IPv4-mapped); `None` when the
/// socket cannot send there (IPv6 from an IPv4 socket).
fn reply_to(ip: IpAddr, source: SocketAddr) -> Option<SocketAddr> {
    let ip = match (unmap(ip), source) {
        (IpAddr::V4(v4), SocketAddr::V4(_)) => IpAddr::V4(v4),
        (IpAddr::V4(v4), SocketAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (IpAddr::V6(v6), SocketAddr::V6(_)) => IpAddr::V6(v6),
        (IpAddr::V6(_), SocketAddr::V4(_)) => return None,
    };
    Some(SocketAddr::new(ip, source.port()))
}

/// A Destination Node Address TLV as a sender sends it (U set).
pub fn destination_tlv(ip: IpAddr) -> Vec<u8> {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut tlv = sender_header(TLV_DESTINATION_NODE_ADDRESS, octets.len()).to_vec();
    tlv.extend_from_slice(&octets);
    tlv
}

/// A Return Path TLV with one Control Code sub-TLV of `code`, as a sender
/// sends it (U set on both).
pub fn control_code_tlv(code: u32) -> Vec<u8> {
    let mut tlv = sender_header(TLV_RETURN_PATH, TLV_HEADER_LEN + CONTROL_CODE_LEN).to_vec();
    tlv.extend_from_slice(&sender_header(sub_tlv::CONTROL_CODE, CONTROL_CODE_LEN));
    tlv.extend_from_slice(&code.to_be_bytes());
    tlv
}

/// A Return Path TLV with one Return Address sub-TLV, as a sender sends it
/// (U set on both).
pub fn return_address_tlv(ip: IpAddr) -> Vec<u8> {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut tlv = sender_header(TLV_RETURN_PATH, TLV_HEADER_LEN + octets.len()).to_vec();
    tlv.extend_from_slice(&sender_header(sub_tlv::RETURN_ADDRESS, octets.len()));
    tlv.extend_from_slice(&octets);
    tlv
}

#[cfg(test)]
mod tests;
