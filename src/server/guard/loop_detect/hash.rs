//! The payload hashes of loop detection: a sketch of head and tail, and a
//! fast full hash (wyhash's mixer and constants).

/// 64 bits folded to 32.
#[inline]
pub(super) fn fold(h: u64) -> u32 {
    h as u32 ^ (h >> 32) as u32
}

/// The 128-bit product of two words, folded to 64 bits (wyhash's mixer),
/// as the tables' keyed hash uses it.
pub(super) use crate::table::mix;

/// Fixed odd constants of the payload hashes (wyhash's).
pub(super) const K: [u64; 4] = [
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
];

#[inline]
pub(super) fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// `bytes` zero-padded to 16 bytes, as two words.
#[inline]
pub(super) fn padded(bytes: &[u8]) -> (u64, u64) {
    let mut block = [0u8; 16];
    block[..bytes.len()].copy_from_slice(bytes);
    (word(&block, 0), word(&block, 8))
}

/// A cheap stand-in for the payload, in two halves: a hash of its first 16
/// bytes (the head) and one of its last 16 and its length (the tail).
/// Equal payloads have equal sketches; unequal ones usually differ already
/// here (a probe's sequence number is in its first bytes). Under 16 bytes
/// the head is the whole payload and the tail its length alone.
#[inline]
pub(super) fn ends(payload: &[u8]) -> (u64, u64) {
    let len = payload.len();
    let ((a, b), (c, d)) = if len >= 16 {
        (
            (word(payload, 0), word(payload, 8)),
            (word(payload, len - 16), word(payload, len - 8)),
        )
    } else {
        (padded(payload), (0, 0))
    };
    (
        mix(a ^ K[0], b ^ K[1]),
        mix(c ^ K[2], d ^ K[3] ^ len as u64),
    )
}

/// The sketch of the payload as one word (tests).
#[cfg(test)]
pub(super) fn sketch(payload: &[u8]) -> u64 {
    let (head, tail) = ends(payload);
    head ^ tail
}

/// A fast 64-bit hash of every byte of `payload`: four independent lanes of
/// 16 bytes each per step, so the multiplies overlap (about 17 GB/s here).
/// Not keyed: a collision could only make a sender's own datagrams look equal.
pub(super) fn full_hash(payload: &[u8]) -> u64 {
    let mut lanes = K;
    let mut blocks = payload.chunks_exact(64);
    for block in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = mix(word(block, 16 * i) ^ K[i], word(block, 16 * i + 8) ^ *lane);
        }
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(16) ^ lanes[2].rotate_left(32) ^ lanes[3].rotate_left(48);
    let mut pairs = blocks.remainder().chunks_exact(16);
    for pair in &mut pairs {
        h = mix(word(pair, 0) ^ K[1], word(pair, 8) ^ h);
    }
    let (a, b) = padded(pairs.remainder());
    h = mix(a ^ K[2], b ^ h);
    mix(h ^ K[3], payload.len() as u64 ^ K[0])
}
