//! The probe wire format of the measured modes (ping, flood, rate).
//!
//! A probe is `size` bytes (16 ..= 65507): a 16-byte header — the sequence number
//! and the send time in nanoseconds of the sender's monotonic clock, both u64
//! big-endian — then a pattern derived from the sequence number, so every byte
//! of a reply can be checked without keeping a copy of what was sent. The echo
//! server never looks inside; only the client that sent a probe reads it back.

use std::time::Instant;

/// Bytes of header: sequence (u64 BE) then send time in ns (u64 BE).
pub const HEADER_LEN: usize = 16;
/// The smallest probe: just the header.
pub const MIN_SIZE: usize = HEADER_LEN;
/// The largest probe: the largest UDP payload over IPv4.
pub const MAX_SIZE: usize = crate::net::MAX_UDP_PAYLOAD_V4;

/// The pattern byte at offset `i` of probe `seq`: cheap to compute, different
/// for neighbouring sequence numbers and offsets, so a reply with bytes from
/// another probe or a shifted payload does not pass.
#[inline]
fn pattern_byte(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31)) ^ ((i >> 8) as u8)
}

#[inline]
fn seed(seq: u64) -> u8 {
    (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Writes probe `seq`, sent at `sent_ns`, into `buf` (its whole length is the probe).
pub fn fill(buf: &mut [u8], seq: u64, sent_ns: u64) {
    assert!(buf.len() >= HEADER_LEN, "a probe holds at least its header");
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    let s = seed(seq);
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = pattern_byte(s, i);
    }
}

/// Rewrites only the send time of a probe already filled for its sequence
/// number (the pattern does not depend on the time).
pub fn stamp(buf: &mut [u8], sent_ns: u64) {
    buf[8..16].copy_from_slice(&sent_ns.to_be_bytes());
}

/// What a reply turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Exactly the probe that was sent.
    Intact { seq: u64, sent_ns: u64 },
    /// Right length, but some byte after the header differs.
    Corrupt { seq: u64 },
    /// Shorter than the probe (cut somewhere on the way) but long enough to say which.
    Truncated { seq: u64 },
    /// Not one of ours: too short to carry a header, or longer than any probe.
    Foreign,
}

/// Checks a reply against what probe `size` bytes long must look like.
pub fn verify(reply: &[u8], size: usize) -> Check {
    if reply.len() < HEADER_LEN || reply.len() > size {
        return Check::Foreign;
    }
    let seq = u64::from_be_bytes(reply[..8].try_into().expect("8 bytes"));
    let sent_ns = u64::from_be_bytes(reply[8..16].try_into().expect("8 bytes"));
    let s = seed(seq);
    let pattern_ok = reply
        .iter()
        .enumerate()
        .skip(HEADER_LEN)
        .all(|(i, &b)| b == pattern_byte(s, i));
    match (pattern_ok, reply.len() == size) {
        (true, true) => Check::Intact { seq, sent_ns },
        (true, false) => Check::Truncated { seq },
        (false, _) => Check::Corrupt { seq },
    }
}

/// The clock probes carry: nanoseconds since a process-wide origin, monotonic.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting at zero now.
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `ns` after the origin.
    pub fn instant(&self, ns: u64) -> Instant {
        self.origin + std::time::Duration::from_nanos(ns)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(size: usize, seq: u64) -> Vec<u8> {
        let mut buf = vec![0u8; size];
        fill(&mut buf, seq, 1234);
        buf
    }

    #[test]
    fn every_size_round_trips_intact() {
        let sizes = (MIN_SIZE..=2048)
            .chain((2049..=MAX_SIZE).step_by(997))
            .chain([MAX_SIZE]);
        for size in sizes {
            let seq = size as u64 * 7919;
            let buf = probe(size, seq);
            assert_eq!(
                verify(&buf, size),
                Check::Intact { seq, sent_ns: 1234 },
                "size {size}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_header_is_corruption() {
        let size = 1400;
        let clean = probe(size, 42);
        for i in HEADER_LEN..size {
            let mut buf = clean.clone();
            buf[i] ^= 0x01;
            assert_eq!(verify(&buf, size), Check::Corrupt { seq: 42 }, "byte {i}");
        }
    }

    #[test]
    fn another_probes_payload_does_not_pass() {
        let size = 64;
        let mut buf = probe(size, 7);
        buf[..8].copy_from_slice(&8u64.to_be_bytes());
        assert_eq!(verify(&buf, size), Check::Corrupt { seq: 8 });
    }

    #[test]
    fn short_replies_are_truncated_and_tiny_or_long_ones_foreign() {
        let buf = probe(100, 3);
        assert_eq!(verify(&buf[..60], 100), Check::Truncated { seq: 3 });
        assert_eq!(verify(&buf[..16], 100), Check::Truncated { seq: 3 });
        assert_eq!(verify(&buf[..15], 100), Check::Foreign);
        assert_eq!(verify(b"", 100), Check::Foreign);
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(verify(&long, 100), Check::Foreign);
    }

    #[test]
    fn stamping_changes_only_the_time() {
        let mut buf = probe(64, 9);
        stamp(&mut buf, 99);
        assert_eq!(
            verify(&buf, 64),
            Check::Intact {
                seq: 9,
                sent_ns: 99
            }
        );
    }

    #[test]
    fn the_clock_is_monotonic() {
        let clock = Clock::new();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
        assert!(clock.instant(a) <= std::time::Instant::now());
    }
}
