//! The probe wire format of the measured modes (ping, flood, rate).
//!
//! A probe is `size` bytes (16 ..= 65507): a 16-byte header — the sequence number
//! and the send time in nanoseconds of the sender's monotonic clock, both u64
//! big-endian — then a pattern derived from the sequence number, so every byte
//! of a reply can be checked without keeping a copy of what was sent. The echo
//! server never looks inside; only the client that sent a probe reads it back.
//!
//! [`verify`] checks a reply on its own (the pattern, the length). The client's
//! books check the rest: that the echoed send time is the one they recorded
//! for that sequence number, which also covers the header of a 16-byte probe.

use std::time::Instant;

/// Bytes of header: sequence (u64 BE) then send time in ns (u64 BE).
pub const HEADER_LEN: usize = 16;
/// The smallest probe: just the header.
pub const MIN_SIZE: usize = HEADER_LEN;
/// The largest probe: the largest UDP payload over IPv4.
pub const MAX_SIZE: usize = crate::net::MAX_UDP_PAYLOAD_V4;

/// The pattern byte at offset `i` of the probe whose seed is `seed`: cheap to
/// compute, different for neighbouring offsets, and cycling through all eight
/// bytes of the seed, so any 8 bytes of body name the sequence number exactly
/// and a reply with another probe's bytes or a shifted payload does not pass.
#[inline]
fn pattern_byte(seed: u64, i: usize) -> u8 {
    ((seed >> ((i & 7) * 8)) as u8).wrapping_add((i as u8).wrapping_mul(31)) ^ ((i >> 8) as u8)
}

/// A bijective mix of the sequence number (SplitMix64's finaliser): distinct
/// sequence numbers have distinct seeds, neighbours very different ones.
#[inline]
fn seed(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes probe `seq`, sent at `sent_ns`, into `buf` (its whole length is the probe).
pub fn fill(buf: &mut [u8], seq: u64, sent_ns: u64) {
    assert!(buf.len() >= HEADER_LEN, "a probe holds at least its header");
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    let s = seed(seq);
    let tail_at = HEADER_LEN + (buf.len() - HEADER_LEN) / 8 * 8;
    let mut words = buf[HEADER_LEN..].chunks_exact_mut(8);
    for (k, word) in words.by_ref().enumerate() {
        word.copy_from_slice(&pattern_word(s, HEADER_LEN + 8 * k).to_le_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b = pattern_byte(s, tail_at + i);
    }
}

/// The eight pattern bytes at offsets `at..at + 8` (`at` a multiple of 8),
/// little-endian: [`pattern_byte`] a word at a time, which is what lets a
/// flood fill and check its probes at memory speed. The eight offsets share
/// `at >> 8`, and their `i × 31` bytes are `at × 31` added to those of
/// 0..8, byte by byte (no carry between bytes, as `wrapping_add` on `u8`).
#[inline]
fn pattern_word(seed: u64, at: usize) -> u64 {
    debug_assert_eq!(at % 8, 0);
    /// `k × 31` for k in 0..8, one per byte.
    const STEPS: u64 = u64::from_le_bytes([0, 31, 62, 93, 124, 155, 186, 217]);
    let start = u64::from((at as u8).wrapping_mul(31)) * 0x0101_0101_0101_0101;
    let offsets = add_bytes(STEPS, start);
    add_bytes(seed, offsets) ^ (u64::from((at >> 8) as u8) * 0x0101_0101_0101_0101)
}

/// Adds two words byte by byte, each byte wrapping on its own (SWAR).
#[inline]
fn add_bytes(a: u64, b: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    ((a & !HIGH) + (b & !HIGH)) ^ ((a ^ b) & HIGH)
}

/// What a reply turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Exactly the probe that was sent.
    Intact {
        /// The probe's sequence number.
        seq: u64,
        /// The send time it carries, ns of the run's clock.
        sent_ns: u64,
    },
    /// Some byte differs from probe `seq` (header or body), or the reply is
    /// longer than the probe.
    Corrupt {
        /// The probe it was matched to.
        seq: u64,
    },
    /// Shorter than the probe (cut somewhere on the way) but long enough to say which.
    Truncated {
        /// The probe it was matched to.
        seq: u64,
    },
    /// Not one of ours: too short to carry a header.
    Foreign,
}

/// The sequence number and send time a reply's header claims (`None`: too
/// short for a header).
pub fn header(reply: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(reply.get(..8)?.try_into().expect("8 bytes"));
    let sent_ns = u64::from_be_bytes(reply.get(8..HEADER_LEN)?.try_into().expect("8 bytes"));
    Some((seq, sent_ns))
}

/// Whether the body of `reply`, as far as it goes and up to `size` bytes,
/// is the pattern of probe `seq`.
pub fn body_matches(reply: &[u8], seq: u64, size: usize) -> bool {
    let s = seed(seq);
    let Some(body) = reply.get(HEADER_LEN..reply.len().min(size)) else {
        return true;
    };
    let words = body.chunks_exact(8);
    let (tail, tail_at) = (words.remainder(), HEADER_LEN + body.len() / 8 * 8);
    words
        .enumerate()
        .all(|(k, word)| word == pattern_word(s, HEADER_LEN + 8 * k).to_le_bytes())
        && tail
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern_byte(s, tail_at + i))
}

