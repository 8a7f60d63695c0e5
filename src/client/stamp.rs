//! The STAMP session-sender (RFC 8762, with the RFC 8972 SSID and Class of
//! Service TLV): what STAMP adds to a measured run. The run itself — ping,
//! flood or rate, one session per flow — is the echo modes' (`measure`), with
//! the STAMP codec writing the test packets and reading the replies, so a
//! STAMP run reports everything an echo run does.
//!
//! Beside each flow's books, a `StampBooks` reads every intact reply in time
//! for what only STAMP says: the one-way delay each way (meaningful only when
//! both clocks are synchronised, which the reflector's S bit claims or not);
//! whether the reflector numbers replies per session (stateful, RFC 8762
//! §4.2), which splits the loss by direction; and, with `--tos`, from the
//! Class of Service TLV, on which way a DSCP was re-marked.

mod follow;
mod owd;

use serde::Serialize;

pub use follow::FollowUpSummary;
pub use owd::OwdSummary;

use super::measure::codec::{Codec, StampCodec, unix_ns_exact};
use crate::client::probe::Check;
use crate::client::stats::RunSummary;
use crate::error::Result;
use crate::stamp::Key;
use crate::stamp::access;
use crate::stamp::direct::TLV_DIRECT_MEASUREMENT;
use crate::stamp::direct::{DIRECT_MEASUREMENT_LEN, DirectMeasurement};
use crate::stamp::followup::{FOLLOW_UP_LEN, FollowUp, TLV_FOLLOW_UP};
use crate::stamp::location::{self, LOCATION_REQUEST_LEN};
use crate::stamp::packet::{CLASS_OF_SERVICE_LEN, ClassOfService, TLV_CLASS_OF_SERVICE};
use crate::stamp::packet::{HMAC_TLV_LEN, find_tlv, tlv_flags, tlvs_authentic};
use crate::stamp::packet::{RPE_SET, RPE_UNABLE, TLV_HEADER_LEN, sender_header};
use crate::stamp::return_path::{TLV_DESTINATION_NODE_ADDRESS, TLV_RETURN_PATH, sub_tlv};
use crate::stamp::{Mode, ReflectedPacket, S_BIT, StampOptions, TimeFormat, error_estimate_us};
use follow::FollowBooks;
use owd::Owd;
use std::collections::BTreeMap;

/// A STAMP session as the command line asks for it, free of clap types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampConfig {
    /// Key file, time stamp format.
    pub options: StampOptions,
    /// The RFC 8972 session-sender identifier carried by every packet.
    pub ssid: u16,
    /// `--size`: every packet this long, an Extra Padding TLV making up the
    /// difference (checked by [`check_size`]); `None`: no padding.
    pub size: Option<usize>,
    /// Every packet carries a Follow-Up Telemetry TLV (`--stamp-follow-up`).
    pub follow_up: bool,
    /// The other TLVs every packet carries (`--stamp-tlv`).
    pub tlvs: SenderTlvs,
}

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
    /// ([`StampConfig::check_size_for`]): the command line only asks that
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
    fn names(&self) -> impl Iterator<Item = &'static str> {
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

/// The shortest STAMP test packet: the base packet, the Class of Service
/// TLV when the packets are marked (`tos`) and the Follow-Up Telemetry TLV
/// with `follow_up`; authenticated, those TLVs come with the HMAC TLV that
/// must protect them (RFC 8972 §4.8).
pub fn min_packet_len(authenticated: bool, tos: Option<u8>, follow_up: bool) -> usize {
    fixed_len(
        authenticated,
        tos,
        extra_len(follow_up, SenderTlvs::default()),
        false,
    )
}

/// The bytes of the TLVs after the Class of Service TLV: Follow-Up
/// Telemetry with `follow_up`, and `tlvs`.
fn extra_len(follow_up: bool, tlvs: SenderTlvs) -> usize {
    if follow_up { FOLLOW_UP_LEN } else { 0 }.saturating_add(tlvs.len())
}

/// The base packet and the TLVs that say something (not Extra Padding):
/// the CoS TLV with `tos`, and authenticated the HMAC TLV whenever there is
/// a TLV (`padded`: an Extra Padding TLV follows). RFC 8972 §4.8 spares a
/// lone Extra Padding TLV the HMAC TLV, but stamp-suite's reflector then
/// appends one to its reply, 20 bytes longer than the request; with ours
/// in place it signs that one instead.
fn fixed_len(authenticated: bool, tos: Option<u8>, extra: usize, padded: bool) -> usize {
    let base = if authenticated {
        Mode::Authenticated.base_len()
    } else {
        Mode::Open.base_len()
    };
    let tlvs = tos.map_or(0, |_| CLASS_OF_SERVICE_LEN) + extra;
    let hmac = if authenticated && (tlvs > 0 || padded) {
        HMAC_TLV_LEN
    } else {
        0
    };
    base + tlvs + hmac
}

