//! Per-source rate limit (`--rate-limit`): token buckets in a fixed-size table.
//!
//! A "source" is a network, not an address: by default one IPv4 address (/32)
//! or one IPv6 /64 ([`RatePrefix`], `--rate-limit-prefix`). A single IPv6 host
//! usually holds a whole /64 and can send from any of its 2^64 addresses, so a
//! budget per /128 would give a spoofing or misbehaving host billions of
//! budgets (5,000 sources in one /64 were all answered at `--rate-limit 10`).
//!
//! [`RateLimiter`] is pure, its clock injected as nanoseconds, so its tests run
//! time at will; [`SharedRateLimiter`] is the one the server's threads share, on
//! the monotonic clock.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use super::unmap;
use crate::table::SetTable;

/// Slots per set of the rate limiter's table: a source can only live in one set,
/// and eviction picks the stalest of that set.
const WAYS: usize = 8;

/// The default capacity of [`RateLimiter`]: sources tracked at once.
pub const RATE_LIMIT_SOURCES: usize = 65_536;

/// How many leading bits of a source address share one budget: IPv4 and
/// IPv6 prefix lengths (`--rate-limit-prefix V4,V6`, default `32,64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePrefix {
    /// IPv4 prefix length, 1 to 32 (IPv4-mapped IPv6 sources count as IPv4).
    pub v4: u8,
    /// IPv6 prefix length, 1 to 128.
    pub v6: u8,
}

impl Default for RatePrefix {
    /// One budget per IPv4 address and per IPv6 /64 (a host's usual share).
    fn default() -> Self {
        RatePrefix { v4: 32, v6: 64 }
    }
}

impl RatePrefix {
    /// The table key of `ip`'s network: its address with the host bits
    /// cleared, IPv4 (and IPv4-mapped) as `::ffff:a.b.c.d`, then inverted.
    /// The inversion keeps 0 free to mark an empty slot: a masked IPv6
    /// network can be all zero (`::1` is in `::/64`), but its inverse is zero
    /// only for `ffff:…:ffff`, a multicast address the guard drops first,
    /// and an IPv4 key always has the `ffff` bits of the mapped form.
    fn key(self, ip: IpAddr) -> u128 {
        let masked = match unmap(ip) {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.v4)).unwrap_or(0);
                u128::from(std::net::Ipv4Addr::from(u32::from(v4) & mask).to_ipv6_mapped())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.v6)).unwrap_or(0);
                u128::from(v6) & mask
            }
        };
        !masked
    }
}

impl fmt::Display for RatePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv4 /{}, IPv6 /{}", self.v4, self.v6)
    }
}

impl FromStr for RatePrefix {
    type Err = String;

    /// `V4,V6`, e.g. `32,64` or `24,48`.
    fn from_str(text: &str) -> Result<RatePrefix, String> {
        let invalid = || {
            format!(
                "invalid prefix lengths '{text}': expected V4,V6 such as 32,64 (IPv4 1-32, IPv6 1-128)"
            )
        };
        let (v4, v6) = text.split_once(',').ok_or_else(invalid)?;
        let v4: u8 = v4.trim().parse().map_err(|_| invalid())?;
        let v6: u8 = v6.trim().parse().map_err(|_| invalid())?;
        if !(1..=32).contains(&v4) || !(1..=128).contains(&v6) {
            return Err(invalid());
        }
        Ok(RatePrefix { v4, v6 })
    }
}

/// Parses a `--rate-limit-prefix` value (clap value parser).
pub fn parse_rate_prefix(text: &str) -> Result<RatePrefix, String> {
    text.parse()
}

/// A source's bucket (its key, [`RatePrefix::key`], is the table's: 0 marks
/// an empty slot, which no real source's key is).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// When the bucket was last refilled, in ns of the injected clock.
    last_ns: u64,
    /// Tokens left, up to the burst.
    tokens: f64,
}

/// Per-source token buckets in a fixed-size table, a source being the
/// network its [`RatePrefix`] says.
///
/// The table is a `SetTable` (`table.rs`): a keyed hash (random per process, so senders
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
    table: SetTable<u128, Bucket, WAYS>,
    prefix: RatePrefix,
}

