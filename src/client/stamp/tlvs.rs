//! The TLVs a session-sender asks the reflector to answer (`--stamp-tlv`):
//! which ones, their length in every packet, and how they are written.

use crate::stamp::access;
use crate::stamp::direct::{DIRECT_MEASUREMENT_LEN, DirectMeasurement};
use crate::stamp::location::{self, LOCATION_REQUEST_LEN};
use crate::stamp::packet::{TLV_HEADER_LEN, sender_header};
use crate::stamp::return_path::{TLV_DESTINATION_NODE_ADDRESS, TLV_RETURN_PATH, sub_tlv};

/// The TLVs whose answer the sender asks for with `--stamp-tlv LIST`
/// (after the Class of Service and Follow-Up Telemetry TLVs, in this
/// order): Direct Measurement (`dm`), Location (`location`), Access Report
/// (`access`); `all` is the three. RFC 9503's Destination Node Address
/// (`dna`: the target's address, 4 or 16 bytes by its family, known once it
/// is resolved: [`SenderTlvs::for_peer`]) and Return Path with one Return
/// Address sub-TLV (`return-path=ADDR`) follow them, asked for by name only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderTlvs {
    /// Destination Node Address (RFC 9503 §3): the address we sent to.
    pub dna: bool,
    /// The resolved target (for `dna`); until then its length is IPv6's,
    /// the longer. A `--size` is checked again once it is known
    /// ([`StampConfig::check_size_for`](super::StampConfig::check_size_for)): the command line only asks that
    /// it fit one family or the other.
    pub peer: Option<std::net::IpAddr>,
    /// Return Path (RFC 9503 §4) with this Return Address: a reflector
    /// that honours it sends the reply there, so only our own address
    /// brings the reply back here (what the option is for: does the
    /// reflector honour it, U clear, or refuse it, U set).
    pub return_to: Option<std::net::IpAddr>,
    /// Direct Measurement (RFC 8972 §4.5): the reflector's counters.
    pub direct: bool,
    /// Location (RFC 8972 §4.2): the addresses and ports it saw.
    pub location: bool,
    /// Access Report (RFC 8972 §4.6): acknowledged or not.
    pub access: bool,
}

/// The Access Report this sender sends: Access ID 2 (non-3GPP network: a
/// host on a fixed line), Return Code 1 (network available).
pub const ACCESS_REPORT: (u8, u8) = (2, 1);

impl SenderTlvs {
    /// Parses `--stamp-tlv`'s list (`dm`, `location`, `access`, `all`,
    /// comma-separated); `Err` is one line naming what is wrong.
    pub fn parse(text: &str) -> std::result::Result<SenderTlvs, String> {
        let mut tlvs = SenderTlvs::default();
        for word in text.split(',').map(str::trim) {
            match word {
                "dm" => tlvs.direct = true,
                "location" => tlvs.location = true,
                "access" => tlvs.access = true,
                "all" => {
                    tlvs.direct = true;
                    tlvs.location = true;
                    tlvs.access = true;
                }
                "dna" => tlvs.dna = true,
                other => match other.strip_prefix("return-path=") {
                    Some(addr) => {
                        let ip = addr
                            .trim_matches(|c| c == '[' || c == ']')
                            .parse()
                            .map_err(|_| {
                                format!("return-path={addr}: not an IPv4 or IPv6 address")
                            })?;
                        tlvs.return_to = Some(ip);
                    }
                    None => {
                        return Err(format!(
                            "'{other}' is not a TLV this sender sends: give dm, location, access, all, dna or return-path=ADDR, comma-separated"
                        ));
                    }
                },
            }
        }
        Ok(tlvs)
    }

    /// Their bytes in every packet.
    pub fn len(&self) -> usize {
        usize::from(self.direct) * DIRECT_MEASUREMENT_LEN
            + usize::from(self.location) * LOCATION_REQUEST_LEN
            + usize::from(self.access) * ACCESS_REPORT_LEN
            + if self.dna {
                addr_tlv_len(self.peer.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED.into()))
            } else {
                0
            }
            + self
                .return_to
                .map_or(0, |ip| TLV_HEADER_LEN + addr_tlv_len(ip))
    }

    /// These TLVs for resolved target `peer` (sizes `dna`).
    pub fn for_peer(self, peer: std::net::IpAddr) -> SenderTlvs {
        SenderTlvs {
            peer: Some(peer),
            ..self
        }
    }

    /// None asked for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Their names, in packet order.
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.direct, "Direct Measurement"),
            (self.location, "Location"),
            (self.access, "Access Report"),
            (self.dna, "Destination Node Address"),
            (self.return_to.is_some(), "Return Path"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    /// Writes them at the start of `buf` for the packet numbered `sent`
    /// (the session's packets so far, this one included: S_TxC) and
    /// returns their length.
    pub(crate) fn write(&self, buf: &mut [u8], sent: u32) -> usize {
        let mut at = 0;
        if self.direct {
            buf[at..at + DIRECT_MEASUREMENT_LEN]
                .copy_from_slice(&DirectMeasurement::request_tlv(sent));
            at += DIRECT_MEASUREMENT_LEN;
        }
        if self.location {
            buf[at..at + LOCATION_REQUEST_LEN].copy_from_slice(&location::request_tlv());
            at += LOCATION_REQUEST_LEN;
        }
        if self.access {
            buf[at..at + ACCESS_REPORT_LEN]
                .copy_from_slice(&access::request_tlv(ACCESS_REPORT.0, ACCESS_REPORT.1));
            at += ACCESS_REPORT_LEN;
        }
        if self.dna {
            let ip = self.peer.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED.into());
            at += write_addr_tlv(&mut buf[at..], TLV_DESTINATION_NODE_ADDRESS, ip, 0);
        }
        if let Some(ip) = self.return_to {
            at += write_addr_tlv(&mut buf[at..], TLV_RETURN_PATH, ip, TLV_HEADER_LEN);
        }
        at
    }
}

/// A TLV carrying address `ip` (4 or 16 bytes): header and value.
fn addr_tlv_len(ip: std::net::IpAddr) -> usize {
    TLV_HEADER_LEN + if ip.is_ipv4() { 4 } else { 16 }
}

/// Writes at the start of `buf`, U set as a sender sends it, a Destination
/// Node Address TLV (`wrap` 0) or a Return Path TLV around a Return Address
/// sub-TLV (`wrap` 4: the outer header) carrying `ip`, without allocating;
/// returns its length.
pub(crate) fn write_addr_tlv(buf: &mut [u8], kind: u8, ip: std::net::IpAddr, wrap: usize) -> usize {
    let (octets, n) = match ip {
        std::net::IpAddr::V4(v4) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&v4.octets());
            (o, 4)
        }
        std::net::IpAddr::V6(v6) => (v6.octets(), 16),
    };
    buf[..TLV_HEADER_LEN].copy_from_slice(&sender_header(kind, wrap + n));
    let mut at = TLV_HEADER_LEN;
    if wrap > 0 {
        buf[at..at + TLV_HEADER_LEN].copy_from_slice(&sender_header(sub_tlv::RETURN_ADDRESS, n));
        at += TLV_HEADER_LEN;
    }
    buf[at..at + n].copy_from_slice(&octets[..n]);
    at + n
}

/// The Access Report TLV's length: header and 4 value bytes.
const ACCESS_REPORT_LEN: usize = 8;