/// Whether `--size` fits a STAMP packet: at least [`min_packet_len`], and
/// what it leaves past the packet's TLVs either 0 or room for an Extra
/// Padding TLV (its 4-byte header at least). `Err` says why not, as one line.
pub fn check_size(
    authenticated: bool,
    tos: Option<u8>,
    follow_up: bool,
    size: usize,
) -> std::result::Result<(), String> {
    check_size_with(authenticated, tos, follow_up, SenderTlvs::default(), size)
}

/// [`check_size`] with the TLVs of `--stamp-tlv` too.
pub fn check_size_with(
    authenticated: bool,
    tos: Option<u8>,
    follow_up: bool,
    tlvs: SenderTlvs,
    size: usize,
) -> std::result::Result<(), String> {
    let extra = extra_len(follow_up, tlvs);
    let min = fixed_len(authenticated, tos, extra, false);
    if size < min {
        return Err(format!(
            "--size {size} is shorter than this STAMP packet ({min} bytes{}{})",
            match (authenticated, tos) {
                (false, None) => "",
                (true, None) => ", authenticated",
                (false, Some(_)) => " with the Class of Service TLV of --tos",
                (true, Some(_)) => " with the Class of Service and HMAC TLVs",
            },
            match (follow_up, tlvs.is_empty()) {
                (false, true) => "",
                (true, true) => " and the Follow-Up Telemetry TLV",
                (false, false) => " and the TLVs of --stamp-tlv",
                (true, false) => " and the Follow-Up Telemetry and --stamp-tlv TLVs",
            }
        ));
    }
    if size == min {
        return Ok(());
    }
    // Longer: authenticated, the padding comes with an HMAC TLV.
    let fixed = fixed_len(authenticated, tos, extra, true);
    match size.checked_sub(fixed) {
        Some(0) | Some(4..) => Ok(()),
        _ => {
            let sizes = if fixed > min {
                format!("{min}, {fixed}")
            } else {
                min.to_string()
            };
            Err(format!(
                "--size {size}: no room for an Extra Padding TLV past the {fixed}-byte STAMP packet{} (4 bytes at least); use {sizes} or {} and up",
                if fixed > min {
                    " with its HMAC TLV"
                } else {
                    ""
                },
                fixed + 4
            ))
        }
    }
}

/// [`check_size_with`] before the target is resolved: with `--stamp-tlv
/// dna` the packet's length depends on the target's family, so `size` need
/// only fit an IPv4 or an IPv6 target here (the error, when it fits
/// neither, is the IPv4 one: the shorter packet); the run checks it again
/// for the family resolved ([`StampConfig::check_size_for`]).
pub fn check_size_unresolved(
    authenticated: bool,
    tos: Option<u8>,
    follow_up: bool,
    tlvs: SenderTlvs,
    size: usize,
) -> std::result::Result<(), String> {
    let check = |tlvs| check_size_with(authenticated, tos, follow_up, tlvs, size);
    if !tlvs.dna || tlvs.peer.is_some() {
        return check(tlvs);
    }
    let v4 = tlvs.for_peer(std::net::Ipv4Addr::UNSPECIFIED.into());
    let v6 = tlvs.for_peer(std::net::Ipv6Addr::UNSPECIFIED.into());
    check(v4).or_else(|e4| check(v6).map_err(|_| e4))
}

impl StampConfig {
    /// Whether `--size` fits the packet as sized for resolved target `peer`
    /// (`--stamp-tlv dna`: 4 or 16 address bytes by its family); `Err` is
    /// one line. Nothing to check without `--size` or `dna`.
    pub fn check_size_for(
        &self,
        tos: Option<u8>,
        peer: std::net::IpAddr,
    ) -> std::result::Result<(), String> {
        match self.size {
            Some(size) if self.tlvs.dna => check_size_with(
                self.mode() == Mode::Authenticated,
                tos,
                self.follow_up,
                self.tlvs.for_peer(peer),
                size,
            )
            .map_err(|problem| {
                let family = if peer.is_ipv4() { "IPv4" } else { "IPv6" };
                format!("--stamp-tlv dna to {peer} ({family}): {problem}")
            }),
            _ => Ok(()),
        }
    }

    /// The base packet's mode: authenticated when there is a key file.
    pub fn mode(&self) -> Mode {
        if self.options.key_file.is_some() {
            Mode::Authenticated
        } else {
            Mode::Open
        }
    }

