//! The echo table of loop detection: what went out to which peer lately, as
//! 8-byte tagged entries in 8-way sets of one cache line, and the lookups
//! that tell a return or a near-copy.

use super::hash::{K, fold, full_hash, mix};
use super::{MAX_GROWTH, RETURN_WINDOW_MS, WAYS};
use crate::sys::U32x8;

/// One set of the echo table: eight entries in one cache line (a lookup of
/// distinct traffic reads three: its head's, its tail's and its sketch's
/// set). Tags and times sit apart (32 bytes each) so that a lookup compares
/// all eight at once.
///
/// A tag is a keyed hash of the peer and the payload, folded to 32 bits; 0
/// marks an empty slot. Its low bits say its kind: a *sketch* entry
/// ("something of this length, head and tail was echoed to this peer"), a
/// *head* or *tail* entry (this end and length) or a *payload* entry
/// (these exact bytes; see [`note_echo`]). Two payloads with one tag only
/// cost a full hash or, for payload entries (odds 2^-29 a lookup), one step
/// of a streak that needs
/// [`LOOP_STREAK`](super::LOOP_STREAK) in a row. A time is when the entry
/// was last seen, in ms of the injected clock (wraps every 49 days).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct EchoSet {
    pub(super) tags: [u32; WAYS],
    pub(super) seen_ms: [u32; WAYS],
}

impl EchoSet {
    /// Bit `i` set: way `i` holds an entry seen less than
    /// [`RETURN_WINDOW`](super::RETURN_WINDOW) ago. The eight ways are
    /// compared at once, as in the other scans of a set.
    #[inline]
    fn fresh(&self, now_ms: u32) -> u8 {
        let age = U32x8::splat(now_ms).wrapping_sub(U32x8::load(&self.seen_ms));
        let empty = U32x8::load(&self.tags).eq(U32x8::splat(0));
        age.lt(U32x8::splat(RETURN_WINDOW_MS)).and_not(empty).bits()
    }

    /// Bit `i` set: way `i`'s tag, masked by `bits`, is `value`.
    #[inline]
    fn matching(&self, bits: u32, value: u32) -> u8 {
        let tags = U32x8::load(&self.tags).and(U32x8::splat(bits));
        tags.eq(U32x8::splat(value)).bits()
    }

