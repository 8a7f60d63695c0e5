//! STAMP test packet layouts, pure encode and decode: the session-sender's
//! packet and the session-reflector's reply, in unauthenticated and
//! authenticated mode (RFC 8762 §4.2 and §4.3, with the RFC 8972 §3 SSID in
//! what RFC 8762 called MBZ). No I/O, no clock.
//!
//! Decoding a sender packet in unauthenticated mode zero-fills what a short
//! packet lacks, as RFC 8762 §4.6 lets a reflector do for TWAMP-Light
//! senders; at least the sequence number, time stamp and error estimate (14
//! bytes) must be there. The reflector does not answer such packets (its
//! reply would be longer than the request: [`super::Refusal::Short`]).

/// The unauthenticated base packet, sender and reflector alike, in bytes.
pub const OPEN_LEN: usize = 44;
/// The authenticated base packet, sender and reflector alike, in bytes.
pub const AUTH_LEN: usize = 112;
/// Where the HMAC sits in an authenticated packet; it covers every byte before it.
pub const HMAC_AT: usize = 96;
/// The HMAC's length: HMAC-SHA-256 truncated to 128 bits.
pub const HMAC_LEN: usize = 16;
/// The shortest unauthenticated packet answered: sequence number, time stamp
/// and error estimate, as a TWAMP-Light sender may send them.
pub const OPEN_MIN_LEN: usize = 14;

/// Unauthenticated (open) or authenticated mode (RFC 8762 §4.2.1, §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No HMAC: 44-byte base packets.
    Open,
    /// HMAC-SHA-256 over the first 96 bytes: 112-byte base packets.
    Authenticated,
}

/// Field offsets of one mode.
struct Layout {
    seq: usize,
    timestamp: usize,
    error: usize,
    ssid: usize,
    receive: usize,
    sender_seq: usize,
    sender_timestamp: usize,
    sender_error: usize,
    sender_ttl: usize,
}

const OPEN: Layout = Layout {
    seq: 0,
    timestamp: 4,
    error: 12,
    ssid: 14,
    receive: 16,
    sender_seq: 24,
    sender_timestamp: 28,
    sender_error: 36,
    sender_ttl: 40,
};

const AUTH: Layout = Layout {
    seq: 0,
    timestamp: 16,
    error: 24,
    ssid: 26,
    receive: 32,
    sender_seq: 48,
    sender_timestamp: 64,
    sender_error: 72,
    sender_ttl: 80,
};

impl Mode {
    /// The base packet's length in this mode, in bytes; TLVs follow it.
    pub fn base_len(self) -> usize {
        match self {
            Mode::Open => OPEN_LEN,
            Mode::Authenticated => AUTH_LEN,
        }
    }

    fn layout(self) -> &'static Layout {
        match self {
            Mode::Open => &OPEN,
            Mode::Authenticated => &AUTH,
        }
    }

    /// Where a reflected packet carries its receive time stamp and the
    /// sender's time stamp: both non-zero in every reply, both zero (MBZ) in
    /// a sender's packet.
    pub(crate) fn reflected_timestamps_at(self) -> (usize, usize) {
        let layout = self.layout();
        (layout.receive, layout.sender_timestamp)
    }
}

/// Reads `N` big-endian bytes at `at`; bytes past the end of `data` read as zero.
#[inline]
fn read_be<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    // The whole field is there (every base packet): a fixed-size load, no
    // variable-length copy on the senders' and reflectors' per-packet path.
    if let Some(field) = data.get(at..at + N) {
        let mut out = [0u8; N];
        out.copy_from_slice(field);
        return out;
    }
    let mut out = [0u8; N];
    if at < data.len() {
        out[..data.len() - at].copy_from_slice(&data[at..]);
    }
    out
}

fn get_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(read_be(data, at))
}

fn get_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_be(data, at))
}

fn get_u64(data: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(read_be(data, at))
}

