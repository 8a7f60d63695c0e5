//! Echo-loop detection: a peer that keeps sending back exactly the bytes this
//! server just echoed to it is in a loop with us, and is not answered for a while.
//!
//! Pure logic, no I/O, the clock injected (nanoseconds, like
//! [`RateLimiter`](crate::server::guard::RateLimiter)), memory fixed at creation.
//!
//! # Why
//!
//! Two echo services bounce one forged datagram between them forever
//! (CVE-1999-0103, the 2024 "Loop DoS", CVE-2024-2169), and a server bound to a
//! wildcard address can be made to echo to itself. The port rules of
//! [`guard`](crate::server::guard) cannot see a peer on an ordinary port. What every loop
//! shows is its content: an echo server sends a peer exactly what it received
//! from it, so in a loop the bytes that come from a peer are the bytes we
//! recently sent that peer, again and again. With `k` datagrams circulating the
//! peer's datagrams repeat with period `k`; one forged datagram gives `k = 1`.
//!
//! # The rule
//!
//! A datagram from a peer *returns* when it is byte for byte one we echoed to the
//! same address and port less than [`RETURN_WINDOW`] (0.9 s) ago. A peer whose
//! last [`LOOP_STREAK`] (100) datagrams in a row all returned is in a loop: the
//! first verdict is [`LoopVerdict::Loop`] with `first: true` (log one warning),
//! and everything it sends during the cool-down is dropped — the loop's
//! datagrams die within one round trip. The cool-down is [`COOL_DOWN`] (10 s),
//! doubled for each repeat offence up to 160 s; a peer not caught for
//! [`FORGIVE_AFTER`] (10 min) starts again at 10 s.
//!
//! - Any number of datagrams may be in flight: every distinct payload has an
//!   entry of its own (see *Memory*), found by its full hash, so two payloads
//!   with one length, head and tail never disturb each other (issue 19: such
//!   a pair used to reset each other's streak for ever), nor do any number
//!   alike at one end only (nine or more with one tail used to evict each
//!   other's sketch from the one set of that tail, and looped for ever).
//! - A loop of `k` datagrams ends after `2k + 100` of them: the first round
//!   only records them, the second confirms each by a full hash, the next 100
//!   make the streak. When several share a sketch, the first of them needs
//!   one round more: `3k + 100` at worst. One forged datagram: 102; every
//!   loop with `k ≤ 225` in flight: under 1,000 with its `k` last in flight.
//!   Larger loops end after three rounds (four, sketches shared), as long
//!   as the echo table holds them (about [`ECHOES`]` / 12` in flight) and a
//!   round takes under 0.9 s; building a bigger one takes as many forged
//!   datagrams.
//! - A client whose datagrams differ is never caught: a datagram that matches
//!   nothing we echoed resets the streak, and "matches" means the same length and
//!   the same 64-bit hash of every byte. udp-echo-client probes carry a sequence
//!   number and a send time, so they all differ. A network that duplicates
//!   datagrams adds no streak either: the first repeat of a payload is only the
//!   confirmation step (one payload per sketch, the first to repeat, is taken
//!   as confirmed at its first repeat: one step of a streak, reset by the next
//!   new datagram).
//! - A client that sends *identical* bytes 100 times in a row from one port,
//!   each less than 0.9 s after the previous one (`yes | nc -u`, a fixed-payload
//!   heartbeat faster than 1 Hz, a script repeating one message), is
//!   indistinguishable from a loop by content and timing, and gets the same
//!   cool-down. Heartbeats every second or slower never are.
//!
//! # Peers whose replies change
//!
//! A loop through a peer that does not send back exactly what it got (a
//! STAMP reflector, an echo that writes a counter or appends a byte) never
//! returns our bytes. Two more rules:
//!
//! - Replies of a request/response protocol are never what a client sends an
//!   echo server: [`is_known_reply`] recognises STAMP/TWAMP-Light replies, and
//!   the server drops them (`loop`) before asking the detector.
//! - A *near-copy* (same length and same head or tail as a recent echo to the
//!   peer, or the same head and 1 to [`MAX_GROWTH`] bytes more) is what a
//!   counter or appending echo sends, and also what a client with a constant
//!   payload and a counter at window 1 sends: byte for byte the same, so not
//!   detectable by content. Its cost is bounded instead: each near-copy in a
//!   receive call of its own (ping-pong) spends 1 of the peer's budget
//!   ([`NEAR_COPY_BUDGET`], 4,194,304), a grown one [`GROWTH_WEIGHT`]; any
//!   other datagram, or a pause of [`RETURN_WINDOW`], resets it; spent, the
//!   peer gets the loop's cool-down. An appending echo ends after 1,024
//!   bounces, a counter echo after 4,194,304 (minutes on loopback), whatever
//!   the number in flight; a client meets the budget only with over 4 million
//!   near-copies of ping-pong in a row, without a pause. Pipelined near-copies
//!   (several from the peer in one receive call, a load generator's window)
//!   spend nothing beyond the first of the call. udp-echo-client probes are
//!   never near-copies: the pattern after their header follows the sequence
//!   number.
//!
//! # Cost
//!
//! Per datagram: a keyed hash of the source, one set of the peer table, a
//! 40-byte sketch of the payload (length, first and last 16 bytes) and
//! three sets of the echo table, the head's, the tail's and the sketch's
//! (every datagram's ends are recorded, since a loop's datagrams may come
//! one in a receive call now and together the next time), each compared
//! whole at once (eight tags and eight ages side by side, SSE2) — 37 ns a
//! datagram here for the C load generator's traffic, 48 ns for datagrams
//! that differ at both ends, whatever the size (`cargo bench --bench
//! loop_detect`: distinct datagrams from one source, GRO-buffer-sized
//! calls; 59 and 68 ns with the scans in plain loops). In the server, where
//! the kernel's copies push the table out of the cache, about 80 ns. The
//! full hash of the payload (about 15 ns for 64 bytes, 90 ns for 1400, 3.7 µs for 65507)
//! and a fourth set of the echo table (the payload's own entry) are paid
//! only when the sketch matches a recent echo to the same peer: for repeated
//! payloads or payloads alike at both ends (loops, identical-bytes senders,
//! clients whose datagrams differ only in the middle), not for distinct
//! traffic. Nothing is allocated after [`LoopDetector::new`].
//!
//! # Bounded memory, and churn
//!
//! Two fixed tables, set-associative (8 ways) with a hash keyed per process so
//! that no sender can aim at one set: [`PEERS`] peers (32 bytes each) and
//! [`ECHOES`] recent echoes (8 bytes each), 384 KiB per detector. Both evict
//! the stalest entry of a set. The peer table is the crate's `SetTable` (as
//! are the rate limiter's and the STAMP sessions'); the echo table is its
//! own (`echoes.rs`): 8-byte entries, a tag and a time in place of a key, in
//! four kinds, looked up by partial tags. An echo entry is a head or a tail
//! (an end and the length echoed to this peer lately, in that end's set, one
//! per distinct end), a sketch (length, head and tail, in the set of its
//! own hash, so that datagrams alike at one end, or a grid of a few heads
//! and tails, never crowd one set) or a payload (these exact bytes, by a
//! keyed hash of the sketch and the full hash, in a set of its own):
//! distinct traffic takes up to three entries a datagram, a loop's datagram
//! four. A peer in a loop is the freshest entry of its
//! set at every datagram, so pushing it out takes 8 new sources in its set
//! between two of its datagrams: `8 × PEERS / 8` sources in that time, i.e.
//! about 4,096 × the loop's rate (80 million datagrams/s against a loop of
//! 20,000/s). A loop's echoes are refreshed every round; evicting enough of
//! them to break its streak (one miss in 100 rounds will do) takes about
//! [`ECHOES`]` / 6` new distinct datagrams per round of the loop, three
//! entries each (5,000 to 6,000 measured, 1 µs apart). Churn can only
//! delay a slow loop (tens of datagrams a second), at a far higher cost to the
//! attacker than the loop.
//!
//! # Placement
//!
//! [`LoopDetector::check`] records the datagram as echoed when it says
//! [`LoopVerdict::Echo`], since an echo server sends what it receives: call it
//! last, after every other reason to drop. One detector per echo thread: the
//! kernel sends every datagram of one source address and port to the same
//! `SO_REUSEPORT` socket, so each thread sees all of a peer's traffic, and no
//! lock is needed. With `--exclusive --threads N` all threads read one socket
//! and a peer's datagrams spread over their detectors: each must see its own
//! streak, so a loop may take up to N times as many datagrams to end.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::table::SetTable;