    /// The TLVs every test packet carries, in order, by name.
    pub fn tlv_names(&self, tos: Option<u8>) -> Vec<&'static str> {
        let authenticated = self.mode() == Mode::Authenticated;
        let extra = extra_len(self.follow_up, self.tlvs);
        let padded = self.packet_len(tos) > fixed_len(authenticated, tos, extra, false);
        let mut names = Vec::new();
        if tos.is_some() {
            names.push("Class of Service");
        }
        if self.follow_up {
            names.push("Follow-Up Telemetry");
        }
        names.extend(self.tlvs.names());
        if authenticated && (tos.is_some() || extra > 0 || padded) {
            names.push("HMAC");
        }
        if padded {
            names.push("Extra Padding");
        }
        names
    }

    /// The length of every test packet: `--size`, or the base packet and
    /// the TLVs `tos` needs ([`min_packet_len`]).
    pub fn packet_len(&self, tos: Option<u8>) -> usize {
        self.size.unwrap_or_else(|| {
            let extra = extra_len(self.follow_up, self.tlvs);
            fixed_len(self.mode() == Mode::Authenticated, tos, extra, false)
        })
    }

    /// The codec of this session (the key read now), stamps on the clock
    /// whose 0 is `origin_unix_ns`.
    pub(crate) fn codec(&self, tos: Option<u8>, origin_unix_ns: u64) -> Result<Codec> {
        let key = self.options.key()?;
        Ok(Codec::Stamp(Box::new(StampCodec {
            mode: self.mode(),
            key,
            format: self.options.format(),
            ssid: self.ssid,
            origin_unix_ns,
            // EC1 (draft-ietf-ippm-stamp-cos-ecn): the reply's ECN asked
            // for is the one this packet is sent with.
            cos: tos.map(|tos| ClassOfService {
                dscp1: tos >> 2,
                ec1: tos & 0x03,
                ..ClassOfService::default()
            }),
            follow_up: self.follow_up,
            tlvs: self.tlvs,
            // Once per session: a run's packets all say the same, so a
            // reply's copy of it checks against one value.
            error_estimate: self
                .options
                .format()
                .error_estimate_of(crate::sys::kernel_clock()),
        })))
    }
}

/// What a STAMP run found: the echo modes' summary plus STAMP's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct StampSummary {
    /// Everything an echo run reports, DSCP figures included.
    #[serde(flatten)]
    pub run: RunSummary,
    /// `"unauthenticated"` or `"authenticated"`.
    pub stamp_mode: &'static str,
    /// Sender → reflector delay: reflector's receive time − our send time,
    /// µs; `None` (invalid) when any reply's time stamps were impossible
    /// (`owd_invalid`).
    pub owd_forward_us: Option<OwdSummary>,
    /// Reflector → sender delay: our receive time (the kernel's where there
    /// is one) − reflector's send time, µs; `None` likewise.
    pub owd_reverse_us: Option<OwdSummary>,
    /// Intact replies in time whose reflector time stamps cannot be true:
    /// sent before received, or held longer than the whole round trip, by
    /// more than [`STAMP_SLACK_NS`], or a day or more from this host's clock
    /// ([`STAMP_MAX_OFFSET_NS`]: no clock). One such reply makes the
    /// reflector's stamps untrustworthy, so the one-way figures are withheld.
    pub owd_invalid: u64,
    /// The reflector's S bit (in its last reply): it claims a clock
    /// synchronised to UTC. One-way delays need both clocks synchronised;
    /// this sender does not claim it (its S bit is clear).
    pub reflector_clock_synchronized: bool,
    /// The error the reflector's last reply claims for its clock (its
    /// error estimate's scale and multiplier), µs, rounded up; `None`
    /// without replies.
    pub reflector_clock_error_us: Option<u64>,
    /// This sender's S bit: set when the kernel says its clock is
    /// synchronised (`adjtimex`, see `stamp::clock_synchronized`).
    pub sender_clock_synchronized: bool,
    /// The error this sender's packets claim for its clock, µs (the
    /// kernel's `esterror`, rounded up to the encoding).
    pub sender_clock_error_us: u64,
    /// Whether the reflector numbers replies per session (its sequence
    /// numbers differ from ours): only then can loss be split by direction.
    pub reflector_stateful: bool,
    /// Test packets that never reached the reflector (stateful reflectors only).
    pub lost_forward: Option<u64>,
    /// Replies the reflector sent that never came back (stateful reflectors only).
    pub lost_reverse: Option<u64>,
    /// Lost packets sent after the last answered one: their direction is unknown.
    pub lost_unattributed: Option<u64>,
    /// Replies whose Class of Service TLV says the request arrived with
    /// another DSCP than sent: re-marked on the way out (`--tos` only;
    /// `None` when the reflector does not support the TLV).
    pub dscp_forward_changed: Option<u64>,
    /// Replies that arrived with another DSCP than the reflector says it
    /// sent them with (DSCP1 asked for, or the DSCP received, by its RP
    /// field): re-marked on the way back (`--tos` only; `None` when the
    /// reflector does not support the TLV or the TOS cannot be read here).
    pub dscp_reverse_changed: Option<u64>,
    /// The ECN codepoints the reflector says the requests arrived with
    /// (the Class of Service TLV's ECN field), replies per value; `None`
    /// without `--tos` or unless every reply carried a filled-in TLV.
    pub ecn_forward_seen: Option<BTreeMap<u8, u64>>,
    /// Replies whose request reached the reflector with another ECN than
    /// sent (CE marked, or bleached, on the way out); `None` likewise.
    pub ecn_forward_changed: Option<u64>,
    /// Replies that arrived with another ECN than the reflector says it
    /// sent them with (EC1 when its RPE is 0b11, Not-ECT when 0b10): changed
    /// on the way back. `None` unless every reply's TLV had RPE filled in
    /// (draft-ietf-ippm-stamp-cos-ecn) and the replies' TOS was read here.
    pub ecn_reverse_changed: Option<u64>,
    /// Replies whose reflector did not send them with the EC1 asked (RPE
    /// 0b10: by its policy, ours by default unless EC1 is Not-ECT).
    pub ecn_refused: Option<u64>,
    /// With `--stamp-follow-up`: the reflector's residence times and the
    /// reverse delays without them, from the Follow-Up Telemetry TLV.
    pub follow_up: Option<FollowUpSummary>,
    /// With `--stamp-tlv`: what came back of those TLVs.
    pub stamp_tlvs: Option<TlvSummary>,
}

