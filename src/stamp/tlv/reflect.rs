//! The reflector's pass over a request's TLVs ([`reflect_tlvs`]), in place,
//! in the reply's buffer: what it knows of the request ([`TlvContext`]) and
//! what it did ([`TlvWalk`]). The TLVs' layouts and the walk's steps are
//! the parent module's; each TLV of its own module answers itself.

use super::*;

/// What [`reflect_tlvs`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlvWalk {
    /// How many TLVs it walked.
    pub walked: usize,
    /// The TOS byte the reply must be sent with: the first Class of
    /// Service TLV's DSCP1 (or the DSCP received, RP 1) and the ECN its
    /// RPE says, when one was filled in.
    pub reply_tos: Option<u8>,
    /// Where the HMAC TLV is, when the reply's must be signed (with
    /// [`sign_hmac_tlv`], once the reply's sequence number is written).
    pub sign_hmac_at: Option<usize>,
    /// The HMAC TLV check failed: every TLV is flagged I and nothing was used.
    pub integrity_failed: bool,
    /// A Follow-Up Telemetry TLV was filled in: the session wants its
    /// replies' kernel transmit times.
    pub follow_up: bool,
    /// A Return Path TLV (RFC 9503) was honoured: the reply goes here
    /// instead of to the request's source.
    pub reply_to: Option<std::net::SocketAddr>,
    /// A Return Path TLV's Control Code asked for no reply (RFC 9503
    /// §4.1.1), and it is honoured: the request gets none.
    pub no_reply: bool,
}

/// The lowest DSCP of network control (CS6 = 48, CS7 = 56 and the codepoints
/// between and above): routers queue it ahead of all traffic, so a Class of
/// Service TLV cannot make the reflector send it — one unauthenticated packet
/// would otherwise aim priority traffic at any address.
pub const NETWORK_CONTROL_DSCP: u8 = 48;

/// What the reflector knows when it walks a request's TLVs.
#[derive(Debug, Clone, Copy)]
pub struct TlvContext<'a> {
    /// The TOS byte the request arrived with, when the socket said.
    pub arrived_tos: Option<u8>,
    /// What a Class of Service TLV's EC1 gets (`--stamp-ecn`).
    pub ecn_policy: EcnPolicy,
    /// Where the reflector's time stamps come from (Timestamp Information).
    pub timestamp_info: TimestampInfo,
    /// Authenticated mode's key: the TLVs must pass their HMAC TLV, and the
    /// reply's HMAC TLV is signed. `None` (unauthenticated mode): an HMAC
    /// TLV cannot be checked, so it fails (I on every TLV).
    pub key: Option<&'a Key>,
    /// The request's sequence number field, which its HMAC TLV covers.
    pub seq: [u8; 4],
    /// The request's session's counts (Direct Measurement), when the
    /// reflector keeps sessions.
    pub session: Option<crate::stamp::direct::SessionCounts>,
    /// Where the request came from and went to, and what of it may be
    /// revealed (Location), when the reflector knows its socket's address.
    pub location: Option<crate::stamp::location::Seen>,
    /// The session's previous reply (Follow-Up Telemetry), when the
    /// reflector keeps sessions; `None`: stateless, the TLV is zeroed.
    pub follow_up: Option<crate::stamp::followup::FollowUp>,
    /// The address the request was sent to, when known (Destination Node
    /// Address, RFC 9503 §3).
    pub sent_to: Option<std::net::IpAddr>,
    /// The request's source and the networks a Return Path may send the
    /// reply to (RFC 9503 §4); `None`: no Return Path is honoured.
    pub return_path: Option<(
        std::net::SocketAddr,
        &'a crate::stamp::return_path::ReturnAllow,
    )>,
}