mod echoes;
mod hash;

use echoes::*;
use hash::*;

/// Datagrams in a row that must return before a peer counts as a loop.
pub const LOOP_STREAK: u16 = 100;

/// How recent an echo must be for a datagram equal to it to count as its
/// return. Loops on real paths go round in well under a second; a heartbeat of
/// identical bytes every second (or slower) stays out of reach.
pub const RETURN_WINDOW: Duration = Duration::from_millis(900);

/// How long a peer caught in a loop is not answered, the first time.
pub const COOL_DOWN: Duration = Duration::from_secs(10);

/// Repeat offences double the cool-down this many times at most (160 s).
pub const MAX_DOUBLINGS: u8 = 4;

/// A peer not caught for this long after its last cool-down starts again at
/// [`COOL_DOWN`].
pub const FORGIVE_AFTER: Duration = Duration::from_secs(600);

/// The default budget of near-copy ping-pong with one peer (see the module
/// docs, *Peers whose replies change*): datagrams, each a near-copy of the
/// last one echoed to it and alone in its receive call, in a row.
pub const NEAR_COPY_BUDGET: u32 = 1 << 22;

/// What one datagram that is the last echo plus a few bytes (up to
/// [`MAX_GROWTH`]) costs of the near-copy budget: 1,024 of them in a row
/// spend the default budget.
pub const GROWTH_WEIGHT: u32 = 1 << 12;

