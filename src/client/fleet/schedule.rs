//! When each target's probes leave: every target probes at its own fixed
//! phase within its interval, the phase taken from a hash of the target
//! string. Adding or removing targets moves no other target's phase, so no
//! reload bunches them, and n targets at interval T spread like n random
//! points over T (about n/T per second, no burst at the top of the second).
//!
//! One binary heap orders every timer of the fleet — each target's next send
//! and each probe's timeout — so a probe costs O(log n), whatever n is. A
//! target that leaves is not searched for: its timers carry the generation
//! of its slot and are dropped when they come up stale.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A probe is due.
    Send,
    /// A probe's timeout has passed: settle it.
    Expire,
}

/// One timer: at `due_ns`, `kind` for the target in `slot` (of `generation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub(crate) due_ns: u64,
    pub(crate) kind: Kind,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Every timer of the fleet, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Schedule {
    /// Adds a timer.
    pub(crate) fn push(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    /// The earliest timer due at `now_ns`, taken off.
    pub(crate) fn pop_due(&mut self, now_ns: u64) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.due_ns <= now_ns => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// When the earliest timer is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(t)| t.due_ns)
    }

    /// Timers held (stale ones included until they come up).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// A target's phase within `interval_ns`: a hash of its string (FNV-1a,
/// then a mixer so similar strings land far apart).
pub(crate) fn phase_ns(target: &str, interval_ns: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h % interval_ns.max(1)
}

/// The first time at or after `now_ns` that is `phase_ns` into an interval.
pub(crate) fn first_due(now_ns: u64, phase_ns: u64, interval_ns: u64) -> u64 {
    let interval_ns = interval_ns.max(1);
    let start = now_ns - now_ns % interval_ns + phase_ns;
    if start >= now_ns {
        start
    } else {
        start + interval_ns
    }
}

/// The send after one due at `due_ns`: one interval later, or, when the
/// engine fell behind by more than that, the next one still ahead (missed
/// probes are skipped, not sent in a burst).
pub(crate) fn next_due(due_ns: u64, now_ns: u64, interval_ns: u64) -> u64 {
    let next = due_ns.saturating_add(interval_ns);
    if next > now_ns {
        next
    } else {
        first_due(now_ns + 1, due_ns % interval_ns.max(1), interval_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn ten_thousand_targets_spread_over_the_second() {
        let n = 10_000;
        let mut per_ms = vec![0u32; 1000];
        for i in 0..n {
            let target = format!("10.{}.{}.{}:7", i / 65536, (i / 256) % 256, i % 256);
            per_ms[(phase_ns(&target, SECOND) / 1_000_000) as usize] += 1;
        }
        // 10 per millisecond on average: random points put at most a few
        // times that in the fullest millisecond, and leave none empty for long.
        let max = *per_ms.iter().max().unwrap();
        assert!(max <= 30, "{max} probes in one millisecond");
        let per_10ms: Vec<u32> = per_ms.chunks(10).map(|c| c.iter().sum()).collect();
        let (lo, hi) = (
            *per_10ms.iter().min().unwrap(),
            *per_10ms.iter().max().unwrap(),
        );
        assert!(
            lo >= 60 && hi <= 150,
            "10 ms windows hold {lo}..{hi} (mean 100)"
        );
    }

    #[test]
    fn a_few_targets_are_not_bunched_at_the_top_of_the_second() {
        let phases: Vec<u64> = (1..=4)
            .map(|i| phase_ns(&format!("127.0.0.1:{i}"), SECOND))
            .collect();
        assert!(phases.iter().any(|&p| p > SECOND / 10), "{phases:?}");
        let mut sorted = phases.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
    }

    #[test]
    fn due_times_keep_the_phase_and_skip_what_was_missed() {
        assert_eq!(first_due(0, 300, 1000), 300);
        assert_eq!(first_due(300, 300, 1000), 300);
        assert_eq!(first_due(301, 300, 1000), 1300);
        assert_eq!(first_due(2500, 300, 1000), 3300);
        assert_eq!(next_due(1300, 1400, 1000), 2300);
        // Five intervals late: the next one ahead, no catching up.
        assert_eq!(next_due(1300, 6400, 1000), 7300);
    }

    #[test]
    fn timers_come_up_earliest_first() {
        let mut s = Schedule::default();
        for (due, slot) in [(30, 1), (10, 2), (20, 3)] {
            s.push(Timer {
                due_ns: due,
                kind: Kind::Send,
                slot,
                generation: 0,
            });
        }
        assert_eq!(s.next_due(), Some(10));
        assert_eq!(s.pop_due(5), None);
        assert_eq!(s.pop_due(25).map(|t| t.slot), Some(2));
        assert_eq!(s.pop_due(25).map(|t| t.slot), Some(3));
        assert_eq!(s.pop_due(25), None);
        assert_eq!(s.len(), 1);
    }
}
