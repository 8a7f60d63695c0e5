//! RFC 8972 §4 TLVs: their layouts, pure encode and decode, and (in the
//! `reflect` submodule, re-exported here) the reflector's pass over a
//! request's TLVs, [`reflect_tlvs`], in place, in the reply's buffer (the
//! reply takes the request's place, so it is never longer). No I/O, no
//! clock, no allocation.
//!
//! Every TLV starts with a flags byte, a type and a 16-bit value length:
//!
//! ```text
//! |U|M|I| reserved|     Type      |            Length             |
//! ```
//!
//! The flag rules (RFC 8972 §4): a session-sender sends U = 1, M = 0, I = 0;
//! the reflector sets U to 1 for a type it does not understand and to 0 for
//! one it does, M to 1 for a malformed one (a length wrong for the type, or
//! running past the packet, after which it stops and copies the rest as it
//! came) and 0 otherwise, I to 1 on every TLV when the HMAC TLV fails and 0
//! otherwise. So a reply whose TLV still carries U = 1 came from a
//! reflector that did not process it, whatever else it did.

use super::auth::Key;

/// RFC 8972 §4 TLV flags: U (unrecognized), M (malformed), I (integrity failed).
pub mod tlv_flags {
    /// Sender: always set. Reflector: set when it does not know the type.
    pub const U: u8 = 0x80;
    /// The TLV is malformed (its length is wrong for the type or runs past
    /// the packet): processing stopped there.
    pub const M: u8 = 0x40;
    /// The HMAC TLV's check failed: nothing in the TLVs was used.
    pub const I: u8 = 0x20;
}

/// The length of a TLV's header: flags, type, 16-bit value length.
pub const TLV_HEADER_LEN: usize = 4;

/// The Extra Padding TLV's type (RFC 8972 §4.1): copied back as it came.
pub const TLV_EXTRA_PADDING: u8 = 1;

/// The Timestamp Information TLV's type (RFC 8972 §4.3).
pub const TLV_TIMESTAMP_INFO: u8 = 3;

/// The Class of Service TLV's type (RFC 8972 §4.4).
pub const TLV_CLASS_OF_SERVICE: u8 = 4;

/// The HMAC TLV's type (RFC 8972 §4.8).
pub const TLV_HMAC: u8 = 8;

/// A Class of Service TLV's whole length: a 4-byte header and 4 bytes of value.
pub const CLASS_OF_SERVICE_LEN: usize = 8;

/// A Timestamp Information TLV's whole length without sub-TLVs.
pub const TIMESTAMP_INFO_LEN: usize = 8;

/// An HMAC TLV's whole length: a 4-byte header and the 16-byte digest.
pub const HMAC_TLV_LEN: usize = 20;

/// The header of a TLV as a session-sender sends it: U set (RFC 8972 §4),
/// M and I clear. `value_len` must fit 16 bits.
pub fn sender_header(kind: u8, value_len: usize) -> [u8; TLV_HEADER_LEN] {
    let len = (value_len as u16).to_be_bytes();
    [tlv_flags::U, kind, len[0], len[1]]
}

