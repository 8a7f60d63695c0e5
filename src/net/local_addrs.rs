//! "Is this source this host?" for a server socket bound to a wildcard
//! address (`0.0.0.0`, `::`), answered by the kernel, so that a datagram
//! from the server's own port on any address of the host — a self-loop — is
//! dropped on the first datagram.
//!
//! Bound to one address, a socket's own source is that address and port, and
//! the guard's rules see it. Bound to a wildcard, every local address reaches
//! it: anyone who can send once from `(any local address, server port)` (a
//! forged source, a `SO_REUSEADDR` co-binder, any local user) makes it echo
//! to itself for ever. "Local" is what the kernel routes to this host:
//! interface addresses, whole networks on loopback, AnyIP routes (`ip route
//! add local 198.51.100.0/24 dev lo`), addresses added after start. The
//! interface list misses AnyIP, so the question goes to the kernel itself,
//! one address at a time ([`crate::sys::LocalRoutes`]: a netlink route query,
//! or a test bind where netlink is not allowed, which misses IPv6 AnyIP).
//!
//! Cost: a self-loop needs the source *port* to be one of the server's
//! wildcard ports, so every other datagram costs one port comparison. For the
//! few that match, the answer is cached per address for [`TTL`] in a fixed
//! table of [`SLOTS`] entries (no allocation per datagram), and at most
//! [`ASK_BUDGET`] questions a second reach the kernel per echo thread, so a
//! flood of forged sources on the server's port cannot buy a syscall per
//! datagram. What cannot be asked — over budget, or the kernel unreachable —
//! counts as this host: the datagram is dropped (`bad-source`) rather than
//! risk echoing to ourselves. Only datagrams from the server's own port
//! number pay that, which no ordinary client sends from.
//!
//! An address that becomes local is seen within [`TTL`] of the last "not
//! local" answer for it; until then the loop detector
//! (`server::guard::loop_detect`) is the guard.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use log::{debug, warn};

use crate::net::cidr::unmap;

/// How long an answer is trusted: an address added or removed is seen this
/// late at most.
pub const TTL: Duration = Duration::from_secs(1);

/// Kernel questions per second per echo thread at most (each a few µs: about
/// 1% of one core at the limit).
pub const ASK_BUDGET: u32 = 1000;

/// Cached answers per echo thread (direct-mapped by address).
pub const SLOTS: usize = 128;

const SLOT_BITS: u32 = SLOTS.trailing_zeros();
const TTL_NS: u64 = TTL.as_nanos() as u64;
const WINDOW_NS: u64 = 1_000_000_000;

/// Answers "does the kernel route this address to this host?"; the kernel
/// ([`kernel_asker`]) or a stand-in in tests.
pub type Asker = Box<dyn FnMut(IpAddr) -> io::Result<bool> + Send>;

/// One cached answer.
#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: IpAddr,
    local: bool,
    /// The answer is stale from here on (0: empty).
    expires_ns: u64,
}

const EMPTY: Slot = Slot {
    ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    local: false,
    expires_ns: 0,
};

/// The own-socket check of one echo thread for the server's wildcard sockets:
/// their ports, the cached answers and the question budget. See the module
/// docs.
pub struct LocalAddrs {
    /// The ports of the server's wildcard sockets, sorted.
    ports: Vec<u16>,
    slots: Box<[Slot; SLOTS]>,
    /// Start of the current budget window and questions asked in it.
    window_ns: u64,
    asked: u32,
    /// Questions asked in all (for the tests and the curious).
    asked_total: u64,
    asker: Asker,
    complained_error: bool,
    complained_budget: bool,
}

impl std::fmt::Debug for LocalAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAddrs")
            .field("ports", &self.ports)
            .field("asked_total", &self.asked_total)
            .finish_non_exhaustive()
    }
}

/// The kernel's answer: a netlink route query where allowed, else a test
/// bind (which says "not local" for an IPv6 AnyIP address, and "local" for
/// everything under `ip_nonlocal_bind`). A failed query falls back to the
/// bind too.
pub fn kernel_asker() -> Asker {
    match crate::sys::LocalRoutes::open() {
        Ok(mut routes) => Box::new(move |ip| routes.is_local(ip).or_else(|_| bind_check(ip))),
        Err(e) => {
            debug!(
                "cannot ask the kernel's routes ({e}): a test bind says which addresses are local"
            );
            Box::new(bind_check)
        }
    }
}