/// The most bytes a datagram may add to the last echo and still count as
/// grown from it.
pub const MAX_GROWTH: usize = 64;

/// Peers tracked at once by [`LoopDetector::new`].
pub const PEERS: usize = 4096;

/// Recent echo entries (head, tail, sketch and payload) remembered by
/// [`LoopDetector::new`]; a loop can have up to about a twelfth of this in
/// flight and still be seen whole.
pub const ECHOES: usize = 32_768;

/// Entries per set of both tables.
const WAYS: usize = 8;

const RETURN_WINDOW_MS: u32 = RETURN_WINDOW.as_millis() as u32;
const COOL_DOWN_NS: u64 = COOL_DOWN.as_nanos() as u64;
const FORGIVE_AFTER_NS: u64 = FORGIVE_AFTER.as_nanos() as u64;

/// The verdict on one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopVerdict {
    /// Not a loop (as far as we know): echo it. It is now recorded as echoed.
    Echo,
    /// The peer is in a loop, or cooling down after one: drop it.
    Loop {
        /// True for the datagram that tripped the rule: the one to warn about.
        first: bool,
        /// How long the peer stays unanswered from now.
        silent_for: Duration,
    },
}

/// One peer: its loop streak and cool-down (its key is the table's).
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    /// When its last datagram came, for eviction.
    last_ns: u64,
    /// Dropped until then; 0 when never caught.
    blocked_until_ns: u64,
    /// Near-copy budget spent (see [`NEAR_COPY_BUDGET`]).
    near: u32,
    /// Its last datagrams that returned, in a row.
    streak: u16,
    /// Cool-downs since it was last forgiven.
    offences: u8,
}

/// One set of the peer table. The keys (keyed hashes of address and port; 0
/// marks an empty slot) fill the first cache line on their own, so a lookup
/// reads one line and then the one entry it found.
#[cfg(test)]
type PeerSet = crate::table::Set<u64, Peer, WAYS>;

/// Finds peers in an echo loop; one per echo thread. See the module docs.
pub struct LoopDetector {
    /// Peers by the keyed hash of address and port ([`Self::peer_key`]).
    peers: SetTable<u64, Peer, WAYS>,
    echoes: Box<[EchoSet]>,
    /// Random per process: the echo table's sets and tags cannot be aimed at.
    secret: [u64; 2],
    /// Near-copy ping-pong allowed per peer; 0: no budget.
    near_copy_budget: u32,
    /// The last peer seen: its address, key and slot. A burst from one
    /// source (a GRO buffer, a flood) then skips the key hash and the set
    /// scan. Only `check` moves peers, so the slot is still that peer's.
    last: Option<(SocketAddr, u64, usize)>,
}

impl fmt::Debug for LoopDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopDetector")
            .field("peers", &self.peer_capacity())
            .field("echoes", &self.echo_capacity())
            .finish_non_exhaustive()
    }
}

impl Default for LoopDetector {
    fn default() -> Self {
        LoopDetector::new()
    }
}