/// The Class of Service TLV (RFC 8972 §4.4, with erratum 8199): how a test
/// packet's DSCP fared each way. The sender asks for `dscp1` on the reply;
/// the reflector fills in the DSCP and ECN the request arrived with
/// (`dscp2`, `ecn`) and says in `rp` whether it used `dscp1` (0) or, its
/// policy refusing that, the DSCP received (1). The sender compares `dscp2`
/// with what it sent (the way out) and the reply's own DSCP with `rp`'s
/// answer (the way back).
///
/// ```text
/// |  DSCP1 (6)  |  DSCP2 (6)  | ECN (2) | RP (2) | EC1 (2) | RPE (2) | Reserved (12) |
/// ```
///
/// draft-ietf-ippm-stamp-cos-ecn (-00 and -01, one layout) puts EC1 and
/// RPE in the first byte RFC 8972 reserved: EC1 is the ECN the sender asks
/// for on the reply (as DSCP1 is its DSCP), RPE what the reflector did with
/// it — [`RPE_SET`] the reply went with EC1, [`RPE_UNABLE`] it could not
/// (or would not) and the reply is Not-ECT, 0 from a sender or a reflector
/// without the draft. RFC 8972's ECN field (the draft's EC2) stays the ECN
/// the request arrived with. The remaining 12 bits are sent as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassOfService {
    /// The DSCP the sender asks the reflector to send the reply with (0-63).
    pub dscp1: u8,
    /// The DSCP the request arrived with at the reflector (0-63).
    pub dscp2: u8,
    /// The ECN codepoint the request arrived with at the reflector (0-3).
    pub ecn: u8,
    /// Reverse path: 0 the reply went with `dscp1`, 1 with the DSCP received.
    pub rp: u8,
    /// EC1: the ECN codepoint the sender asks for on the reply (0-3).
    pub ec1: u8,
    /// RPE (reverse path ECN): [`RPE_SET`], [`RPE_UNABLE`], or 0 (not
    /// filled in: a sender's, or a reflector without the draft).
    pub rpe: u8,
}

/// RPE: the reply was sent with the ECN codepoint EC1 asked for.
pub const RPE_SET: u8 = 0b11;
/// RPE: the reflector did not set EC1 on the reply; it went Not-ECT.
pub const RPE_UNABLE: u8 = 0b10;

/// What the reflector does with a Class of Service TLV's EC1 (the ECN the
/// sender asks for on the reply; `--stamp-ecn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcnPolicy {
    /// Every reply goes Not-ECT (the default, as an echo's): EC1 Not-ECT is
    /// honoured (RPE [`RPE_SET`]), any other refused (RPE [`RPE_UNABLE`]).
    /// The reflector does not react to congestion, so it does not claim an
    /// ECN-capable transport unasked.
    #[default]
    NotEct,
    /// The reply goes with EC1, whatever it is (CE included), RPE
    /// [`RPE_SET`]: for measuring how a path treats ECN-marked packets
    /// on the way back.
    Ec1,
}

impl ClassOfService {
    /// The 4 value bytes.
    pub fn value(&self) -> [u8; 4] {
        [
            ((self.dscp1 & 0x3f) << 2) | ((self.dscp2 >> 4) & 0x03),
            ((self.dscp2 & 0x0f) << 4) | ((self.ecn & 0x03) << 2) | (self.rp & 0x03),
            ((self.ec1 & 0x03) << 6) | ((self.rpe & 0x03) << 4),
            0,
        ]
    }

    /// Reads the 4 value bytes (the reserved bits are ignored).
    pub fn from_value(value: [u8; 4]) -> ClassOfService {
        ClassOfService {
            dscp1: value[0] >> 2,
            dscp2: ((value[0] & 0x03) << 4) | (value[1] >> 4),
            ecn: (value[1] >> 2) & 0x03,
            rp: value[1] & 0x03,
            ec1: value[2] >> 6,
            rpe: (value[2] >> 4) & 0x03,
        }
    }

    /// The whole TLV as a sender puts it after the base packet: U set (RFC
    /// 8972 §4: a sender always sets it, the reflector clears it when it
    /// understands the TLV), type 4, length 4, then the value.
    pub fn tlv(&self) -> [u8; CLASS_OF_SERVICE_LEN] {
        let v = self.value();
        let h = sender_header(TLV_CLASS_OF_SERVICE, 4);
        [h[0], h[1], h[2], h[3], v[0], v[1], v[2], v[3]]
    }
}

/// RFC 8972 §5.4 synchronization sources (Timestamp Information TLV).
pub mod sync_source {
    /// NTP.
    pub const NTP: u8 = 1;
    /// PTP.
    pub const PTP: u8 = 2;
    /// SSU/BITS.
    pub const SSU_BITS: u8 = 3;
    /// GPS, GLONASS, LORAN-C, BDS or Galileo.
    pub const GNSS: u8 = 4;
    /// Local, free-running: no external synchronization claimed.
    pub const LOCAL: u8 = 5;
}

