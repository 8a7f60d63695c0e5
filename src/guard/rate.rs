//! Per-source rate limit (`--rate-limit`): token buckets in a fixed-size table.
//!
//! [`RateLimiter`] is pure, its clock injected as nanoseconds, so its tests run
//! time at will; [`SharedRateLimiter`] is the one the server's threads share, on
//! the monotonic clock.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use super::unmap;

/// Slots per set of the rate limiter's table: a source can only live in one set,
/// and eviction picks the stalest of that set.
const WAYS: usize = 8;

/// The default capacity of [`RateLimiter`]: sources tracked at once.
pub const RATE_LIMIT_SOURCES: usize = 65_536;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The source as an IPv6 (v4 mapped) address; 0 marks an empty slot, which
    /// no real source is (`::` is a bad source and never reaches the limiter).
    key: u128,
    /// When the bucket was last refilled, in ns of the injected clock.
    last_ns: u64,
    /// Tokens left, up to the burst.
    tokens: f64,
}

/// Per-source token buckets in a fixed-size table.
///
/// The table is set-associative: a keyed hash (random per process, so senders
/// cannot aim at one set) picks a set of 8 slots, and a new source takes
/// an empty slot or evicts the stalest one of that set. Memory is fixed at
/// creation whatever the traffic — an attacker cycling through millions of
/// addresses only evicts idle or other attacking entries. An evicted source
/// starts again with a full bucket, so eviction can cost a legitimate source at
/// most a refill, never its own budget.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    slots: Vec<Slot>,
    sets: usize,
    hasher: RandomState,
}

impl RateLimiter {
    /// `rate` datagrams per second per source, a burst of one second's budget,
    /// room for at least `capacity` sources (rounded up to whole sets).
    pub fn new(rate: u32, capacity: usize) -> RateLimiter {
        let sets = capacity.div_ceil(WAYS).max(1);
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(rate).max(1.0),
            slots: vec![Slot::default(); sets * WAYS],
            sets,
            hasher: RandomState::new(),
        }
    }

    /// How many sources the table holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many slots are in use.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.key != 0).count()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token from `ip`'s bucket at time `now_ns`; false when empty.
    pub fn allow(&mut self, ip: IpAddr, now_ns: u64) -> bool {
        let key = match unmap(ip) {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let set = (self.hasher.hash_one(key) as usize % self.sets) * WAYS;
        let ways = &mut self.slots[set..set + WAYS];
        let slot = match ways.iter().position(|s| s.key == key) {
            Some(i) => &mut ways[i],
            None => {
                let victim = ways
                    .iter_mut()
                    .min_by_key(|s| if s.key == 0 { 0 } else { s.last_ns.max(1) })
                    .expect("WAYS > 0");
                *victim = Slot {
                    key,
                    last_ns: now_ns,
                    tokens: self.burst,
                };
                victim
            }
        };
        let elapsed = now_ns.saturating_sub(slot.last_ns) as f64 / 1e9;
        slot.tokens = (slot.tokens + elapsed * self.rate).min(self.burst);
        slot.last_ns = slot.last_ns.max(now_ns);
        if slot.tokens >= 1.0 {
            slot.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
/// A [`RateLimiter`] for all the server's threads: one table, so a source's
/// budget is the same whichever socket its flows land on. Locked once per
/// datagram that passed the stateless rules, only when `--rate-limit` is on.
/// The time comes from the caller: the loops read their one shared clock once
/// per receive.
#[derive(Debug)]
pub struct SharedRateLimiter {
    table: Mutex<RateLimiter>,
}

impl SharedRateLimiter {
    /// `rate` datagrams per second per source, room for `capacity` sources, as
    /// [`RateLimiter::new`].
    pub fn new(rate: u32, capacity: usize) -> SharedRateLimiter {
        SharedRateLimiter {
            table: Mutex::new(RateLimiter::new(rate, capacity)),
        }
    }

    /// Takes one token from `ip`'s bucket at `now_ns`, in ns of any monotonic
    /// clock, the same one for every call (so a loop's one clock reading per
    /// receive serves here too); false when it is empty.
    pub fn allow_at(&self, ip: IpAddr, now_ns: u64) -> bool {
        // A poisoned lock only means another loop panicked mid-update of plain
        // numbers; the table is still usable.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.allow(ip, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_source_gets_a_one_second_burst_then_its_rate() {
        let mut limiter = RateLimiter::new(50, 1024);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let burst = (0..500).filter(|_| limiter.allow(ip, 0)).count();
        assert_eq!(burst, 50);
        // 100 ms later, 5 more tokens.
        let later = (0..100).filter(|_| limiter.allow(ip, SEC / 10)).count();
        assert_eq!(later, 5);
        // A long pause refills to the burst, never beyond.
        let refilled = (0..500).filter(|_| limiter.allow(ip, 100 * SEC)).count();
        assert_eq!(refilled, 50);
        // Steady sending at the rate is always allowed.
        let mut t = 200 * SEC;
        for _ in 0..1000 {
            t += SEC / 50;
            assert!(limiter.allow(ip, t));
        }
    }

    #[test]
    fn sources_have_separate_budgets_and_mapped_v4_is_the_same_source() {
        let mut limiter = RateLimiter::new(10, 1024);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!((0..10).filter(|_| limiter.allow(a, 0)).count(), 10);
        assert!(
            !limiter.allow(a_mapped, 0),
            "the mapped form shares a's bucket"
        );
        assert_eq!((0..20).filter(|_| limiter.allow(b, 0)).count(), 10);
    }

    #[test]
    fn a_million_sources_cannot_grow_the_table_or_starve_a_steady_source() {
        let mut limiter = RateLimiter::new(100, RATE_LIMIT_SOURCES);
        let capacity = limiter.capacity();
        assert!(capacity >= RATE_LIMIT_SOURCES);
        let steady: IpAddr = "198.51.100.1".parse().unwrap();
        let mut t = 0;
        let mut steady_denied = 0;
        for i in 0..1_000_000u32 {
            t += 1_000; // 1 µs apart: a million spoofed sources in one second
            let attacker = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i));
            limiter.allow(attacker, t);
            if i % 20_000 == 0 {
                // 50 datagrams/s, half its budget of 100/s
                if !limiter.allow(steady, t) {
                    steady_denied += 1;
                }
            }
        }
        assert_eq!(limiter.capacity(), capacity, "the table never grows");
        assert!(limiter.len() <= capacity);
        assert_eq!(
            steady_denied, 0,
            "a source within its budget is never refused"
        );
    }

    #[test]
    fn a_flooding_source_stays_limited_while_others_churn() {
        let mut limiter = RateLimiter::new(10, 64);
        let flooder: IpAddr = "192.0.2.66".parse().unwrap();
        let mut allowed = 0;
        let mut t = 0;
        for i in 0..100_000u32 {
            t += 10_000; // 10 µs apart, one second in all
            if limiter.allow(flooder, t) {
                allowed += 1;
            }
            limiter.allow(IpAddr::V4(Ipv4Addr::from(0x0B00_0000 + i)), t);
        }
        // Its budget over one second is the burst (10) plus the rate (10);
        // eviction by the churn may hand it at most a few fresh buckets.
        assert!(allowed <= 40, "flooder got {allowed}");
    }
}
