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

pub use super::direct::{DIRECT_MEASUREMENT_LEN, DirectMeasurement, TLV_DIRECT_MEASUREMENT};
pub use super::tlv::*;