impl LoopDetector {
    /// A detector with room for [`PEERS`] peers and [`ECHOES`] recent echoes.
    pub fn new() -> LoopDetector {
        LoopDetector::with_capacity(PEERS, ECHOES)
    }

    /// Room for at least `peers` peers and `echoes` echoes, rounded up to a
    /// power of two of whole sets.
    pub fn with_capacity(peers: usize, echoes: usize) -> LoopDetector {
        let sets = |n: usize| n.div_ceil(WAYS).max(1).next_power_of_two();
        let random = RandomState::new();
        LoopDetector {
            peers: SetTable::new(peers),
            echoes: vec![EchoSet::default(); sets(echoes)].into_boxed_slice(),
            secret: [0u8, 1].map(|i| random.hash_one(i) | 1),
            near_copy_budget: NEAR_COPY_BUDGET,
            last: None,
        }
    }

    /// The same detector with a near-copy budget of `budget` (0: none) in
    /// place of [`NEAR_COPY_BUDGET`].
    pub fn with_near_copy_budget(mut self, budget: u32) -> LoopDetector {
        self.near_copy_budget = budget;
        self
    }

    /// How many peers the table holds at most.
    pub fn peer_capacity(&self) -> usize {
        self.peers.capacity()
    }

    /// How many recent echoes the table holds at most.
    pub fn echo_capacity(&self) -> usize {
        self.echoes.len() * WAYS
    }

    /// How many peers are tracked now.
    #[cfg(test)]
    pub fn peers_tracked(&self) -> usize {
        self.peers.len()
    }

    /// Bytes of both tables: fixed at creation.
    #[cfg(test)]
    pub fn memory_bytes(&self) -> usize {
        self.peers.memory_bytes() + std::mem::size_of_val(&*self.echoes)
    }

    /// Starts loading the table lines [`check`](Self::check) will read for
    /// `payload` from `source`, and changes nothing. The echo table is too
    /// big to stay in cache beside the kernel's traffic, so its lines are
    /// usually a cache miss; touching the lines of a whole batch before
    /// checking any lets the processor wait for those misses together instead
    /// of one after another (about a third of the check's cost at GRO rates).
    #[inline]
    pub fn prefetch(&self, source: SocketAddr, payload: &[u8]) {
        let key = match self.last {
            Some((last, key, _)) if last == source => key,
            _ => {
                let key = self.peer_key(source);
                crate::sys::prefetch(self.peers.keys(key));
                key
            }
        };
        let sketch = self.sketch(key, payload);
        let mask = self.echoes.len() - 1;
        crate::sys::prefetch(&self.echoes[sketch.tail as usize & mask]);
        crate::sys::prefetch(&self.echoes[sketch.head as usize & mask]);
        crate::sys::prefetch(&self.echoes[sketch.whole() as usize & mask]);
    }

    /// Judges `payload` from `source` at `now_ns` and, when the verdict is
    /// [`LoopVerdict::Echo`], records it as echoed to `source`. `now_ns` must
    /// not go backwards by more than rounding (one clock for all calls).
    pub fn check(&mut self, source: SocketAddr, payload: &[u8], now_ns: u64) -> LoopVerdict {
        let (key, index) = match self.last {
            Some((last, key, index)) if last == source => (key, index),
            _ => {
                let key = self.peer_key(source);
                // A new peer takes an empty slot or the stalest one; its
                // last_ns 0 makes its first datagram the first of its
                // receive call (and is made now below).
                let index = self
                    .peers
                    .find_or_claim(key, key, |peer| peer.last_ns.saturating_add(1))
                    .index;
                self.last = Some((source, key, index));
                (key, index)
            }
        };
        let sketch = self.sketch(key, payload);
        let peer = self.peers.value_mut(index);
        let previous_ns = peer.last_ns;
        peer.last_ns = peer.last_ns.max(now_ns);
        if now_ns < peer.blocked_until_ns {
            return LoopVerdict::Loop {
                first: false,
                silent_for: Duration::from_nanos(peer.blocked_until_ns - now_ns),
            };
        }
        // The first datagram of this peer in this receive call: ping-pong
        // as far as the budget is concerned.
        let first_in_call = now_ns != previous_ns;
        let (returned, near) = note_echo(
            &mut self.echoes,
            &sketch,
            payload,
            (now_ns / 1_000_000) as u32,
            first_in_call,
        );
        match returned {
            Return::Yes => peer.streak = peer.streak.saturating_add(1),
            Return::No => peer.streak = 0,
        }
        let window_ns = RETURN_WINDOW.as_nanos() as u64;
        peer.near = match near {
            // A pause: reset.
            _ if now_ns.saturating_sub(previous_ns) >= window_ns => 0,
            // In the receive call of its last one: pipelined, not ping-pong;
            // not even looked at.
            _ if !first_in_call => peer.near,
            // Something unlike all we sent it lately: reset.
            Near::No => 0,
            Near::Same => peer.near.saturating_add(1),
            Near::Grown => peer.near.saturating_add(GROWTH_WEIGHT),
        };
        let over_budget = self.near_copy_budget != 0 && peer.near >= self.near_copy_budget;
        if peer.streak < LOOP_STREAK && !over_budget {
            return LoopVerdict::Echo;
        }
        peer.near = 0;
        if now_ns.saturating_sub(peer.blocked_until_ns) > FORGIVE_AFTER_NS {
            peer.offences = 0;
        }
        let cool_down = COOL_DOWN_NS << peer.offences.min(MAX_DOUBLINGS);
        peer.offences = peer.offences.saturating_add(1);
        peer.blocked_until_ns = now_ns.saturating_add(cool_down);
        peer.streak = 0;
        LoopVerdict::Loop {
            first: true,
            silent_for: Duration::from_nanos(cool_down),
        }
    }