/// How far a reflector's own two time stamps may disagree with what is
/// possible (its transmit time before its receive time, or its hold time
/// longer than our round trip) before they count as impossible, ns: a
/// clock stepped or slewed between the two readings, and our clock's rate
/// against its own, stay far below a millisecond.
pub const STAMP_SLACK_NS: i128 = 1_000_000;

/// How far a reflector's clock may be from ours before its stamps are no
/// clock error but no clock at all (unset, or a made-up value), ns: a day.
/// Unsynchronised clocks drift seconds a day and a wrong time zone is
/// hours; the one-way figures of a clock in 1900 or 2036 are not delays.
pub const STAMP_MAX_OFFSET_NS: i128 = 86_400_000_000_000;

/// Unix time in ns (signed) of a reflector's time stamp in `format`.
fn unix_ns(format: TimeFormat, t: u64) -> i128 {
    i128::from(unix_ns_exact(format, t))
}

/// One STAMP session's figures as the fleet prober exports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StampFigures {
    /// Sender → reflector delays: how many, and their sum in seconds.
    pub(crate) forward: (u64, f64),
    /// Reflector → sender delays: how many, and their sum in seconds.
    pub(crate) reverse: (u64, f64),
    /// Replies whose time stamps cannot be true (not in the delays).
    pub(crate) invalid: u64,
    /// Loss (forward, reverse, unattributed); `None` for a stateless
    /// reflector once something was lost.
    pub(crate) lost_split: Option<(u64, u64, u64)>,
}

/// Per-flow STAMP figures, fed with every reply the books matched.
pub(crate) struct StampBooks {
    mode: Mode,
    /// Unix ns of the books' clock at 0: our send and receive times in UTC.
    origin_unix_ns: u64,
    /// The CoS TLV the packets carry (`--tos`): DSCP1 and EC1.
    cos_sent: Option<ClassOfService>,
    /// Authenticated mode's key: a reply's TLVs are used only when they
    /// pass their HMAC TLV (RFC 8972 §4.8).
    key: Option<Key>,
    forward: Owd,
    reverse: Owd,
    /// Replies whose time stamps cannot be true (not recorded above).
    impossible: u64,
    synchronized: bool,
    /// The last reply's error estimate, and our own.
    their_error_estimate: Option<u16>,
    our_error_estimate: u16,
    stateful: bool,
    /// (reflector seq, our seq), both from 0, of the reply with the highest
    /// reflector sequence number.
    furthest: Option<(u64, u64)>,
    /// Intact replies in time whose reflector sequence number is known.
    answered: u64,
    /// Replies with a CoS TLV the reflector filled in, and with one it
    /// flagged (U, M) or dropped.
    cos_supported: u64,
    cos_unsupported: u64,
    forward_changed: u64,
    reverse_changed: u64,
    /// Replies whose reverse re-mark could be judged (TOS read here).
    reverse_judged: u64,
    /// ECN by the CoS TLV: as the reflector received it (per codepoint),
    /// changed on the way out, changed on the way back (of those judged:
    /// RPE filled in and TOS read here), refused (RPE 0b10).
    ecn_forward: [u64; 4],
    ecn_forward_changed: u64,
    ecn_reverse_changed: u64,
    ecn_reverse_judged: u64,
    ecn_refused: u64,
    /// `--stamp-follow-up`: the follow-up figures.
    follow: Option<FollowBooks>,
    /// `--stamp-tlv`: what came back of those TLVs.
    tlvs: SenderTlvs,
    answers: TlvAnswers,
}

/// What came back of the `--stamp-tlv` TLVs, per flow and summed.
#[derive(Debug, Clone, Copy, Default)]
struct TlvAnswers {
    /// Direct Measurement filled in, and flagged (U, M, I) or missing.
    dm_filled: u64,
    dm_flagged: u64,
    /// The filled-in counters with the highest S_TxC.
    dm_furthest: Option<DirectMeasurement>,
    location_filled: u64,
    location_flagged: u64,
    /// The last filled-in Location answer.
    location: Option<location::Answer>,
    access_acknowledged: u64,
    access_flagged: u64,
    dna: AddrAnswers,
    return_path: AddrAnswers,
}

/// How an RFC 9503 TLV came back: flags clear (recognised: the address
/// was the reflector's own, the Return Address honoured), U, M, or
/// otherwise (missing, I set, or its HMAC failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AddrAnswers {
    /// Flags clear.
    pub recognised: u64,
    /// U set (and M clear): not this node's address, or not honoured.
    pub unrecognised: u64,
    /// M set: malformed.
    pub malformed: u64,
    /// Missing, I set, or not authentic.
    pub other: u64,
}

