//! How long a STAMP test packet is: the shortest that holds its TLVs, and
//! which `--size` leaves room for an Extra Padding TLV.

use super::{SenderTlvs, StampConfig};
use crate::stamp::Mode;
use crate::stamp::followup::FOLLOW_UP_LEN;
use crate::stamp::packet::{CLASS_OF_SERVICE_LEN, HMAC_TLV_LEN};

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
pub(super) fn extra_len(follow_up: bool, tlvs: SenderTlvs) -> usize {
    if follow_up { FOLLOW_UP_LEN } else { 0 }.saturating_add(tlvs.len())
}

/// The base packet and the TLVs that say something (not Extra Padding):
/// the CoS TLV with `tos`, and authenticated the HMAC TLV whenever there is
/// a TLV (`padded`: an Extra Padding TLV follows). RFC 8972 §4.8 spares a
/// lone Extra Padding TLV the HMAC TLV, but stamp-suite's reflector then
/// appends one to its reply, 20 bytes longer than the request; with ours
/// in place it signs that one instead.
pub(super) fn fixed_len(authenticated: bool, tos: Option<u8>, extra: usize, padded: bool) -> usize {
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
}