/// RFC 8972 §5.5 timestamping methods (Timestamp Information TLV).
pub mod timestamp_method {
    /// Hardware assisted (a NIC's time stamp).
    pub const HW_ASSIST: u8 = 1;
    /// Software, local to the host: a kernel or user-space reading of the
    /// system clock.
    pub const SW_LOCAL: u8 = 2;
    /// Control plane.
    pub const CONTROL_PLANE: u8 = 3;
}

/// The Timestamp Information TLV (RFC 8972 §4.3): where the reflector's
/// receive (in) and transmit (out) time stamps came from. The sender sends
/// it zeroed; the reflector fills it in.
///
/// ```text
/// | Sync Src In | Timestamp In | Sync Src Out | Timestamp Out |
/// | optional sub-TLVs ...                                      |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimestampInfo {
    /// The clock's synchronization source at the ingress ([`sync_source`]).
    pub sync_in: u8,
    /// How the receive time stamp was taken ([`timestamp_method`]).
    pub method_in: u8,
    /// The clock's synchronization source at the egress.
    pub sync_out: u8,
    /// How the transmit time stamp was taken.
    pub method_out: u8,
}

impl TimestampInfo {
    /// What this reflector says of itself: sync source local (the kernel
    /// says whether the clock is synchronised, which sets the S bit, but
    /// not to what: NTP, PTP or GNSS), both time stamps software local —
    /// the kernel's `SO_TIMESTAMPNS` receive stamp or a user-space reading,
    /// and a user-space transmit reading: none of them a NIC's. (The
    /// Follow-Up Telemetry TLV's kernel transmit stamp is software local too,
    /// its mode 2: the RFC 8972 §5.5 registry has no code that tells kernel
    /// from user space.)
    pub const REFLECTOR: TimestampInfo = TimestampInfo {
        sync_in: sync_source::LOCAL,
        method_in: timestamp_method::SW_LOCAL,
        sync_out: sync_source::LOCAL,
        method_out: timestamp_method::SW_LOCAL,
    };

    /// The 4 value bytes.
    pub fn value(&self) -> [u8; 4] {
        [self.sync_in, self.method_in, self.sync_out, self.method_out]
    }

    /// Reads the 4 value bytes.
    pub fn from_value(value: [u8; 4]) -> TimestampInfo {
        TimestampInfo {
            sync_in: value[0],
            method_in: value[1],
            sync_out: value[2],
            method_out: value[3],
        }
    }

    /// The TLV as a sender asks for it: U set, every information field zero
    /// (RFC 8972 §4.3).
    pub fn request_tlv() -> [u8; TIMESTAMP_INFO_LEN] {
        let h = sender_header(TLV_TIMESTAMP_INFO, 4);
        [h[0], h[1], h[2], h[3], 0, 0, 0, 0]
    }
}

/// Writes an Extra Padding TLV (RFC 8972 §4.1) over all of `buf` as a
/// sender sends it: U set, type 1, the value zero (RFC 8972 allows zeros;
/// the padding's content is then known and cannot leak memory). `None` when
/// `buf` is shorter than a header or longer than a TLV can be.
pub fn write_extra_padding(buf: &mut [u8]) -> Option<()> {
    let value_len = buf.len().checked_sub(TLV_HEADER_LEN)?;
    if value_len > usize::from(u16::MAX) {
        return None;
    }
    buf[..TLV_HEADER_LEN].copy_from_slice(&sender_header(TLV_EXTRA_PADDING, value_len));
    buf[TLV_HEADER_LEN..].fill(0);
    Some(())
}