impl AddrAnswers {
    fn merge(&mut self, o: &AddrAnswers) {
        self.recognised += o.recognised;
        self.unrecognised += o.unrecognised;
        self.malformed += o.malformed;
        self.other += o.other;
    }

    /// Counts TLV `kind` of reply TLVs `tlvs` (for a Return Path its
    /// Return Address sub-TLV's flags too: honoured only with both clear).
    fn read(&mut self, tlvs: &[u8], kind: u8, authentic: bool) {
        let Some((at, value)) = find_tlv(tlvs, kind).filter(|_| authentic) else {
            self.other += 1;
            return;
        };
        let mut flags = tlvs[at] & FLAGS;
        if kind == TLV_RETURN_PATH && flags == 0 {
            flags = value.first().map_or(tlv_flags::M, |f| f & FLAGS);
        }
        if flags & tlv_flags::M != 0 {
            self.malformed += 1;
        } else if flags == tlv_flags::U {
            self.unrecognised += 1;
        } else if flags == 0 {
            self.recognised += 1;
        } else {
            self.other += 1;
        }
    }
}

impl TlvAnswers {
    fn merge(&mut self, other: &TlvAnswers) {
        self.dm_filled += other.dm_filled;
        self.dm_flagged += other.dm_flagged;
        self.location_filled += other.location_filled;
        self.location_flagged += other.location_flagged;
        self.access_acknowledged += other.access_acknowledged;
        self.access_flagged += other.access_flagged;
        self.dna.merge(&other.dna);
        self.return_path.merge(&other.return_path);
        self.location = other.location.or(self.location);
        // Counters are per session: summed over the flows.
        self.dm_furthest = match (self.dm_furthest, other.dm_furthest) {
            (Some(a), Some(b)) => Some(DirectMeasurement {
                sender_tx: a.sender_tx.saturating_add(b.sender_tx),
                reflector_rx: a.reflector_rx.saturating_add(b.reflector_rx),
                reflector_tx: a.reflector_tx.saturating_add(b.reflector_tx),
            }),
            (a, b) => a.or(b),
        };
    }

    /// Reads the `--stamp-tlv` TLVs of a reply's `tlvs` (`authentic`:
    /// their HMAC TLV passed, or there is none to check).
    fn read(&mut self, asked: SenderTlvs, tlvs: &[u8], authentic: bool) {
        // A TLV comes back filled in when it is there, authentic and no
        // flag is set; otherwise it counts as flagged (U: not processed).
        let filled = |kind: u8| {
            find_tlv(tlvs, kind)
                .filter(|&(at, _)| authentic && tlvs[at] & FLAGS == 0)
                .map(|(_, value)| value)
        };
        if asked.direct {
            match filled(TLV_DIRECT_MEASUREMENT).and_then(|v| v.try_into().ok()) {
                Some(value) => {
                    let dm = DirectMeasurement::from_value(value);
                    self.dm_filled += 1;
                    if self.dm_furthest.is_none_or(|f| dm.sender_tx >= f.sender_tx) {
                        self.dm_furthest = Some(dm);
                    }
                }
                None => self.dm_flagged += 1,
            }
        }
        if asked.location {
            match filled(location::TLV_LOCATION).and_then(location::read_answer) {
                Some(answer) => {
                    self.location_filled += 1;
                    self.location = Some(answer);
                }
                None => self.location_flagged += 1,
            }
        }
        if asked.access {
            match filled(access::TLV_ACCESS_REPORT) {
                Some(_) => self.access_acknowledged += 1,
                None => self.access_flagged += 1,
            }
        }
        if asked.dna {
            self.dna.read(tlvs, TLV_DESTINATION_NODE_ADDRESS, authentic);
        }
        if asked.return_to.is_some() {
            self.return_path.read(tlvs, TLV_RETURN_PATH, authentic);
        }
    }

    fn summary(&self, asked: SenderTlvs) -> TlvSummary {
        TlvSummary {
            direct_measurement: asked.direct.then(|| DirectSummary {
                filled: self.dm_filled,
                flagged: self.dm_flagged,
                sent: self.dm_furthest.map(|d| u64::from(d.sender_tx)),
                reflector_received: self.dm_furthest.map(|d| u64::from(d.reflector_rx)),
                reflector_sent: self.dm_furthest.map(|d| u64::from(d.reflector_tx)),
                lost_forward: self
                    .dm_furthest
                    .map(|d| u64::from(d.sender_tx.saturating_sub(d.reflector_rx))),
            }),
            location: asked.location.then(|| LocationSummary {
                filled: self.location_filled,
                flagged: self.location_flagged,
                source: self.location.map(|l| seen_addr(l.source_ip, l.source_port)),
                destination: self
                    .location
                    .map(|l| seen_addr(l.destination_ip, l.destination_port)),
            }),
            access_report: asked.access.then_some(AccessSummary {
                acknowledged: self.access_acknowledged,
                flagged: self.access_flagged,
            }),
            destination_node_address: asked.dna.then_some(self.dna),
            return_path: asked.return_to.map(|ip| ReturnPathSummary {
                address: ip.to_string(),
                answers: self.return_path,
            }),
        }
    }
}

