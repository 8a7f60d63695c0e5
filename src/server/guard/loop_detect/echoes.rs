//! The echo table of loop detection: what went out to which peer lately, as
//! 8-byte tagged entries in 8-way sets of one cache line, and the lookups
//! that tell a return or a near-copy.

use super::hash::{K, fold, full_hash, mix};
use super::{MAX_GROWTH, RETURN_WINDOW_MS, WAYS};

/// A datagram echoed recently: its tag and when, 8 bytes so that a set's
/// eight fill one cache line, the only one a lookup of distinct traffic reads.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Echoed {
    /// Keyed hash of the peer and the payload, folded to 32 bits; 0 marks an
    /// empty slot. A *sketch* entry (low bit 0) hashes the payload's sketch
    /// and says "something of this length, head and tail was echoed to this
    /// peer"; a *payload* entry (low bit 1) hashes the sketch and the full
    /// hash and stands for one payload. Two payloads with one tag only cost a
    /// full hash or, for payload entries (odds 2^-29 a lookup), one step of
    /// a streak that needs [`LOOP_STREAK`](super::LOOP_STREAK) in a row.
    pub(super) tag: u32,
    /// When it was last echoed, in ms of the injected clock (wraps every 49 days).
    pub(super) seen_ms: u32,
}

/// One set of the echo table: one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
pub(super) struct EchoSet {
    pub(super) echoes: [Echoed; WAYS],
}

/// Whether a datagram is the return of one we echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Return {
    /// Equal to a recent echo to the same peer, every byte (by hash).
    Yes,
    /// Matches no recent echo to this peer: new, or the first repeat of one
    /// whose full hash was never taken (recorded now; the next one decides).
    No,
}

/// A payload's sketch, keyed by its peer: hashes of its head (first 16
/// bytes) and its tail (last 16 bytes and length), and its length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sketch {
    pub(super) head: u64,
    pub(super) tail: u64,
    pub(super) len: u16,
}

/// Whether a datagram is a near-copy of one echoed to the same peer lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Near {
    /// Like nothing we sent it lately.
    No,
    /// Same length, and the same head or the same tail (or both).
    Same,
    /// The same head and 1 to [`MAX_GROWTH`] bytes longer.
    Grown,
}

/// The low two bits of a tag: its kind (0 is the empty slot's tag).
pub(super) const KIND: u32 = 3;
pub(super) const SKETCH: u32 = 1;
pub(super) const PAYLOAD: u32 = 2;
pub(super) const HEAD: u32 = 3;
/// The third bit: a sketch entry that sent a payload to its own entry
/// already ("resolved"), or a payload entry seen twice ("confirmed").
pub(super) const SEEN_TWICE: u32 = 4;
/// A sketch entry's tail check (the rest of its tag is a head check).
pub(super) const TAIL_BITS: u32 = 0x0003_fff8;
/// A head entry's head check (the rest of its tag is the length).
pub(super) const HEAD_BITS: u32 = 0x0000_fff8;

