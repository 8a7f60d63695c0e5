//! The stateful reflector's sessions (RFC 8762 §4.3): one sequence counter per
//! (sender address, SSID), in a table of fixed capacity whose idle entries
//! expire, so a flood of spoofed sources cannot grow it.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Sessions tracked at most; a new session past this evicts the expired ones,
/// or else the one idle longest.
pub const MAX_SESSIONS: usize = 4096;

/// A session idle this long (ns) is forgotten: its next packet starts at 0 again.
pub const SESSION_IDLE_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Session {
    next: u32,
    last_ns: u64,
}

/// Per-session reflector sequence numbers, bounded and expiring.
#[derive(Debug)]
pub struct Sessions {
    table: HashMap<(SocketAddr, u16), Session>,
    capacity: usize,
    idle_ns: u64,
}

impl Sessions {
    /// A table of `capacity` sessions (at least 1) that expire after `idle_ns`;
    /// its memory is taken at once.
    pub fn new(capacity: usize, idle_ns: u64) -> Sessions {
        let capacity = capacity.max(1);
        Sessions {
            table: HashMap::with_capacity(capacity),
            capacity,
            idle_ns,
        }
    }

    /// The reflector sequence number for the next packet of the session of
    /// `source` and `ssid` at `now_ns`: 0, 1, 2… per session.
    pub fn next(&mut self, source: SocketAddr, ssid: u16, now_ns: u64) -> u32 {
        let key = (source, ssid);
        if let Some(session) = self.table.get_mut(&key) {
            if now_ns.saturating_sub(session.last_ns) < self.idle_ns {
                let seq = session.next;
                session.next = seq.wrapping_add(1);
                session.last_ns = now_ns;
                return seq;
            }
            self.table.remove(&key);
        }
        if self.table.len() >= self.capacity {
            self.evict(now_ns);
        }
        self.table.insert(
            key,
            Session {
                next: 1,
                last_ns: now_ns,
            },
        );
        0
    }

    /// Makes room: drops every expired session, or else the one idle longest.
    fn evict(&mut self, now_ns: u64) {
        let idle = self.idle_ns;
        self.table
            .retain(|_, s| now_ns.saturating_sub(s.last_ns) < idle);
        if self.table.len() >= self.capacity {
            if let Some(oldest) = self
                .table
                .iter()
                .min_by_key(|(_, s)| s.last_ns)
                .map(|(k, _)| *k)
            {
                self.table.remove(&oldest);
            }
        }
    }

    /// Sessions tracked now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
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
        let mut s = Sessions::new(4, 1_000_000);
        for port in 0..1000 {
            s.next(addr(port), 0, u64::from(port));
            assert!(s.len() <= 4);
        }
        assert_eq!(s.next(addr(999), 0, 1000), 1, "the newest survived");
    }
}