/// An address and port as a Location TLV gave them: `ip:port`, `[ip]:port`,
/// or `?:port` when the address was withheld or not answered.
fn seen_addr(ip: Option<std::net::IpAddr>, port: u16) -> String {
    match ip {
        Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        None => format!("?:{port}"),
    }
}

/// What the reflector answered to `--stamp-tlv`'s TLVs (JSON `stamp_tlvs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlvSummary {
    /// `dm`: the reflector's counters; `None` when not sent.
    pub direct_measurement: Option<DirectSummary>,
    /// `location`: the addresses it saw; `None` when not sent.
    pub location: Option<LocationSummary>,
    /// `access`: acknowledged or not; `None` when not sent.
    pub access_report: Option<AccessSummary>,
    /// `dna`: recognised (the target is the reflector's address) or not.
    pub destination_node_address: Option<AddrAnswers>,
    /// `return-path=ADDR`: honoured or not.
    pub return_path: Option<ReturnPathSummary>,
}

/// Return Path (RFC 9503 §4) as it came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnPathSummary {
    /// The Return Address sent.
    pub address: String,
    /// `recognised`: honoured (TLV and sub-TLV flags clear).
    #[serde(flatten)]
    pub answers: AddrAnswers,
}

/// Direct Measurement (RFC 8972 §4.5) as it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirectSummary {
    /// Replies with the TLV filled in.
    pub filled: u64,
    /// Replies with it flagged U, M or I (a stateless reflector of ours
    /// keeps no counters: U), or without it.
    pub flagged: u64,
    /// S_TxC of the filled-in reply with the highest: our packets sent by
    /// then (summed over flows).
    pub sent: Option<u64>,
    /// R_RxC in that reply: the reflector's count of our packets received.
    pub reflector_received: Option<u64>,
    /// R_TxC in that reply: the replies it had sent before it.
    pub reflector_sent: Option<u64>,
    /// `sent` − `reflector_received`: lost on the way out by then, by the
    /// reflector's own count.
    pub lost_forward: Option<u64>,
}

/// Location (RFC 8972 §4.2) as it came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationSummary {
    /// Replies with the TLV filled in.
    pub filled: u64,
    /// Replies with it flagged, or without it.
    pub flagged: u64,
    /// Where the reflector saw the last answered request come from (behind
    /// a NAT: its public address and port).
    pub source: Option<String>,
    /// Where it saw that request sent to.
    pub destination: Option<String>,
}

/// Access Report (RFC 8972 §4.6) as it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AccessSummary {
    /// Replies that returned it, U clear: the report acknowledged.
    pub acknowledged: u64,
    /// Replies with it flagged, or without it.
    pub flagged: u64,
}

impl StampBooks {
    /// Figures for one flow of `codec`'s session (`None` for echo probes).
    pub(crate) fn for_codec(codec: &Codec) -> Option<StampBooks> {
        StampBooks::build(codec, Owd::new)
    }

    /// [`for_codec`](Self::for_codec) keeping only the one-way delays'
    /// counts and sums (the fleet prober: no histograms per target).
    pub(crate) fn compact(codec: &Codec) -> Option<StampBooks> {
        StampBooks::build(codec, Owd::sums_only)
    }

    /// What the fleet prober exports of one target's session, given its
    /// books' `lost` and `in_flight`.
    pub(crate) fn figures(&self, lost: u64, in_flight: u64) -> StampFigures {
        StampFigures {
            forward: self.forward.count_and_sum_seconds(),
            reverse: self.reverse.count_and_sum_seconds(),
            invalid: self.impossible,
            lost_split: self.split(lost, in_flight),
        }
    }

    fn build(codec: &Codec, owd: fn() -> Owd) -> Option<StampBooks> {
        let Codec::Stamp(s) = codec else { return None };
        Some(StampBooks {
            mode: s.mode,
            origin_unix_ns: s.origin_unix_ns,
            cos_sent: s.cos,
            key: s.key.clone(),
            forward: owd(),
            reverse: owd(),
            impossible: 0,
            synchronized: false,
            their_error_estimate: None,
            our_error_estimate: s.error_estimate,
            stateful: false,
            furthest: None,
            answered: 0,
            cos_supported: 0,
            cos_unsupported: 0,
            forward_changed: 0,
            reverse_changed: 0,
            reverse_judged: 0,
            ecn_forward: [0; 4],
            ecn_forward_changed: 0,
            ecn_reverse_changed: 0,
            ecn_reverse_judged: 0,
            ecn_refused: 0,
            follow: s.follow_up.then(FollowBooks::new),
            tlvs: s.tlvs,
            answers: TlvAnswers::default(),
        })
    }