/// A session-sender's test packet: what the reflector reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderPacket {
    /// The sender's sequence number.
    pub seq: u32,
    /// When the sender sent it (NTP or PTP format, see [`super::TimeFormat`]).
    pub timestamp: u64,
    /// The sender's error estimate (RFC 4656 §4.1.2: S, Z, scale, multiplier).
    pub error_estimate: u16,
    /// The RFC 8972 session-sender identifier (0 from RFC 8762-only senders).
    pub ssid: u16,
}

impl SenderPacket {
    /// Reads a sender packet; `None` when it is too short for `mode` (under
    /// 14 bytes open, under 112 authenticated). The HMAC is not checked here.
    pub fn decode(mode: Mode, data: &[u8]) -> Option<SenderPacket> {
        let min = match mode {
            Mode::Open => OPEN_MIN_LEN,
            Mode::Authenticated => AUTH_LEN,
        };
        if data.len() < min {
            return None;
        }
        Some(Header::read(mode.layout(), data).into_sender())
    }

    /// Writes the base packet into `buf[..mode.base_len()]`, MBZ fields and
    /// the HMAC field zeroed (sign it afterwards). Panics when `buf` is shorter.
    pub fn encode(&self, mode: Mode, buf: &mut [u8]) {
        buf[..mode.base_len()].fill(0);
        Header {
            seq: self.seq,
            timestamp: self.timestamp,
            error_estimate: self.error_estimate,
            ssid: self.ssid,
        }
        .write(mode.layout(), buf);
    }
}

/// The four fields that open every STAMP packet, sender's or reflector's.
struct Header {
    seq: u32,
    timestamp: u64,
    error_estimate: u16,
    ssid: u16,
}

impl Header {
    fn read(layout: &Layout, data: &[u8]) -> Header {
        Header {
            seq: get_u32(data, layout.seq),
            timestamp: get_u64(data, layout.timestamp),
            error_estimate: get_u16(data, layout.error),
            ssid: get_u16(data, layout.ssid),
        }
    }

    fn write(&self, layout: &Layout, buf: &mut [u8]) {
        put(buf, layout.seq, &self.seq.to_be_bytes());
        put(buf, layout.timestamp, &self.timestamp.to_be_bytes());
        put(buf, layout.error, &self.error_estimate.to_be_bytes());
        put(buf, layout.ssid, &self.ssid.to_be_bytes());
    }

    fn into_sender(self) -> SenderPacket {
        SenderPacket {
            seq: self.seq,
            timestamp: self.timestamp,
            error_estimate: self.error_estimate,
            ssid: self.ssid,
        }
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A session-reflector's reply (RFC 8762 §4.3.1, §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReflectedPacket {
    /// The reflector's sequence number: the sender's (stateless) or its own
    /// per session (stateful).
    pub seq: u32,
    /// When the reflector sent the reply.
    pub timestamp: u64,
    /// The reflector's error estimate.
    pub error_estimate: u16,
    /// The SSID, copied from the sender's packet.
    pub ssid: u16,
    /// When the reflector received the sender's packet.
    pub receive_timestamp: u64,
    /// The sender's sequence number, copied.
    pub sender_seq: u32,
    /// The sender's time stamp, copied.
    pub sender_timestamp: u64,
    /// The sender's error estimate, copied.
    pub sender_error_estimate: u16,
    /// The TTL / hop limit of the sender's packet as it arrived (255 when unknown).
    pub sender_ttl: u8,
}

impl ReflectedPacket {
    /// Reads a reply; `None` when shorter than the base packet of `mode`.
    /// The HMAC is not checked here.
    pub fn decode(mode: Mode, data: &[u8]) -> Option<ReflectedPacket> {
        if data.len() < mode.base_len() {
            return None;
        }
        let layout = mode.layout();
        let header = Header::read(layout, data);
        Some(ReflectedPacket {
            seq: header.seq,
            timestamp: header.timestamp,
            error_estimate: header.error_estimate,
            ssid: header.ssid,
            receive_timestamp: get_u64(data, layout.receive),
            sender_seq: get_u32(data, layout.sender_seq),
            sender_timestamp: get_u64(data, layout.sender_timestamp),
            sender_error_estimate: get_u16(data, layout.sender_error),
            sender_ttl: data[layout.sender_ttl],
        })
    }