impl RateLimiter {
    /// `rate` datagrams per second per source network (`prefix`), a burst of
    /// one second's budget, room for at least `capacity` sources (rounded up
    /// to a power of two of whole sets).
    pub fn new(rate: u32, capacity: usize, prefix: RatePrefix) -> RateLimiter {
        RateLimiter {
            prefix,
            rate: f64::from(rate),
            burst: f64::from(rate).max(1.0),
            table: SetTable::new(capacity),
        }
    }

    /// How many sources the table holds at most.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// How many slots are in use.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token from the bucket of `ip`'s network at time `now_ns`;
    /// false when empty.
    pub fn allow(&mut self, ip: IpAddr, now_ns: u64) -> bool {
        let key = self.prefix.key(ip);
        let hash = self.table.hash(key, 0);
        let found = self.table.find_or_claim(hash, key, |b| b.last_ns.max(1));
        let slot = found.value;
        if found.claimed {
            *slot = Bucket {
                last_ns: now_ns,
                tokens: self.burst,
            };
        }
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
    /// `rate` datagrams per second per source network, room for `capacity`
    /// sources, as [`RateLimiter::new`].
    pub fn new(rate: u32, capacity: usize, prefix: RatePrefix) -> SharedRateLimiter {
        SharedRateLimiter {
            table: Mutex::new(RateLimiter::new(rate, capacity, prefix)),
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
        let mut limiter = RateLimiter::new(50, 1024, RatePrefix::default());
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
        let mut limiter = RateLimiter::new(10, 1024, RatePrefix::default());
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
        let mut limiter = RateLimiter::new(100, RATE_LIMIT_SOURCES, RatePrefix::default());
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
    fn one_budget_per_ipv6_64_and_per_ipv4_address_by_default() {
        let mut limiter = RateLimiter::new(10, RATE_LIMIT_SOURCES, RatePrefix::default());
        // 5,000 addresses in one /64: one budget between them (issue 19: each
        // had its own and all were answered).
        let allowed = (0..5000u128)
            .filter(|i| {
                let ip = std::net::Ipv6Addr::from(0x2001_0db8_0000_0001_0000_0000_0000_0000 + i);
                limiter.allow(IpAddr::V6(ip), 0)
            })
            .count();
        assert_eq!(allowed, 10);
        // The next /64 has its own.
        let other: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!((0..20).filter(|_| limiter.allow(other, 0)).count(), 10);
        // IPv4: per address, and the mapped form is the same address.
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!((0..20).filter(|_| limiter.allow(a, 0)).count(), 10);
        assert!(!limiter.allow(a_mapped, 0));
        assert_eq!((0..20).filter(|_| limiter.allow(b, 0)).count(), 10);
        // Loopback and other all-zero /64s are sources like any other.
        let lo: IpAddr = "::1".parse().unwrap();
        assert_eq!((0..20).filter(|_| limiter.allow(lo, 0)).count(), 10);
        assert_eq!(limiter.len(), 5);
    }

    #[test]
    fn prefixes_are_configurable_and_v4_mapped_sources_use_the_v4_one() {
        let prefix: RatePrefix = "24,48".parse().unwrap();
        assert_eq!(prefix, RatePrefix { v4: 24, v6: 48 });
        let mut limiter = RateLimiter::new(5, 1024, prefix);
        let v4 = ["192.0.2.1", "192.0.2.200", "::ffff:192.0.2.7"];
        let allowed = (0..30)
            .filter(|i| limiter.allow(v4[i % 3].parse().unwrap(), 0))
            .count();
        assert_eq!(allowed, 5, "one budget for 192.0.2.0/24, mapped or not");
        assert!(limiter.allow("192.0.3.1".parse().unwrap(), 0));
        let v6 = ["2001:db8:1:1::1", "2001:db8:1:ffff::9"];
        let allowed = (0..30)
            .filter(|i| limiter.allow(v6[i % 2].parse().unwrap(), 0))
            .count();
        assert_eq!(allowed, 5, "one budget for 2001:db8:1::/48");
        // /32 and /128: per address, as before.
        let mut exact = RateLimiter::new(5, 1024, "32,128".parse().unwrap());
        for ip in ["2001:db8::1", "2001:db8::2", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!((0..9).filter(|_| exact.allow(ip, 0)).count(), 5, "{ip}");
        }
        for bad in [
            "", "32", "0,64", "33,64", "32,129", "32,0", "a,b", "32,64,1",
        ] {
            assert!(bad.parse::<RatePrefix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_flooding_source_stays_limited_while_others_churn() {
        let mut limiter = RateLimiter::new(10, 64, RatePrefix::default());
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
