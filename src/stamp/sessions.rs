//! The stateful reflector's sessions (RFC 8762 §4.3): one sequence counter per
//! (sender address, SSID), in a table of fixed capacity whose idle entries
//! expire, so a flood of spoofed sources can neither grow it nor slow it.
//!
//! The table is a `SetTable` (`table.rs`), as the guard's rate limiter's: a keyed hash
//! (random per process, so senders cannot aim at one set) picks a set of
//! 8 slots, and a new session takes an empty or expired slot of its set,
//! or else evicts the one idle longest there. Every packet costs one set's
//! scan, whatever the number of sessions or spoofed sources.

use std::net::{IpAddr, SocketAddr};

use crate::table::SetTable;

/// Sessions tracked at most (rounded up to whole sets).
pub const MAX_SESSIONS: usize = 4096;

/// A session idle this long (ns) is forgotten: its next packet starts at 0 again.
pub const SESSION_IDLE_NS: u64 = 60_000_000_000;

/// Slots per set.
const WAYS: usize = 8;

/// A session's key: its sender's address and SSID (`None`: an empty slot).
type SessionKey = Option<(SocketAddr, u16)>;

#[derive(Debug, Clone, Copy, Default)]
struct Session {
    next: u32,
    last_ns: u64,
    /// The kernel transmit time (ns since the Unix epoch) of reply
    /// `next - 1`, once read (Follow-Up Telemetry); 0: none.
    previous_tx_ns: u64,
}

/// Per-session reflector sequence numbers, bounded and expiring.
#[derive(Debug)]
pub struct Sessions {
    table: SetTable<SessionKey, Session, WAYS>,
    idle_ns: u64,
}

impl Sessions {
    /// A table of at least `capacity` sessions (a power of two of whole sets
    /// of 8) that expire after `idle_ns`; its memory is taken at once.
    pub fn new(capacity: usize, idle_ns: u64) -> Sessions {
        Sessions {
            table: SetTable::new(capacity),
            idle_ns,
        }
    }

    /// The reflector sequence number for the next packet of the session of
    /// `source` and `ssid` at `now_ns`: 0, 1, 2… per session.
    pub fn next(&mut self, source: SocketAddr, ssid: u16, now_ns: u64) -> u32 {
        self.next_with_previous(source, ssid, now_ns).0
    }

    /// As [`next`](Self::next), with the kernel transmit time (ns since the
    /// Unix epoch) of the session's previous reply, when it was read
    /// ([`transmitted`](Self::transmitted)) before this packet came.
    pub fn next_with_previous(
        &mut self,
        source: SocketAddr,
        ssid: u16,
        now_ns: u64,
    ) -> (u32, Option<u64>) {
        let hash = self.hash(source, ssid);
        let idle_ns = self.idle_ns;
        let live = |s: &Session| now_ns.saturating_sub(s.last_ns) < idle_ns;
        // Not there: an empty or expired slot (age 0), else the one idle longest.
        let age = |s: &Session| {
            if live(s) {
                s.last_ns.saturating_add(1)
            } else {
                0
            }
        };
        let slot = self.table.find_or_claim(hash, Some((source, ssid)), age);
        let session = slot.value;
        let (seq, previous) = if !slot.claimed && live(session) {
            (
                session.next,
                (session.previous_tx_ns != 0).then_some(session.previous_tx_ns),
            )
        } else {
            (0, None)
        };
        session.next = seq.wrapping_add(1);
        session.last_ns = now_ns;
        session.previous_tx_ns = 0;
        (seq, previous)
    }

    /// Takes back reply `seq` of the session of `source` and `ssid`, just
    /// numbered by [`next_with_previous`](Self::next_with_previous), which
    /// gave `previous` with it: the request gets no reply (it asked for
    /// none), so the session's next reply takes `seq` and still reports
    /// `previous`. Nothing when another packet of the session came since.
    pub fn unsent(&mut self, source: SocketAddr, ssid: u16, seq: u32, previous: Option<u64>) {
        let hash = self.hash(source, ssid);
        if let Some(session) = self.table.find(hash, Some((source, ssid))) {
            if session.next == seq.wrapping_add(1) {
                session.next = seq;
                session.previous_tx_ns = previous.unwrap_or(0);
            }
        }
    }

    /// Records the kernel transmit time `tx_ns` of reply `seq` of the
    /// session of `source` and `ssid`, if that is still the session's last
    /// reply (a stamp read after the next request was answered, or of a
    /// session forgotten since, is dropped). Never claims a slot.
    pub fn transmitted(&mut self, source: SocketAddr, ssid: u16, seq: u32, tx_ns: u64) {
        let hash = self.hash(source, ssid);
        if let Some(session) = self.table.find(hash, Some((source, ssid))) {
            if session.next == seq.wrapping_add(1) {
                session.previous_tx_ns = tx_ns;
            }
        }
    }

    fn hash(&self, source: SocketAddr, ssid: u16) -> u64 {
        let ip = match source.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        self.table.hash(
            u128::from(ip),
            u64::from(source.port()) | u64::from(ssid) << 16,
        )
    }

    /// Sessions tracked now (expired ones included until their slot is reused).
    pub fn len(&self) -> usize {
        self.table.len()
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
    fn the_previous_replys_transmit_time_is_kept_until_the_next_reply() {
        let mut s = Sessions::new(8, 1_000);
        assert_eq!(s.next_with_previous(addr(1), 0, 0), (0, None));
        s.transmitted(addr(1), 0, 0, 500);
        s.transmitted(addr(2), 0, 0, 600); // no such session: nothing claimed
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_with_previous(addr(1), 0, 1), (1, Some(500)));
        assert_eq!(
            s.next_with_previous(addr(1), 0, 2),
            (2, None),
            "reply 1 unstamped"
        );
        s.transmitted(addr(1), 0, 1, 700); // late: reply 2 is the last now
        assert_eq!(s.next_with_previous(addr(1), 0, 3), (3, None));
        s.transmitted(addr(1), 0, 3, 800);
        assert_eq!(
            s.next_with_previous(addr(1), 0, 5_000),
            (0, None),
            "expired"
        );
    }

    #[test]
    fn a_reply_taken_back_leaves_the_numbering_as_it_was() {
        let mut s = Sessions::new(8, 1_000);
        assert_eq!(s.next_with_previous(addr(1), 0, 0), (0, None));
        s.transmitted(addr(1), 0, 0, 500);
        let (seq, previous) = s.next_with_previous(addr(1), 0, 1);
        assert_eq!((seq, previous), (1, Some(500)));
        s.unsent(addr(1), 0, seq, previous);
        assert_eq!(
            s.next_with_previous(addr(1), 0, 2),
            (1, Some(500)),
            "the next reply is the one taken back"
        );
        // Too late (another packet came since), or no such session: nothing.
        s.unsent(addr(1), 0, 0, None);
        s.unsent(addr(2), 0, 0, None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next(addr(1), 0, 3), 2);
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