/// Checks a reply against what probe `size` bytes long must look like, on its
/// own: its length and the pattern of the sequence number it claims. (Whether
/// the send time it carries is the one sent is for the sender's records.)
pub fn verify(reply: &[u8], size: usize) -> Check {
    let Some((seq, sent_ns)) = header(reply) else {
        return Check::Foreign;
    };
    match (body_matches(reply, seq, size), reply.len().cmp(&size)) {
        (true, std::cmp::Ordering::Equal) => Check::Intact { seq, sent_ns },
        (true, std::cmp::Ordering::Less) => Check::Truncated { seq },
        _ => Check::Corrupt { seq },
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

    /// `body_matches` as it was, a byte at a time: the reference.
    fn body_matches_bytewise(reply: &[u8], seq: u64, size: usize) -> bool {
        let s = seed(seq);
        reply
            .iter()
            .take(size)
            .enumerate()
            .skip(HEADER_LEN)
            .all(|(i, &b)| b == pattern_byte(s, i))
    }

    /// Every size across the word and 256-byte seams, every cut of the
    /// reply (shorter than the header, than a word, longer than the probe)
    /// and a flipped byte at every offset: the word-wise check answers as
    /// the byte-wise one, and no flipped body byte passes.
    #[test]
    fn the_word_wise_check_answers_as_the_byte_wise_one_for_every_cut_and_flip() {
        let sizes = (MIN_SIZE..=80)
            .chain(250..=270)
            .chain([1400, MAX_SIZE - 7, MAX_SIZE]);
        for size in sizes {
            let seq = size as u64 * 31 + 5;
            let mut full = probe(size, seq);
            full.extend_from_slice(&[0xAA; 9]);
            let cuts: Vec<usize> = if size <= 300 {
                (0..full.len()).collect()
            } else {
                vec![0, 7, 15, 16, 17, 23, 24, size - 1, size, size + 1, size + 9]
            };
            for &len in &cuts {
                let reply = &full[..len];
                assert_eq!(
                    body_matches(reply, seq, size),
                    body_matches_bytewise(reply, seq, size),
                    "size {size} cut at {len}"
                );
            }
            let flips: Vec<usize> = if size <= 300 {
                (HEADER_LEN..size).collect()
            } else {
                (HEADER_LEN..size).step_by(61).chain([size - 1]).collect()
            };
            for at in flips {
                let mut bad = full[..size].to_vec();
                bad[at] ^= 0x10;
                assert!(!body_matches(&bad, seq, size), "size {size} flip at {at}");
                assert_eq!(
                    verify(&bad, size),
                    Check::Corrupt { seq },
                    "size {size} flip at {at}"
                );
                bad.truncate(at + 1);
                assert!(
                    !body_matches(&bad, seq, size),
                    "size {size} cut after a flip at {at}"
                );
            }
        }
    }

    #[test]
    fn the_pattern_a_word_at_a_time_is_the_pattern_byte_by_byte() {
        for seq in [0, 1, 42, u64::MAX, 1 << 40] {
            let s = seed(seq);
            for at in (0..70_000).step_by(8) {
                let bytes: Vec<u8> = (at..at + 8).map(|i| pattern_byte(s, i)).collect();
                assert_eq!(
                    pattern_word(s, at).to_le_bytes().as_slice(),
                    bytes,
                    "seq {seq} at {at}"
                );
            }
            let mut buf = vec![0u8; 1000];
            fill(&mut buf, seq, 9);
            for (i, &b) in buf.iter().enumerate().skip(HEADER_LEN) {
                assert_eq!(b, pattern_byte(s, i), "seq {seq} byte {i}");
            }
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
    fn eight_bytes_of_body_name_the_sequence_number() {
        // Neighbours and numbers differing in one bit: no two share 8 bytes.
        let a = probe(24, 1 << 40);
        for other in (0..64)
            .map(|b| (1u64 << 40) ^ (1 << b))
            .chain([(1 << 40) + 1])
        {
            assert!(!body_matches(&a, other, 24), "{other}");
        }
        assert!(body_matches(&a, 1 << 40, 24));
    }

    #[test]
    fn another_probes_payload_does_not_pass() {
        let size = 64;
        let mut buf = probe(size, 7);
        buf[..8].copy_from_slice(&8u64.to_be_bytes());
        assert_eq!(verify(&buf, size), Check::Corrupt { seq: 8 });
    }

    #[test]
    fn short_replies_are_truncated_tiny_ones_foreign_and_long_ones_corrupt() {
        let buf = probe(100, 3);
        assert_eq!(verify(&buf[..60], 100), Check::Truncated { seq: 3 });
        assert_eq!(verify(&buf[..16], 100), Check::Truncated { seq: 3 });
        assert_eq!(verify(&buf[..15], 100), Check::Foreign);
        assert_eq!(verify(b"", 100), Check::Foreign);
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(verify(&long, 100), Check::Corrupt { seq: 3 });
        assert_eq!(header(&buf), Some((3, 1234)));
        assert_eq!(header(&buf[..15]), None);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let clock = Clock::new();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
    }
}