    /// Writes the base packet into `buf[..mode.base_len()]`, MBZ fields and
    /// the HMAC field zeroed. Panics when `buf` is shorter.
    pub fn encode(&self, mode: Mode, buf: &mut [u8]) {
        let layout = mode.layout();
        buf[..mode.base_len()].fill(0);
        Header {
            seq: self.seq,
            timestamp: self.timestamp,
            error_estimate: self.error_estimate,
            ssid: self.ssid,
        }
        .write(layout, buf);
        put(buf, layout.receive, &self.receive_timestamp.to_be_bytes());
        put(buf, layout.sender_seq, &self.sender_seq.to_be_bytes());
        put(
            buf,
            layout.sender_timestamp,
            &self.sender_timestamp.to_be_bytes(),
        );
        put(
            buf,
            layout.sender_error,
            &self.sender_error_estimate.to_be_bytes(),
        );
        buf[layout.sender_ttl] = self.sender_ttl;
    }
}

/// RFC 8972 §4 TLV flags: U (unrecognized), M (malformed), I (integrity failed).
pub mod tlv_flags {
    /// The reflector does not know this TLV's type.
    pub const U: u8 = 0x80;
    /// The TLV's length runs past the packet: processing stopped there.
    pub const M: u8 = 0x40;
    /// The TLV's integrity check failed.
    pub const I: u8 = 0x20;
}

/// The Extra Padding TLV's type (RFC 8972 §4.1): understood, copied as is.
pub const TLV_EXTRA_PADDING: u8 = 1;

/// The Class of Service TLV's type (RFC 8972 §4.4).
pub const TLV_CLASS_OF_SERVICE: u8 = 4;

/// A Class of Service TLV's whole length: a 4-byte header and 4 bytes of value.
pub const CLASS_OF_SERVICE_LEN: usize = 8;

/// The Class of Service TLV (RFC 8972 §4.4, with erratum 8199): how a test
/// packet's DSCP fared each way. The sender asks for `dscp1` on the reply;
/// the reflector fills in the DSCP and ECN the request arrived with
/// (`dscp2`, `ecn`) and says in `rp` whether it used `dscp1` (0) or, its
/// policy refusing that, the DSCP received (1). The sender compares `dscp2`
/// with what it sent (the way out) and the reply's own DSCP with `rp`'s
/// answer (the way back).
///
/// ```text
/// |  DSCP1 (6)  |  DSCP2 (6)  | ECN (2) | RP (2) |     Reserved (16)     |
/// ```
///
/// The reserved bits are sent as zero (draft-ietf-ippm-stamp-cos-ecn puts
/// its reverse-path ECN fields there: zero means a reflector without them).
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
}

impl ClassOfService {
    /// The 4 value bytes.
    pub fn value(&self) -> [u8; 4] {
        [
            ((self.dscp1 & 0x3f) << 2) | ((self.dscp2 >> 4) & 0x03),
            ((self.dscp2 & 0x0f) << 4) | ((self.ecn & 0x03) << 2) | (self.rp & 0x03),
            0,
            0,
        ]
    }

    /// Reads the 4 value bytes (the reserved ones are ignored).
    pub fn from_value(value: [u8; 4]) -> ClassOfService {
        ClassOfService {
            dscp1: value[0] >> 2,
            dscp2: ((value[0] & 0x03) << 4) | (value[1] >> 4),
            ecn: (value[1] >> 2) & 0x03,
            rp: value[1] & 0x03,
        }
    }