/// One step of a TLV walk (RFC 8972 §4), from byte `at` of `tlvs` (the bytes
/// after a base packet).
enum Step {
    /// The walk is over: fewer than 4 bytes left, or an all-zero header, which
    /// is zero padding (a TWAMP-Light sender's, or an RFC 8762 sender's), not TLVs.
    End,
    /// A TLV whose length runs past the end of the packet.
    Overrun,
    /// A whole TLV: its type and value length.
    Tlv { kind: u8, len: usize },
}

fn step(tlvs: &[u8], at: usize) -> Step {
    if tlvs.len() - at < TLV_HEADER_LEN || tlvs[at..at + TLV_HEADER_LEN] == [0; 4] {
        return Step::End;
    }
    let len = usize::from(u16::from_be_bytes([tlvs[at + 2], tlvs[at + 3]]));
    if len > tlvs.len() - at - TLV_HEADER_LEN {
        return Step::Overrun;
    }
    Step::Tlv {
        kind: tlvs[at + 1],
        len,
    }
}

/// Where the first TLV of type `kind` starts in `tlvs` (the bytes after a
/// base packet) and its value, walking as [`reflect_tlvs`] does: `None` when
/// there is none, or the walk meets zero padding or an overrunning length first.
pub fn find_tlv(tlvs: &[u8], kind: u8) -> Option<(usize, &[u8])> {
    let mut at = 0;
    loop {
        match step(tlvs, at) {
            Step::End | Step::Overrun => return None,
            Step::Tlv { kind: k, len } if k == kind => {
                return Some((at, &tlvs[at + 4..at + 4 + len]));
            }
            Step::Tlv { len, .. } => at += 4 + len,
        }
    }
}

/// Whether the TLVs of a packet pass their HMAC TLV (RFC 8972 §4.8) under
/// `key`: the first HMAC TLV holds the digest of `seq` (the packet's
/// sequence number field) and every TLV before it, and only Extra Padding
/// follows it. Without an HMAC TLV they pass only when there are no TLVs
/// or one, an Extra Padding TLV (the RFC's one exception). A malformed
/// chain before the HMAC TLV fails.
pub fn tlvs_authentic(tlvs: &[u8], seq: &[u8], key: &Key) -> bool {
    let mut at = 0;
    let mut count = 0;
    let mut only_padding = true;
    let mut hmac: Option<usize> = None;
    loop {
        match step(tlvs, at) {
            Step::End => break,
            Step::Overrun => return false,
            Step::Tlv { kind, len } => {
                count += 1;
                match hmac {
                    // After the HMAC TLV only Extra Padding may come.
                    Some(_) if kind != TLV_EXTRA_PADDING => return false,
                    Some(_) => {}
                    None if kind == TLV_HMAC => {
                        if len != HMAC_TLV_LEN - TLV_HEADER_LEN {
                            return false;
                        }
                        hmac = Some(at);
                    }
                    None => only_padding &= kind == TLV_EXTRA_PADDING,
                }
                at += TLV_HEADER_LEN + len;
            }
        }
    }
    match hmac {
        Some(h) => key.verify_tlv(seq, &tlvs[..h], &tlvs[h + TLV_HEADER_LEN..h + HMAC_TLV_LEN]),
        None => count == 0 || (count == 1 && only_padding),
    }
}

/// Signs the HMAC TLV at `at` of `tlvs` (found by [`reflect_tlvs`]): its
/// digest over `seq` (the packet's sequence number field) and the TLVs
/// before it, as they now stand.
pub fn sign_hmac_tlv(tlvs: &mut [u8], at: usize, seq: &[u8], key: &Key) {
    let digest = key.tlv_digest(seq, &tlvs[..at]);
    tlvs[at + TLV_HEADER_LEN..at + HMAC_TLV_LEN].copy_from_slice(&digest);
}

mod reflect;
pub use reflect::{NETWORK_CONTROL_DSCP, TlvContext, TlvWalk, reflect_tlvs};

#[cfg(test)]
mod tests;