    /// Reads reply `bytes` to probe `seq` (the books' number, from 1), an
    /// intact one in time, sent at `sent_ns` and received at `at_ns` (the
    /// books' clock) with `tos` (when readable).
    pub(crate) fn reply(
        &mut self,
        bytes: &[u8],
        seq: u64,
        check: Check,
        at_ns: u64,
        tos: Option<u8>,
    ) {
        let Check::Intact { sent_ns, .. } = check else {
            return;
        };
        let Some(reply) = ReflectedPacket::decode(self.mode, bytes) else {
            return;
        };
        let theirs = TimeFormat::of_error_estimate(reply.error_estimate);
        let origin = i128::from(self.origin_unix_ns);
        let sent = origin + i128::from(sent_ns);
        let received = origin + i128::from(at_ns);
        let (their_rx, their_tx) = (
            unix_ns(theirs, reply.receive_timestamp),
            unix_ns(theirs, reply.timestamp),
        );
        // The reflector's hold time is on its clock alone: it must lie
        // within our round trip, whatever the offset between the clocks.
        let hold = their_tx - their_rx;
        let rtt = received - sent;
        let unset = (their_rx - sent).abs() > STAMP_MAX_OFFSET_NS;
        if unset || hold < -STAMP_SLACK_NS || hold > rtt + STAMP_SLACK_NS {
            self.impossible += 1;
        } else {
            self.forward.record(clamp(their_rx - sent));
            self.reverse.record(clamp(received - their_tx));
        }
        self.synchronized = reply.error_estimate & S_BIT != 0;
        self.their_error_estimate = Some(reply.error_estimate);
        if reply.seq != reply.sender_seq {
            self.stateful = true;
        }
        // The reflector has received at most as many packets as we sent up
        // to this one: its number unwraps below ours.
        let ours = seq - 1;
        let back = u64::from((ours as u32).wrapping_sub(reply.seq));
        if let Some(theirs_seq) = ours.checked_sub(back) {
            self.answered += 1;
            if self.furthest.is_none_or(|(r, _)| theirs_seq >= r) {
                self.furthest = Some((theirs_seq, ours));
            }
        }
        let tlvs = &bytes[self.mode.base_len()..];
        // RFC 8972 §4.8: TLVs whose HMAC TLV fails are not used.
        let authentic = self
            .key
            .as_ref()
            .is_none_or(|key| tlvs_authentic(tlvs, &bytes[..4], key));
        if let Some(follow) = &mut self.follow {
            let value = find_tlv(tlvs, TLV_FOLLOW_UP)
                .filter(|&(at, _)| authentic && tlvs[at] & FLAGS == 0)
                .and_then(|(_, value)| FollowUp::from_value(value));
            follow.reply(
                reply.seq,
                (their_rx, sent, received),
                value,
                theirs,
                unix_ns,
            );
        }
        if !self.tlvs.is_empty() {
            self.answers.read(self.tlvs, tlvs, authentic);
        }
        if let Some(sent) = self.cos_sent {
            if !authentic {
                self.cos_unsupported += 1;
                return;
            }
            self.class_of_service(tlvs, sent, tos);
        }
    }

    /// Reads the Class of Service TLV of a reply to a packet that carried
    /// `sent` (DSCP1 and EC1 are its DSCP and ECN).
    fn class_of_service(&mut self, tlvs: &[u8], sent: ClassOfService, tos: Option<u8>) {
        let Some((at, value)) = find_tlv(tlvs, TLV_CLASS_OF_SERVICE) else {
            self.cos_unsupported += 1;
            return;
        };
        if tlvs[at] & FLAGS != 0 || value.len() < 4 {
            self.cos_unsupported += 1;
            return;
        }
        // Sent back byte for byte (DSCP2 still 0, as sent): copied, not
        // filled in — unless the packet really arrived as CS0 / Not-ECT,
        // which reads the same and is taken as not supported too.
        let sent_value = sent.tlv();
        if sent.dscp1 != 0 && value[..4] == sent_value[4..8] {
            self.cos_unsupported += 1;
            return;
        }
        let cos = ClassOfService::from_value([value[0], value[1], value[2], value[3]]);
        self.cos_supported += 1;
        self.forward_changed += u64::from(cos.dscp2 != sent.dscp1);
        self.ecn_forward[usize::from(cos.ecn & 0x03)] += 1;
        self.ecn_forward_changed += u64::from(cos.ecn != sent.ec1);
        self.ecn_refused += u64::from(cos.rpe == RPE_UNABLE);
        if let Some(tos) = tos {
            let expected = if cos.rp == 0 { cos.dscp1 } else { cos.dscp2 };
            self.reverse_judged += 1;
            self.reverse_changed += u64::from(tos >> 2 != expected);
            // The ECN the reflector says the reply left with.
            let ecn = match cos.rpe {
                RPE_SET => Some(cos.ec1),
                RPE_UNABLE => Some(0),
                _ => None,
            };
            if let Some(ecn) = ecn {
                self.ecn_reverse_judged += 1;
                self.ecn_reverse_changed += u64::from(tos & 0x03 != ecn);
            }
        }
    }