/// Whether `ip` is local by a test `bind(ip:0)`: it succeeds (or finds no
/// free port) for a local address, and fails with EADDRNOTAVAIL otherwise.
pub fn bind_check(ip: IpAddr) -> io::Result<bool> {
    match UdpSocket::bind((unmap(ip), 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => Ok(false),
        Err(e) => Err(e),
    }
}

impl LocalAddrs {
    /// The check for wildcard sockets on `ports`, asking the kernel; `None`
    /// when there are none (sockets bound to one address need no check).
    pub fn for_ports(ports: impl IntoIterator<Item = u16>) -> Option<LocalAddrs> {
        let ports: Vec<u16> = ports.into_iter().collect();
        (!ports.is_empty()).then(|| LocalAddrs::with_asker(ports, kernel_asker()))
    }

    /// As [`for_ports`](Self::for_ports), asking `asker`.
    pub fn with_asker(mut ports: Vec<u16>, asker: Asker) -> LocalAddrs {
        ports.sort_unstable();
        ports.dedup();
        LocalAddrs {
            ports,
            slots: Box::new([EMPTY; SLOTS]),
            window_ns: 0,
            asked: 0,
            asked_total: 0,
            asker,
            complained_error: false,
            complained_budget: false,
        }
    }

    /// Whether `source` is one of the server's wildcard sockets: one of their
    /// ports on an address of this host. One comparison unless the port is
    /// one of theirs.
    #[inline]
    pub fn is_own_socket(&mut self, source: SocketAddr, now_ns: u64) -> bool {
        self.ports.contains(&source.port()) && self.is_local(source.ip(), now_ns)
    }

    /// Whether `ip` is an address of this host (IPv4-mapped IPv6 as its IPv4
    /// address), from the cache or the kernel; `true` when it cannot be
    /// known (see the module docs).
    pub fn is_local(&mut self, ip: IpAddr, now_ns: u64) -> bool {
        let ip = unmap(ip);
        if ip.is_loopback() {
            return true;
        }
        let slot = slot_of(ip);
        let cached = self.slots[slot];
        if cached.ip == ip && now_ns < cached.expires_ns {
            return cached.local;
        }
        if now_ns.saturating_sub(self.window_ns) >= WINDOW_NS {
            self.window_ns = now_ns;
            self.asked = 0;
        }
        if self.asked >= ASK_BUDGET {
            self.over_budget();
            return true;
        }
        self.asked += 1;
        self.asked_total += 1;
        match (self.asker)(ip) {
            Ok(local) => {
                self.slots[slot] = Slot {
                    ip,
                    local,
                    expires_ns: now_ns.saturating_add(TTL_NS).max(1),
                };
                local
            }
            Err(e) => {
                self.failed(&e);
                true
            }
        }
    }

    /// Questions asked so far.
    pub fn asked(&self) -> u64 {
        self.asked_total
    }

    #[cold]
    fn over_budget(&mut self) {
        if !std::mem::replace(&mut self.complained_budget, true) {
            warn!(
                "more than {ASK_BUDGET} new source addresses a second on this server's own port: those the kernel was not asked about are dropped as bad-source (they could be this host)"
            );
        }
    }

    /// Logs a failed question: a warning the first time, then debug lines
    /// (formatted only when debug logging is on).
    #[cold]
    fn failed(&mut self, e: &io::Error) {
        let level = if std::mem::replace(&mut self.complained_error, true) {
            log::Level::Debug
        } else {
            log::Level::Warn
        };
        log::log!(
            level,
            "cannot ask the kernel whether an address is this host's ({e}): datagrams from this server's own port are dropped as bad-source meanwhile"
        );
    }
}

/// The cache slot of `ip`.
fn slot_of(ip: IpAddr) -> usize {
    let bits = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let all = u128::from(v6);
            (all as u64) ^ ((all >> 64) as u64)
        }
    };
    (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOT_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const SEC: u64 = 1_000_000_000;

    /// A stand-in kernel: these networks are local; counts its questions.
    fn stand_in(local: &'static [&'static str], asked: Arc<AtomicU64>) -> Asker {
        Box::new(move |ip| {
            asked.fetch_add(1, Ordering::Relaxed);
            Ok(local.iter().any(|net| {
                net.parse::<crate::net::cidr::Cidr>()
                    .unwrap()
                    .contains(unmap(ip))
            }))
        })
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn anyip_networks_and_mapped_forms_count_on_our_ports_only() {
        let asked = Arc::new(AtomicU64::new(0));
        let mut own = LocalAddrs::with_asker(
            vec![9999, 7000],
            stand_in(&["198.51.100.0/24", "10.1.2.3", "2001:db8:5::/64"], asked),
        );
        for yes in [
            "198.51.100.5:9999",
            "[::ffff:198.51.100.200]:9999",
            "10.1.2.3:7000",
            "[2001:db8:5::9]:9999",
            "127.0.0.5:9999",
            "[::1]:7000",
        ] {
            assert!(own.is_own_socket(addr(yes), 0), "{yes}");
        }
        for no in [
            "198.51.101.5:9999",
            "198.51.100.5:9998",
            "10.1.2.4:7000",
            "[2001:db8:6::1]:9999",
        ] {
            assert!(!own.is_own_socket(addr(no), 0), "{no}");
        }
    }

    #[test]
    fn answers_are_cached_for_a_ttl_so_an_address_added_later_is_seen() {
        let asked = Arc::new(AtomicU64::new(0));
        static LOCAL: AtomicU64 = AtomicU64::new(0);
        let counter = Arc::clone(&asked);
        let mut own = LocalAddrs::with_asker(
            vec![9999],
            Box::new(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(LOCAL.load(Ordering::Relaxed) == 1)
            }),
        );
        let source = addr("192.0.2.1:9999");
        let mut now = SEC;
        for _ in 0..1000 {
            assert!(!own.is_own_socket(source, now));
            now += 100_000; // 0.1 s in all
        }
        assert_eq!(asked.load(Ordering::Relaxed), 1, "cached");
        // Other ports never ask.
        for port in 1024..2024 {
            assert!(!own.is_own_socket(addr(&format!("192.0.2.9:{port}")), now));
        }
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        // The address becomes local: seen once the answer is a TTL old.
        LOCAL.store(1, Ordering::Relaxed);
        now += TTL_NS;
        assert!(own.is_own_socket(source, now));
        assert_eq!(own.asked(), 2);
    }

    #[test]
    fn a_flood_of_forged_sources_asks_at_most_the_budget_and_the_rest_are_dropped() {
        let asked = Arc::new(AtomicU64::new(0));
        let mut own = LocalAddrs::with_asker(vec![9999], stand_in(&[], Arc::clone(&asked)));
        let mut now = 0;
        let mut dropped = 0;
        // 100,000 distinct sources on our port over 10 s.
        for i in 0..100_000u32 {
            let source = SocketAddr::new(IpAddr::V4((0x0a00_0000 + i).into()), 9999);
            if own.is_own_socket(source, now) {
                dropped += 1;
            }
            now += 100_000;
        }
        let asked = asked.load(Ordering::Relaxed);
        assert!(asked <= 11 * u64::from(ASK_BUDGET), "{asked} questions");
        assert_eq!(
            dropped,
            100_000 - asked,
            "what was not asked counts as local"
        );
    }

    #[test]
    fn a_failing_kernel_counts_as_local() {
        let mut own = LocalAddrs::with_asker(vec![9999], Box::new(|_| Err(io::Error::other("no"))));
        assert!(own.is_own_socket(addr("192.0.2.1:9999"), 0));
        assert!(!own.is_own_socket(addr("192.0.2.1:9998"), 0));
    }

    #[test]
    fn slots_spread_neighbouring_addresses() {
        let used: std::collections::HashSet<usize> = (0..64u32)
            .map(|i| slot_of(IpAddr::V4((0xc633_6400 + i).into())))
            .collect();
        assert!(used.len() > 40, "{} of 64", used.len());
    }

    #[test]
    fn the_kernel_and_the_bind_check_agree_on_loopback_and_a_remote_address() {
        let mut kernel = kernel_asker();
        for ip in ["127.0.0.1", "127.3.4.5", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(kernel(ip).unwrap(), "{ip}");
            assert!(bind_check(ip).unwrap(), "{ip}");
        }
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!kernel(ip).unwrap(), "{ip}");
            if ip.is_ipv4() || UdpSocket::bind("[::1]:0").is_ok() {
                assert!(!bind_check(ip).unwrap(), "{ip}");
            }
        }
        let mut own = LocalAddrs::for_ports([9999]).unwrap();
        assert!(own.is_own_socket(addr("127.0.0.1:9999"), 0));
        assert!(!own.is_own_socket(addr("192.0.2.1:9999"), 0));
        assert!(LocalAddrs::for_ports([]).is_none());
    }
}