    /// The whole TLV as a sender puts it after the base packet: flags clear,
    /// type 4, length 4, then the value.
    pub fn tlv(&self) -> [u8; CLASS_OF_SERVICE_LEN] {
        let v = self.value();
        [0, TLV_CLASS_OF_SERVICE, 0, 4, v[0], v[1], v[2], v[3]]
    }
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
    if tlvs.len() - at < 4 || tlvs[at..at + 4] == [0; 4] {
        return Step::End;
    }
    let len = usize::from(u16::from_be_bytes([tlvs[at + 2], tlvs[at + 3]]));
    if len > tlvs.len() - at - 4 {
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

/// What [`reflect_tlvs`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlvWalk {
    /// How many TLVs it walked.
    pub walked: usize,
    /// The DSCP the reply must be sent with: the first Class of Service
    /// TLV's DSCP1, when one was filled in.
    pub reply_dscp: Option<u8>,
}

/// The lowest DSCP of network control (CS6 = 48, CS7 = 56 and the codepoints
/// between and above): routers queue it ahead of all traffic, so a Class of
/// Service TLV cannot make the reflector send it — one unauthenticated packet
/// would otherwise aim priority traffic at any address.
pub const NETWORK_CONTROL_DSCP: u8 = 48;

/// The reflector's pass over the TLVs of a reply (the bytes after its base
/// packet, copied from the request), as RFC 8972 §4 asks of a reflector that
/// implements Extra Padding and Class of Service:
///
/// - Extra Padding is copied as it is.
/// - Class of Service (length 4) gets DSCP2 and ECN from `arrived_tos`, the
///   TOS byte the request arrived with, RP 0 (the reply goes with DSCP1,
///   which the result's `reply_dscp` carries, from the first such TLV) and
///   its reserved bytes zeroed. A DSCP1 of network control (48 and up) is
///   refused by policy: RP 1, and the reply goes with the DSCP received.
///   Without `arrived_tos` (the platform cannot read it, so cannot set the
///   reply's either) it is flagged U and left as it is: a half-filled TLV
///   would report a re-marking that never happened.
/// - A Class of Service TLV of another length is flagged M (malformed) and
///   left as it is; the walk goes on past it.
/// - Every other type is flagged U (unrecognised).
/// - A TLV whose length runs past the end is flagged M and ends the walk.
///
/// A tail too short for a TLV header (under 4 bytes) is left as it is, and
/// so is everything from an all-zero header on: that is zero padding (a
/// TWAMP-Light sender's, or an RFC 8762 sender's), not TLVs.
pub fn reflect_tlvs(tlvs: &mut [u8], arrived_tos: Option<u8>) -> TlvWalk {
    let mut at = 0;
    let mut walk = TlvWalk::default();
    loop {
        let (kind, len) = match step(tlvs, at) {
            Step::End => break,
            Step::Overrun => {
                walk.walked += 1;
                tlvs[at] |= tlv_flags::M;
                break;
            }
            Step::Tlv { kind, len } => (kind, len),
        };
        walk.walked += 1;
        let value = at + 4..at + 4 + len;
        match (kind, arrived_tos) {
            (TLV_EXTRA_PADDING, _) => {}
            (TLV_CLASS_OF_SERVICE, _) if len != CLASS_OF_SERVICE_LEN - 4 => {
                tlvs[at] |= tlv_flags::M;
            }
            (TLV_CLASS_OF_SERVICE, Some(tos)) => {
                let mut bytes = [0u8; 4];
                bytes.copy_from_slice(&tlvs[value.clone()]);
                let asked = ClassOfService::from_value(bytes);
                // Policy (RFC 8972 §4.4): network control is never sent on
                // request; the reply then goes as the request came (RP 1).
                let refused = asked.dscp1 >= NETWORK_CONTROL_DSCP;
                let answer = ClassOfService {
                    dscp1: asked.dscp1,
                    dscp2: tos >> 2,
                    ecn: tos & 0x03,
                    rp: u8::from(refused),
                };
                tlvs[value].copy_from_slice(&answer.value());
                walk.reply_dscp
                    .get_or_insert(if refused { tos >> 2 } else { asked.dscp1 });
            }
            _ => tlvs[at] |= tlv_flags::U,
        }
        at += 4 + len;
    }
    walk
}