    /// `payload`'s sketch as sent to the peer with `key`: keyed, so that no
    /// sender can aim at a set.
    #[inline]
    fn sketch(&self, key: u64, payload: &[u8]) -> Sketch {
        let (head, tail) = ends(payload);
        Sketch {
            head: mix(key ^ self.secret[1], head),
            tail: mix(key ^ self.secret[0], tail),
            len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
        }
    }

    /// Keyed hash of address and port (the peer table's): a peer's key in
    /// its table and in the echo table. IPv4 and its mapped IPv6 form are one
    /// peer. Never 0 (the empty mark).
    #[inline]
    fn peer_key(&self, source: SocketAddr) -> u64 {
        let ip = match source.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        self.peers
            .hash(u128::from(ip), u64::from(source.port()))
            .max(1)
    }
}

/// Whether `payload` is the reply of a request/response protocol that a plain
/// echo must never answer: a STAMP or TWAMP-Light reflector's packet (RFC
/// 8762, RFC 5357), open or authenticated. Such a reply differs from the
/// request that caused it, so the content rule cannot see a loop through a
/// reflector; but a reply is never something a client sends an echo server.
///
/// Precise on purpose: first fields that are MBZ in every reflected packet
/// must be zero (open: the 2 bytes after the sender's error estimate;
/// authenticated: the 12 after the sequence number), then the reflector's
/// own check, [`looks_reflected`](crate::stamp::looks_reflected), finds
/// time stamps of now in both stamp fields (or the session-sender's time of
/// the last minute), whatever the source port. A udp-echo-client probe (sequence number, send time,
/// then pattern bytes) passes all of it with odds under 10^-12 a probe; a
/// STAMP sender's packet (MBZ where a reply has stamps) never does. `now_unix_secs`:
/// the wall clock's Unix seconds. Cost: a length test and one 2-byte load
/// for most datagrams.
#[inline]
pub fn is_known_reply(payload: &[u8], now_unix_secs: u32) -> bool {
    use crate::stamp::{Mode, looks_reflected};
    const OPEN_MBZ: std::ops::Range<usize> = 38..40;
    const AUTH_MBZ: std::ops::Range<usize> = 4..16;
    if payload.len() < crate::stamp::packet::OPEN_LEN {
        return false;
    }
    let zero = |range: std::ops::Range<usize>| payload[range].iter().all(|&b| b == 0);
    // Port 0: the reflector's leniency for port 862 (any stamp set) is not
    // wanted here; the time rule alone decides, from every port.
    (zero(OPEN_MBZ) && looks_reflected(Mode::Open, payload, 0, now_unix_secs))
        || (payload.len() >= crate::stamp::packet::AUTH_LEN
            && zero(AUTH_MBZ)
            && looks_reflected(Mode::Authenticated, payload, 0, now_unix_secs))
}

#[cfg(test)]
mod tests;