/// The reflector's pass over the TLVs of a reply (the bytes after its base
/// packet, copied from the request), as RFC 8972 §4 asks:
///
/// - An HMAC TLV that fails (wrong digest, a TLV other than Extra Padding
///   after it, none at all in authenticated mode when there are TLVs other
///   than one Extra Padding, or any in unauthenticated mode, where there is
///   no key to check it): every TLV is flagged I (and only I), nothing is
///   changed or used (RFC 8972 §4.8).
/// - Otherwise each TLV's flags are rewritten: U, M and I cleared (and the
///   reserved bits), then set as below.
/// - Extra Padding is copied as it is.
/// - Timestamp Information (length 4 or more: sub-TLVs are left as they
///   are) gets `timestamp_info`.
/// - Class of Service (length 4) gets DSCP2 and ECN from `arrived_tos`, the
///   TOS byte the request arrived with, RP 0 (the reply goes with DSCP1,
///   which the result's `reply_tos` carries, from the first such TLV), RPE
///   by `ecn_policy` (the reply's ECN bits with it) and its reserved bits
///   zeroed. A DSCP1 of network control (48 and up) is
///   refused by policy: RP 1, and the reply goes with the DSCP received.
///   Without `arrived_tos` (the platform cannot read it, so cannot set the
///   reply's either) it is flagged U and left as it is: a half-filled TLV
///   would report a re-marking that never happened.
/// - Location (length 4 or more) gets the ports and addresses as received,
///   as far as the disclosure policy allows (see [`location`](crate::stamp::location)).
/// - Access Report (length 4) is returned as it came, U clear (an Access
///   ID other than 1 or 2: U; see [`access`](crate::stamp::access)).
/// - Direct Measurement (length 12) gets the session's counts (see
///   [`direct`](crate::stamp::direct)); flagged U without a session table.
/// - Follow-Up Telemetry (length 16) gets the session's previous reply's
///   sequence number and kernel transmit time, or zeros (see
///   [`followup`](crate::stamp::followup)); `follow_up` tells the caller.
/// - Destination Node Address (length 4 or 16, RFC 9503 §3): U unless it
///   is `sent_to`; Return Path (RFC 9503 §4, the first one): honoured
///   only for a Control Code alone (0: `no_reply`; 1: the reply as usual)
///   or an allowed Return Address alone (`reply_to`), U otherwise (see
///   [`return_path`](crate::stamp::return_path)).
/// - The HMAC TLV (length 16) is kept for signing (`sign_hmac_at`).
/// - Every other type is flagged U (unrecognised) and left as it is.
/// - A TLV of a known type with a wrong length, or any TLV whose length
///   runs past the end, is flagged M and ends the walk: the rest is copied
///   as it came (and an HMAC TLV there is not re-signed).
///
/// A tail too short for a TLV header (under 4 bytes) is left as it is, and
/// so is everything from an all-zero header on: that is zero padding (a
/// TWAMP-Light sender's, or an RFC 8762 sender's), not TLVs.
pub fn reflect_tlvs(tlvs: &mut [u8], cx: &TlvContext<'_>) -> TlvWalk {
    let mut walk = TlvWalk::default();
    if has_tlvs(tlvs) {
        let authentic = match cx.key {
            Some(key) => tlvs_authentic(tlvs, &cx.seq, key),
            None => find_tlv(tlvs, TLV_HMAC).is_none(),
        };
        if !authentic {
            walk.integrity_failed = true;
            walk.walked = flag_all(tlvs, tlv_flags::I);
            return walk;
        }
    }
    let mut at = 0;
    let mut return_path_seen = false;
    loop {
        let (kind, len) = match step(tlvs, at) {
            Step::End => break,
            Step::Overrun => {
                walk.walked += 1;
                tlvs[at] = tlv_flags::M;
                break;
            }
            Step::Tlv { kind, len } => (kind, len),
        };
        walk.walked += 1;
        let value = at + TLV_HEADER_LEN..at + TLV_HEADER_LEN + len;
        let flags = match kind {
            TLV_EXTRA_PADDING => 0,
            TLV_TIMESTAMP_INFO if len >= 4 => {
                tlvs[value.start..value.start + 4].copy_from_slice(&cx.timestamp_info.value());
                0
            }
            TLV_CLASS_OF_SERVICE if len == 4 => match cx.arrived_tos {
                Some(tos) => {
                    let mut bytes = [0u8; 4];
                    bytes.copy_from_slice(&tlvs[value.clone()]);
                    let asked = ClassOfService::from_value(bytes);
                    // Policy (RFC 8972 §4.4): network control is never sent
                    // on request; the reply then goes as the request came (RP 1).
                    let refused = asked.dscp1 >= NETWORK_CONTROL_DSCP;
                    // draft-ietf-ippm-stamp-cos-ecn: EC1 as the policy says.
                    let (reply_ecn, rpe) = match cx.ecn_policy {
                        EcnPolicy::Ec1 => (asked.ec1, RPE_SET),
                        EcnPolicy::NotEct if asked.ec1 == 0 => (0, RPE_SET),
                        EcnPolicy::NotEct => (0, RPE_UNABLE),
                    };
                    let answer = ClassOfService {
                        dscp1: asked.dscp1,
                        dscp2: tos >> 2,
                        ecn: tos & 0x03,
                        rp: u8::from(refused),
                        ec1: asked.ec1,
                        rpe,
                    };
                    tlvs[value].copy_from_slice(&answer.value());
                    let dscp = if refused { tos >> 2 } else { asked.dscp1 };
                    walk.reply_tos.get_or_insert((dscp << 2) | reply_ecn);
                    0
                }
                None => tlv_flags::U,
            },
            crate::stamp::location::TLV_LOCATION
                if len >= crate::stamp::location::LOCATION_MIN_VALUE_LEN =>
            {
                crate::stamp::location::reflect(&mut tlvs[value], cx.location.as_ref())
            }
            crate::stamp::access::TLV_ACCESS_REPORT
                if len == crate::stamp::access::ACCESS_REPORT_VALUE_LEN =>
            {
                crate::stamp::access::reflect(&tlvs[value])
            }
            crate::stamp::direct::TLV_DIRECT_MEASUREMENT
                if len == crate::stamp::direct::DIRECT_MEASUREMENT_VALUE_LEN =>
            {
                crate::stamp::direct::reflect(&mut tlvs[value], cx.session)
            }
            crate::stamp::followup::TLV_FOLLOW_UP
                if len == crate::stamp::followup::FOLLOW_UP_VALUE_LEN =>
            {
                walk.follow_up = true;
                crate::stamp::followup::reflect(&mut tlvs[value], cx.follow_up)
            }
            crate::stamp::return_path::TLV_DESTINATION_NODE_ADDRESS
                if crate::stamp::return_path::destination_len_ok(len) =>
            {
                crate::stamp::return_path::reflect_destination(&tlvs[value], cx.sent_to)
            }
            crate::stamp::return_path::TLV_RETURN_PATH => {
                use crate::stamp::return_path::{ReturnPath, reflect_return_path};
                let first = !std::mem::replace(&mut return_path_seen, true);
                match cx.return_path.filter(|_| first) {
                    Some((source, allow)) => {
                        match reflect_return_path(&mut tlvs[value], source, allow) {
                            ReturnPath::To(to) => {
                                walk.reply_to = Some(to);
                                0
                            }
                            ReturnPath::NoReply => {
                                walk.no_reply = true;
                                0
                            }
                            ReturnPath::SameLink => 0,
                            ReturnPath::NotHonoured => tlv_flags::U,
                            ReturnPath::Malformed => {
                                tlvs[at] = tlv_flags::M;
                                break;
                            }
                        }
                    }
                    None => tlv_flags::U,
                }
            }
            TLV_HMAC if len == HMAC_TLV_LEN - TLV_HEADER_LEN => {
                if cx.key.is_some() && walk.sign_hmac_at.is_none() {
                    walk.sign_hmac_at = Some(at);
                }
                0
            }
            TLV_TIMESTAMP_INFO
            | TLV_CLASS_OF_SERVICE
            | TLV_HMAC
            | crate::stamp::direct::TLV_DIRECT_MEASUREMENT
            | crate::stamp::location::TLV_LOCATION
            | crate::stamp::access::TLV_ACCESS_REPORT
            | crate::stamp::followup::TLV_FOLLOW_UP
            | crate::stamp::return_path::TLV_DESTINATION_NODE_ADDRESS => {
                // RFC 8972 §4: a malformed TLV stops the processing; the
                // rest is copied as it came.
                tlvs[at] = tlv_flags::M;
                break;
            }
            _ => tlv_flags::U,
        };
        tlvs[at] = flags;
        at += TLV_HEADER_LEN + len;
    }
    walk
}

/// Whether `tlvs` starts with a TLV (or an overrunning one), not zero padding.
fn has_tlvs(tlvs: &[u8]) -> bool {
    !matches!(step(tlvs, 0), Step::End)
}

/// Sets every TLV's flags to `flags` (an overrunning one's to `flags` | M),
/// and returns how many there were.
fn flag_all(tlvs: &mut [u8], flags: u8) -> usize {
    let mut at = 0;
    let mut walked = 0;
    loop {
        match step(tlvs, at) {
            Step::End => return walked,
            Step::Overrun => {
                tlvs[at] = flags | tlv_flags::M;
                return walked + 1;
            }
            Step::Tlv { len, .. } => {
                tlvs[at] = flags;
                walked += 1;
                at += TLV_HEADER_LEN + len;
            }
        }
    }
}