    /// This flow's loss by direction, given its books' `lost` and
    /// `in_flight`: (forward, reverse, unknown), or `None` when the reflector
    /// is stateless and something was lost.
    ///
    /// A stateful reflector numbers what it receives: the reply with its
    /// highest number r, to our packet s, says it received r + 1 packets of
    /// our first s + 1 (forward: the rest), and every reply we got carries a
    /// number up to r (reverse: r + 1 minus those). Packets after s are lost
    /// one way or the other, nobody can say which.
    fn split(&self, lost: u64, in_flight: u64) -> Option<(u64, u64, u64)> {
        match (self.stateful, self.furthest) {
            (true, Some((r, s))) => {
                let reached = r + 1;
                let forward = (s + 1).saturating_sub(reached);
                let reverse = reached.saturating_sub(self.answered);
                Some((forward, reverse, lost.saturating_sub(forward + reverse)))
            }
            // No loss at all: none either way, whatever the reflector.
            _ if lost == 0 && in_flight == 0 => Some((0, 0, 0)),
            _ => None,
        }
    }
}

/// The flags that say a reflector did not fill a TLV in (RFC 8972 §4).
const FLAGS: u8 = tlv_flags::U | tlv_flags::M | tlv_flags::I;

fn clamp(ns: i128) -> i64 {
    ns.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// The STAMP summary of a run: `run`, and each flow's STAMP figures with
/// its books' lost and in-flight counts.
pub(crate) fn summarize(run: RunSummary, flows: &[(&StampBooks, u64, u64)]) -> StampSummary {
    let mut forward = Owd::new();
    let mut reverse = Owd::new();
    let mut impossible = 0;
    let mut split = Some((0, 0, 0));
    let (mut cos_supported, mut cos_unsupported) = (0, 0);
    let (mut forward_changed, mut reverse_changed, mut reverse_judged) = (0, 0, 0);
    let mut ecn_forward = [0u64; 4];
    let (mut ecn_forward_changed, mut ecn_reverse_changed) = (0, 0);
    let (mut ecn_reverse_judged, mut ecn_refused) = (0, 0);
    let mut follow: Option<FollowBooks> = None;
    let mut answers = TlvAnswers::default();
    for &(books, lost, in_flight) in flows {
        if let Some(theirs) = &books.follow {
            follow.get_or_insert_with(FollowBooks::new).merge(theirs);
        }
        answers.merge(&books.answers);
        forward.merge(&books.forward);
        reverse.merge(&books.reverse);
        impossible += books.impossible;
        split = match (split, books.split(lost, in_flight)) {
            (Some((f, r, u)), Some((f2, r2, u2))) => Some((f + f2, r + r2, u + u2)),
            _ => None,
        };
        cos_supported += books.cos_supported;
        cos_unsupported += books.cos_unsupported;
        forward_changed += books.forward_changed;
        reverse_changed += books.reverse_changed;
        reverse_judged += books.reverse_judged;
        for (sum, n) in ecn_forward.iter_mut().zip(books.ecn_forward) {
            *sum += n;
        }
        ecn_forward_changed += books.ecn_forward_changed;
        ecn_reverse_changed += books.ecn_reverse_changed;
        ecn_reverse_judged += books.ecn_reverse_judged;
        ecn_refused += books.ecn_refused;
    }
    let mode = flows.first().map_or(Mode::Open, |f| f.0.mode);
    // The TLV says something only when every reply carried it filled in.
    let cos = cos_supported > 0 && cos_unsupported == 0;
    StampSummary {
        run,
        stamp_mode: match mode {
            Mode::Open => "unauthenticated",
            Mode::Authenticated => "authenticated",
        },
        owd_forward_us: (impossible == 0).then(|| forward.summary()),
        owd_reverse_us: (impossible == 0).then(|| reverse.summary()),
        owd_invalid: impossible,
        reflector_clock_synchronized: flows.iter().any(|f| f.0.synchronized),
        reflector_clock_error_us: flows
            .iter()
            .filter_map(|f| f.0.their_error_estimate)
            .map(error_estimate_us)
            .max(),
        sender_clock_synchronized: flows
            .first()
            .is_some_and(|f| f.0.our_error_estimate & S_BIT != 0),
        sender_clock_error_us: flows
            .first()
            .map_or(0, |f| error_estimate_us(f.0.our_error_estimate)),
        reflector_stateful: flows.iter().any(|f| f.0.stateful),
        lost_forward: split.map(|s| s.0),
        lost_reverse: split.map(|s| s.1),
        lost_unattributed: split.map(|s| s.2),
        dscp_forward_changed: cos.then_some(forward_changed),
        dscp_reverse_changed: (cos && reverse_judged == cos_supported).then_some(reverse_changed),
        ecn_forward_seen: cos.then(|| (0u8..4).zip(ecn_forward).filter(|&(_, n)| n > 0).collect()),
        ecn_forward_changed: cos.then_some(ecn_forward_changed),
        ecn_reverse_changed: (cos && ecn_reverse_judged == cos_supported)
            .then_some(ecn_reverse_changed),
        ecn_refused: cos.then_some(ecn_refused),
        follow_up: follow.map(|f| f.summary()),
        stamp_tlvs: flows
            .first()
            .map(|f| f.0.tlvs)
            .filter(|t| !t.is_empty())
            .map(|asked| answers.summary(asked)),
    }
}

#[cfg(test)]
mod tests;
