//! The stateful reflector's sessions (RFC 8762 §4.3): one sequence counter per
//! (sender address, SSID), in a table of fixed capacity whose idle entries
//! expire, so a flood of spoofed sources can neither grow it nor slow it.
//!
//! The table is set-associative, as the guard's rate limiter: a keyed hash
//! (random per process, so senders cannot aim at one set) picks a set of
//! 8 slots, and a new session takes an empty or expired slot of its set,
//! or else evicts the one idle longest there. Every packet costs one set's
//! scan, whatever the number of sessions or spoofed sources.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;

/// Sessions tracked at most (rounded up to whole sets).
pub const MAX_SESSIONS: usize = 4096;

/// A session idle this long (ns) is forgotten: its next packet starts at 0 again.
pub const SESSION_IDLE_NS: u64 = 60_000_000_000;

/// Slots per set.
const WAYS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Session {
    source: SocketAddr,
    ssid: u16,
    next: u32,
    last_ns: u64,
}

/// Per-session reflector sequence numbers, bounded and expiring.
#[derive(Debug)]
pub struct Sessions {
    slots: Vec<Option<Session>>,
    sets: usize,
    idle_ns: u64,
    hasher: RandomState,
}

impl Sessions {
    /// A table of at least `capacity` sessions (whole sets of 8) that expire
    /// after `idle_ns`; its memory is taken at once.
    pub fn new(capacity: usize, idle_ns: u64) -> Sessions {
        let sets = capacity.div_ceil(WAYS).max(1);
        Sessions {
            slots: vec![None; sets * WAYS],
            sets,
            idle_ns,
            hasher: RandomState::new(),
        }
    }

    /// The reflector sequence number for the next packet of the session of
    /// `source` and `ssid` at `now_ns`: 0, 1, 2… per session.
    pub fn next(&mut self, source: SocketAddr, ssid: u16, now_ns: u64) -> u32 {
        let set = (self.hasher.hash_one((source, ssid)) % self.sets as u64) as usize;
        let idle_ns = self.idle_ns;
        let ways = &mut self.slots[set * WAYS..(set + 1) * WAYS];
        let live = |s: &Session| now_ns.saturating_sub(s.last_ns) < idle_ns;
        if let Some(session) = ways
            .iter_mut()
            .flatten()
            .find(|s| s.source == source && s.ssid == ssid)
        {
            let seq = if live(session) { session.next } else { 0 };
            session.next = seq.wrapping_add(1);
            session.last_ns = now_ns;
            return seq;
        }
        // An empty or expired slot, else the one idle longest.
        let slot = ways
            .iter()
            .position(|s| s.as_ref().is_none_or(|s| !live(s)))
            .unwrap_or_else(|| {
                (0..WAYS)
                    .min_by_key(|&i| ways[i].map_or(0, |s| s.last_ns))
                    .unwrap_or(0)
            });
        ways[slot] = Some(Session {
            source,
            ssid,
            next: 1,
            last_ns: now_ns,
        });
        0
    }

    /// Sessions tracked now (expired ones included until their slot is reused).
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn each_session_counts_on_its_own_and_expires_when_idle() {
        let mut s = Sessions::new(8, 100);
        assert_eq!(s.next(addr(1), 0, 0), 0);
        assert_eq!(s.next(addr(1), 0, 10), 1);
        assert_eq!(s.next(addr(1), 7, 10), 0, "another SSID, another session");
        assert_eq!(s.next(addr(2), 0, 10), 0);
        assert_eq!(s.next(addr(1), 0, 20), 2);
        assert_eq!(s.next(addr(1), 0, 500), 0, "idle past the limit: anew");
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let mut s = Sessions::new(16, 1_000_000);
        for port in 0..1000 {
            s.next(addr(port), 0, u64::from(port));
            assert!(s.len() <= 16);
        }
        assert_eq!(s.next(addr(999), 0, 1000), 1, "the newest survived");
    }

    #[test]
    fn a_crowd_of_spoofed_sources_evicts_only_within_a_set_and_costs_a_set() {
        // A session that keeps talking survives 100,000 one-packet sources:
        // in its set it is never the one idle longest for long.
        let mut s = Sessions::new(MAX_SESSIONS, SESSION_IDLE_NS);
        let mut expected = 0;
        for i in 0..100_000u64 {
            let spoofed = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9));
            s.next(spoofed, 0, i);
            if i % 64 == 0 {
                assert_eq!(s.next(addr(7), 1, i), expected, "packet {expected}");
                expected += 1;
            }
        }
        assert!(s.len() <= MAX_SESSIONS);
    }
}