    /// The way a newcomer takes: an empty or stale one if any (`fresh` is
    /// [`Self::fresh`]), else the stalest (the first of the stalest, on a
    /// tie); never one in `kept`, the ways this check wrote already. An
    /// entry just written would be lost to the next write of the same check
    /// (the head to the tail, the sketch to the payload): `fresh` may predate
    /// it, and a set whose ways were all seen within this millisecond ties on
    /// age.
    #[inline]
    fn victim(&self, fresh: u8, kept: u8, now_ms: u32) -> usize {
        let free = !(fresh | kept);
        if free != 0 {
            return free.trailing_zeros() as usize;
        }
        // All fresh or kept, so under RETURN_WINDOW_MS old: the age has a
        // bit to spare for "may go", which breaks ties against the ways kept.
        let age = U32x8::splat(now_ms).wrapping_sub(U32x8::load(&self.seen_ms));
        age.shl1().or(U32x8::from_bits(!kept)).first_max()
    }
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

impl Sketch {
    /// A hash of the whole sketch: its entry's set and tag.
    #[inline]
    pub(super) fn whole(&self) -> u64 {
        mix(self.head ^ K[2], self.tail ^ K[3])
    }
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
/// Head and tail entries: kind 3, told apart by the third bit.
pub(super) const HEAD: u32 = 3;
pub(super) const TAIL: u32 = 7;
/// The third bit of sketch and payload entries: a sketch entry that sent a
/// payload to its own entry already ("resolved"), or a payload entry seen
/// twice ("confirmed").
pub(super) const SEEN_TWICE: u32 = 4;
/// A head or tail entry's check of its end (the rest of its tag is the
/// length).
pub(super) const END_BITS: u32 = 0x0000_fff8;

/// Looks the payload (sketched) up among the recent echoes to its peer,
/// records it as echoed now, and says whether it is a return of one and,
/// when `want_near` (only a peer's first datagram of a receive call spends
/// the near-copy budget), whether it is a near-copy of one ([`Near::No`]
/// otherwise).
///
/// Three sets are read for every datagram: the one its head picks, the one
/// its tail picks and the one its sketch picks, with four kinds of entries:
///
/// - a *head* entry in the head's set and a *tail* entry in the tail's
///   (end check and length): "something with this head (tail) and length
///   went to this peer lately", for near-copies (a counter at one end, an
///   appended byte). One entry per distinct end, refreshed, so a peer whose
///   datagrams all share an end (a constant payload behind a counter) keeps
///   one entry for it, not eight.
/// - a *sketch* entry, "this length, head and tail went to this peer
///   lately", in the set of the sketch's own hash: datagrams that share an
///   end share that end's set, never their sketches' (issue 19: nine or
///   more alike at one end used to evict each other's sketch from the set
///   of that end, and looped for ever). No sketch match: nothing like it
///   went out lately, and the full hash is not paid for.
/// - a *payload* entry, in the set of the sketch and the full hash, made on
///   a sketch hit: these exact bytes. So every distinct payload has an entry
///   of its own, however many share a sketch, and a new one never disturbs
///   another's.
///
/// As before the first repeat of a payload only confirms it: a payload entry
/// answers [`Return::Yes`] once it was seen twice. The first payload to hit
/// a new sketch entry is taken for the one that made it (seen twice, then);
/// any other with that sketch makes its entry at its first sighting. Check
/// bits are 13 to 30 bits wide: a false near-copy costs one step of a
/// budget that any unlike datagram resets; a false sketch match costs a
/// full hash.
pub(super) fn note_echo(
    echoes: &mut [EchoSet],
    sketch: &Sketch,
    payload: &[u8],
    now_ms: u32,
    want_near: bool,
) -> (Return, Near) {
    let mask = echoes.len() - 1;
    let (a, b) = (sketch.head as usize & mask, sketch.tail as usize & mask);
    let len = u32::from(sketch.len) << 16;
    let (fresh_a, fresh_b) = (echoes[a].fresh(now_ms), echoes[b].fresh(now_ms));
    let tail_tag = TAIL | end_check(sketch.tail) | len;
    let mut near = Near::No;
    if want_near {
        near = near_by_head(&echoes[a], sketch, fresh_a);
        if near == Near::No && echoes[b].matching(u32::MAX, tail_tag) & fresh_b != 0 {
            near = Near::Same;
        }
    }
    // The ways written so far, by set: a later write of this check that
    // falls in the same set keeps off them (see `EchoSet::victim`).
    let mut written = [(usize::MAX, 0usize); 3];
    let kept = |written: &[(usize, usize)], set: usize| {
        written
            .iter()
            .filter(|&&(at, _)| at == set)
            .fold(0u8, |kept, &(_, way)| kept | 1 << way)
    };
    // Every datagram's ends are recorded (a loop's datagrams may come one
    // in a call now and together the next time); only the first of a call
    // spends the budget (see `check`).
    // One entry per distinct end: refreshed when there, else made.
    let head_tag = HEAD | end_check(sketch.head) | len;
    let (Ok(head_way) | Err(head_way)) =
        touch(&mut echoes[a], head_tag, u32::MAX, fresh_a, 0, now_ms);
    written[0] = (a, head_way);
    // When the tail's set is the head's, `fresh_b` predates the head's write:
    // `kept` keeps the tail off it.
    let (Ok(tail_way) | Err(tail_way)) = touch(
        &mut echoes[b],
        tail_tag,
        u32::MAX,
        fresh_b,
        kept(&written, b),
        now_ms,
    );
    written[1] = (b, tail_way);
    // The sketch, in the set of its own hash: datagrams alike at one end
    // share that end's set, never their sketches' (issue 19).
    let whole_sketch = sketch.whole();
    let sketch_tag = (fold(whole_sketch) & !(KIND | SEEN_TWICE)) | SKETCH;
    let s = whole_sketch as usize & mask;
    let set = &mut echoes[s];
    let fresh = set.fresh(now_ms);
    let Ok(way) = touch(
        set,
        sketch_tag,
        !SEEN_TWICE,
        fresh,
        kept(&written, s),
        now_ms,
    ) else {
        return (Return::No, near);
    };
    written[2] = (s, way);
    let resolved = set.tags[way] & SEEN_TWICE != 0;
    set.tags[way] |= SEEN_TWICE;
    let whole = mix(whole_sketch ^ K[1], full_hash(payload));
    // Made by the first payload to hit its sketch: taken for its second
    // sighting, so confirmed at once.
    let payload_tag =
        (fold(whole) & !(KIND | SEEN_TWICE)) | PAYLOAD | if resolved { 0 } else { SEEN_TWICE };
    let p = whole as usize & mask;
    let kept = kept(&written, p);
    let set = &mut echoes[p];
    let fresh = set.fresh(now_ms);
    let returned = match touch(set, payload_tag, !SEEN_TWICE, fresh, kept, now_ms) {
        Ok(way) if set.tags[way] & SEEN_TWICE != 0 => Return::Yes,
        Ok(way) => {
            set.tags[way] |= SEEN_TWICE;
            Return::No
        }
        Err(_) => Return::No,
    };
    (returned, near)
}

/// A head or tail entry's check bits of the end's hash.
#[inline]
fn end_check(end: u64) -> u32 {
    fold(end) & END_BITS
}

/// Whether the payload is a near-copy by its head of one echoed to its peer
/// lately (same head, same length or up to [`MAX_GROWTH`] bytes more), by
/// the head entries of its head's set (`fresh`: [`EchoSet::fresh`]).
#[inline]
pub(super) fn near_by_head(set: &EchoSet, sketch: &Sketch, fresh: u8) -> Near {
    // Heads like this one (rare for distinct traffic): the costlier verdict
    // wins, since an appended byte may also make a datagram the length of
    // another in flight, alike at the end.
    let mut alike = set.matching(TAIL | END_BITS, HEAD | end_check(sketch.head)) & fresh;
    let mut near = Near::No;
    while alike != 0 {
        let way = alike.trailing_zeros() as usize;
        alike &= alike - 1;
        match sketch.len.checked_sub((set.tags[way] >> 16) as u16) {
            Some(0) if near == Near::No => near = Near::Same,
            Some(grown) if grown > 0 && usize::from(grown) <= MAX_GROWTH => near = Near::Grown,
            _ => {}
        }
    }
    near
}

/// `Ok` with the way of the entry of `set` that holds `tag` (compared
/// under `same`: sketch and payload entries match whatever their
/// [`SEEN_TWICE`] bit), when it was seen less than
/// [`RETURN_WINDOW`](super::RETURN_WINDOW) ago. Otherwise `Err` with the
/// way that holds `tag` now, as new: a stale entry starts again, a newcomer
/// takes an empty or stale slot or evicts the stalest. Either way it is seen
/// now. `fresh` is [`EchoSet::fresh`]'s mask, `kept` the ways this check
/// wrote already.
#[inline(always)]
pub(super) fn touch(
    set: &mut EchoSet,
    tag: u32,
    same: u32,
    fresh: u8,
    kept: u8,
    now_ms: u32,
) -> Result<usize, usize> {
    let found = set.matching(same, tag & same);
    if found & fresh != 0 {
        let way = (found & fresh).trailing_zeros() as usize;
        set.seen_ms[way] = now_ms;
        return Ok(way);
    }
    // A stale entry of its own starts again; else a newcomer.
    let way = if found != 0 {
        found.trailing_zeros() as usize
    } else {
        set.victim(fresh, kept, now_ms)
    };
    set.seen_ms[way] = now_ms;
    set.tags[way] = tag;
    Err(way)
}