/// Looks the payload (sketched) up among the recent echoes to its peer,
/// records it as echoed now, and says whether it is a return of one and
/// whether it is a near-copy of one.
///
/// Three kinds of entries, each in the set its own hash picks:
///
/// - a *sketch* entry, in the set of the tail: "this length, head and tail
///   went to this peer lately". Read for every datagram: no entry with its
///   tail check means no near-copy by the tail; no exact match means nothing
///   like it went out lately, and the full hash is not paid for.
/// - a *head* entry, in the set of the head, with the length: read for
///   every datagram, for near-copies by the head (a counter at the end, an
///   appended byte).
/// - a *payload* entry, in the set of the sketch and the full hash, made on
///   a sketch hit: these exact bytes. So every distinct payload has an entry
///   of its own, however many share a sketch, and a new one never disturbs
///   another's.
///
/// As before the first repeat of a payload only confirms it: a payload entry
/// answers [`Return::Yes`] once it was seen twice. The first payload to hit
/// a new sketch entry is taken for the one that made it (seen twice, then);
/// any other with that sketch makes its entry at its first sighting. Check
/// bits are 13 to 15 bits wide: a false near-copy costs one step of a
/// budget that any unlike datagram resets; a false sketch match costs a
/// full hash.
pub(super) fn note_echo(
    echoes: &mut [EchoSet],
    sketch: &Sketch,
    payload: &[u8],
    now_ms: u32,
) -> (Return, Near) {
    let mask = echoes.len() - 1;
    // Every datagram's head is recorded (a loop's datagrams may come one
    // in a call now and together the next time); only the first of a call
    // spends the budget (see `check`).
    let mut near = near_by_head(&mut echoes[sketch.head as usize & mask], sketch, now_ms);
    // By the tail (and length), and the sketch itself.
    let tail_check = fold(sketch.tail) & TAIL_BITS;
    let sketch_tag = SKETCH | tail_check | (fold(sketch.head) & !(TAIL_BITS | KIND | SEEN_TWICE));
    let set = &mut echoes[sketch.tail as usize & mask];
    let mut by_tail = false;
    let sketch_way = visit(set, sketch_tag, now_ms, |tag| {
        by_tail |= tag & KIND == SKETCH && tag & TAIL_BITS == tail_check;
    });
    if by_tail && near == Near::No {
        near = Near::Same;
    }
    let Ok(way) = sketch_way else {
        return (Return::No, near);
    };
    let resolved = set.echoes[way].tag & SEEN_TWICE != 0;
    set.echoes[way].tag |= SEEN_TWICE;
    let whole = mix(
        sketch.head ^ sketch.tail.rotate_left(32) ^ K[1],
        full_hash(payload),
    );
    // Made by the first payload to hit its sketch: taken for its second
    // sighting, so confirmed at once.
    let payload_tag =
        (fold(whole) & !(KIND | SEEN_TWICE)) | PAYLOAD | if resolved { 0 } else { SEEN_TWICE };
    let set = &mut echoes[whole as usize & mask];
    let returned = match touch(set, payload_tag, now_ms) {
        Ok(way) if set.echoes[way].tag & SEEN_TWICE != 0 => Return::Yes,
        Ok(way) => {
            set.echoes[way].tag |= SEEN_TWICE;
            Return::No
        }
        Err(_) => Return::No,
    };
    (returned, near)
}

/// Whether the payload is a near-copy by its head of one echoed to its peer
/// lately (same head, same length or up to [`MAX_GROWTH`] bytes more), and
/// its head entry in `set`, seen now.
#[inline]
pub(super) fn near_by_head(set: &mut EchoSet, sketch: &Sketch, now_ms: u32) -> Near {
    let head_check = fold(sketch.head) & HEAD_BITS;
    let head_tag = HEAD | head_check | u32::from(sketch.len) << 16;
    // The costlier verdict wins: an appended byte may also make a datagram
    // the length of another in flight, alike at the end.
    let mut near = Near::No;
    let _ = visit(set, head_tag, now_ms, |tag| {
        if tag & KIND == HEAD && tag & HEAD_BITS == head_check {
            match sketch.len.checked_sub((tag >> 16) as u16) {
                Some(0) if near == Near::No => near = Near::Same,
                Some(grown) if grown > 0 && usize::from(grown) <= MAX_GROWTH => near = Near::Grown,
                _ => {}
            }
        }
    });
    near
}

/// `Ok` with the way of the entry of `set` that holds `tag` (whatever its
/// [`SEEN_TWICE`] bit), when it was seen less than [`RETURN_WINDOW`](super::RETURN_WINDOW) ago.
/// Otherwise `Err` with the way that holds `tag` now, as new: a stale entry
/// starts again, a newcomer evicts the stalest. Either way it is seen now.
#[inline]
pub(super) fn touch(set: &mut EchoSet, tag: u32, now_ms: u32) -> Result<usize, usize> {
    visit(set, tag, now_ms, |_| {})
}

/// [`touch`], calling `recent` first with the tag of every entry seen less
/// than [`RETURN_WINDOW`](super::RETURN_WINDOW) ago: one pass over the set for all of it.
#[inline]
pub(super) fn visit(
    set: &mut EchoSet,
    tag: u32,
    now_ms: u32,
    mut recent: impl FnMut(u32),
) -> Result<usize, usize> {
    let mut found = None;
    let (mut victim, mut oldest) = (0, 0u32);
    for (way, e) in set.echoes.iter().enumerate() {
        let age = if e.tag == 0 {
            u32::MAX
        } else {
            now_ms.wrapping_sub(e.seen_ms)
        };
        if age < RETURN_WINDOW_MS {
            recent(e.tag);
        }
        if e.tag | SEEN_TWICE == tag | SEEN_TWICE {
            found = Some((way, age < RETURN_WINDOW_MS));
        }
        if age > oldest || way == 0 {
            (victim, oldest) = (way, age);
        }
    }
    let way = match found {
        Some((way, true)) => {
            set.echoes[way].seen_ms = now_ms;
            return Ok(way);
        }
        Some((way, false)) => way,
        None => victim,
    };
    set.echoes[way] = Echoed {
        tag,
        seen_ms: now_ms,
    };
    Err(way)
}
