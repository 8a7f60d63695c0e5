//! This host's own addresses, so that a server bound to a wildcard address
//! (`0.0.0.0`, `::`) recognises a datagram from its own port on any of them —
//! a self-loop — on the first datagram.
//!
//! Bound to one address, the server's own socket is that address and port, and
//! the guard's rules see it. Bound to a wildcard, every address of the host
//! reaches it: anyone who can send once from `(any local address, server port)`
//! (a `SO_REUSEADDR` co-binder, any local user) makes it echo to itself for
//! ever. The guard knows only loopback as "this host"; [`LocalAddrs`] knows the
//! interface list.
//!
//! The list is read at start and re-read lazily: only when a datagram comes
//! from the server's port, is not from a known local address, and the list is
//! at least [`REFRESH`] old — so an address added after start is caught too,
//! ordinary traffic costs one port comparison, and even a flood from the
//! server's port costs one `getifaddrs` a second. An address added less than a
//! second after such a re-read is missed until the next one; loop detection
//! ([`echo_loop`](crate::echo_loop)) still ends that loop after its streak.
//!
//! Every address of a network on a loopback interface is local (Linux routes
//! all of `192.0.2.0/24 dev lo` to this host, as it does `127.0.0.0/8`), so for
//! loopback interfaces the whole prefix counts; elsewhere only the address.
//! Addresses made local by a route alone (`ip route add local …`, AnyIP) are
//! not in the interface list; for those, the loop detector is the guard.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use log::{debug, warn};

use crate::guard::unmap;

/// One address of an interface, as `getifaddrs(3)` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The address.
    pub ip: IpAddr,
    /// Its network's prefix length (32 or 128 when unknown).
    pub prefix: u8,
    /// Whether the interface is a loopback one: then the whole network is local.
    pub loopback: bool,
}

/// The youngest the list may be when a miss makes it re-read.
pub const REFRESH: Duration = Duration::from_secs(1);

const REFRESH_NS: u64 = REFRESH.as_nanos() as u64;

/// Where the list comes from: [`crate::sys::interface_addrs`], or a stand-in in tests.
pub type Reader = fn(&mut Vec<InterfaceAddr>) -> io::Result<()>;

/// The host's addresses, refreshed lazily; one per echo thread (it is
/// mutable and cheap). See the module docs.
#[derive(Debug)]
pub struct LocalAddrs {
    /// Single addresses, unmapped and sorted for binary search.
    addrs: Vec<IpAddr>,
    /// Networks on loopback interfaces beyond loopback itself, `(network, prefix)`.
    loopback_nets: Vec<(IpAddr, u8)>,
    /// The reader's output, kept to reuse its allocation.
    scratch: Vec<InterfaceAddr>,
    /// When the list was last read (or tried), in ns of the injected clock.
    read_ns: u64,
    reader: Reader,
    /// A failure has been logged: log the next one at debug only.
    complained: bool,
}

impl LocalAddrs {
    /// Reads this host's interface list at `now_ns`. Never fails: without a list
    /// (unsupported platform, error) only loopback is known, and a warning says so.
    pub fn read(now_ns: u64) -> LocalAddrs {
        LocalAddrs::with_reader(crate::sys::interface_addrs, now_ns)
    }

    /// As [`read`](Self::read), with the list from `reader`.
    pub fn with_reader(reader: Reader, now_ns: u64) -> LocalAddrs {
        let mut local = LocalAddrs {
            addrs: Vec::new(),
            loopback_nets: Vec::new(),
            scratch: Vec::new(),
            read_ns: now_ns,
            reader,
            complained: false,
        };
        local.refresh(now_ns);
        local
    }

    /// Whether `ip` is an address of this host as of the last read: loopback
    /// always, IPv4-mapped IPv6 as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        ip.is_loopback()
            || self.addrs.binary_search(&ip).is_ok()
            || self
                .loopback_nets
                .iter()
                .any(|&(net, prefix)| in_network(ip, net, prefix))
    }

    /// How many single addresses and loopback networks are known.
    pub fn len(&self) -> usize {
        self.addrs.len() + self.loopback_nets.len()
    }

    /// True when nothing beyond loopback is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `source` is the server's own socket, `local`, on any address of
    /// this host: same port, and the address is `local`'s own or — for a
    /// wildcard `local` — any local one. Costs one comparison unless the port
    /// is the server's; may re-read the list (see the module docs).
    pub fn is_own_socket(&mut self, source: SocketAddr, local: SocketAddr, now_ns: u64) -> bool {
        if source.port() != local.port() {
            return false;
        }
        let ip = unmap(source.ip());
        if !local.ip().is_unspecified() {
            return ip == unmap(local.ip());
        }
        self.contains(ip) || (self.refresh_if_stale(now_ns) && self.contains(ip))
    }

    /// Re-reads the list when the last read is [`REFRESH`] old or more;
    /// returns whether it did.
    pub fn refresh_if_stale(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.read_ns) < REFRESH_NS {
            return false;
        }
        self.refresh(now_ns);
        true
    }

    /// Re-reads the list now. On failure the previous list stays.
    pub fn refresh(&mut self, now_ns: u64) {
        self.read_ns = now_ns;
        if let Err(e) = (self.reader)(&mut self.scratch) {
            let quiet = self.complained || e.kind() == io::ErrorKind::Unsupported;
            let message = format!(
                "cannot list this host's addresses ({e}): a datagram from the server's own port via a non-loopback address is dropped by loop detection after its streak, not at once"
            );
            if quiet {
                debug!("{message}");
            } else {
                warn!("{message}");
            }
            self.complained = true;
            return;
        }
        self.addrs.clear();
        self.loopback_nets.clear();
        for entry in &self.scratch {
            let ip = unmap(entry.ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if entry.loopback && entry.prefix < max && !ip.is_loopback() {
                self.loopback_nets.push((ip, entry.prefix));
            } else if !ip.is_loopback() {
                self.addrs.push(ip);
            }
        }
        self.addrs.sort_unstable();
        self.addrs.dedup();
    }
}

/// Whether `ip` is in `net/prefix` (same family only).
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    const SEC: u64 = 1_000_000_000;

    thread_local! {
        /// What the stand-in reader returns (each test runs on its own thread).
        static LIST: RefCell<io::Result<Vec<InterfaceAddr>>> = const { RefCell::new(Ok(Vec::new())) };
        static READS: Cell<usize> = const { Cell::new(0) };
    }

    fn stand_in(out: &mut Vec<InterfaceAddr>) -> io::Result<()> {
        READS.set(READS.get() + 1);
        LIST.with_borrow(|list| match list {
            Ok(list) => {
                out.clear();
                out.extend_from_slice(list);
                Ok(())
            }
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        })
    }

    fn set_list(entries: &[(&str, u8, bool)]) {
        let list = entries
            .iter()
            .map(|&(ip, prefix, loopback)| InterfaceAddr {
                ip: ip.parse().unwrap(),
                prefix,
                loopback,
            })
            .collect();
        LIST.set(Ok(list));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn interface_addresses_loopback_networks_and_mapped_forms_are_local() {
        set_list(&[
            ("127.0.0.1", 8, true),
            ("::1", 128, true),
            ("192.0.2.1", 24, true),
            ("10.1.2.3", 8, false),
            ("2001:db8::5", 64, false),
            ("fe80::1", 64, false),
        ]);
        let local = LocalAddrs::with_reader(stand_in, 0);
        for yes in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "192.0.2.1",
            "192.0.2.77",
            "::ffff:192.0.2.200",
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "2001:db8::5",
            "fe80::1",
        ] {
            assert!(local.contains(ip(yes)), "{yes}");
        }
        for no in ["192.0.3.1", "10.1.2.4", "2001:db8::6", "8.8.8.8", "::"] {
            assert!(!local.contains(ip(no)), "{no}");
        }
        assert_eq!(local.len(), 4, "three addresses and one loopback network");
    }

    #[test]
    fn only_the_servers_port_on_a_local_address_is_its_own_socket() {
        set_list(&[("192.0.2.1", 32, true), ("10.1.2.3", 8, false)]);
        let mut local = LocalAddrs::with_reader(stand_in, 0);
        let wildcard = addr("0.0.0.0:9999");
        let dual = addr("[::]:9999");
        for own in ["192.0.2.1:9999", "10.1.2.3:9999", "127.0.0.5:9999"] {
            assert!(local.is_own_socket(addr(own), wildcard, 0), "{own}");
        }
        assert!(local.is_own_socket(addr("[::ffff:10.1.2.3]:9999"), dual, 0));
        assert!(local.is_own_socket(addr("[::1]:9999"), dual, 0));
        for other in ["192.0.2.1:9998", "10.1.2.4:9999", "[2001:db8::1]:9999"] {
            assert!(!local.is_own_socket(addr(other), wildcard, 0), "{other}");
        }
        // Bound to one address: only that address is the server's own.
        let one = addr("10.1.2.3:9999");
        assert!(local.is_own_socket(addr("10.1.2.3:9999"), one, 0));
        assert!(!local.is_own_socket(addr("192.0.2.1:9999"), one, 0));
    }

    #[test]
    fn an_address_added_later_is_found_with_at_most_one_read_a_second() {
        set_list(&[("10.1.2.3", 8, false)]);
        let mut local = LocalAddrs::with_reader(stand_in, 0);
        let wildcard = addr("0.0.0.0:9999");
        let reads = READS.get();
        // A flood from the server's port on a remote address: one re-read a second.
        let mut now = 0;
        for _ in 0..100_000 {
            assert!(!local.is_own_socket(addr("198.51.100.7:9999"), wildcard, now));
            now += 100_000; // 10 s in all
        }
        assert!(READS.get() - reads <= 10, "{} reads", READS.get() - reads);
        // Other ports never read it.
        let reads = READS.get();
        for _ in 0..1000 {
            now += SEC;
            assert!(!local.is_own_socket(addr("198.51.100.7:9998"), wildcard, now));
        }
        assert_eq!(READS.get(), reads);
        // An address added after start: caught on its first datagram.
        set_list(&[("10.1.2.3", 8, false), ("192.0.2.1", 32, true)]);
        now += SEC;
        assert!(local.is_own_socket(addr("192.0.2.1:9999"), wildcard, now));
    }

    #[test]
    fn a_failed_read_keeps_the_previous_list() {
        set_list(&[("10.1.2.3", 8, false)]);
        let mut local = LocalAddrs::with_reader(stand_in, 0);
        LIST.set(Err(io::Error::other("netlink trouble")));
        assert!(local.refresh_if_stale(2 * SEC));
        assert!(local.contains(ip("10.1.2.3")));
        assert!(!local.refresh_if_stale(2 * SEC + 1), "not retried at once");
        // Without any list, loopback is still known.
        let empty = LocalAddrs::with_reader(stand_in, 0);
        assert!(empty.is_empty());
        assert!(empty.contains(ip("127.0.0.1")));
        assert!(!empty.contains(ip("10.1.2.3")));
    }

    #[cfg(all(target_os = "linux", not(udp_echo_portable)))]
    #[test]
    fn the_real_list_reads_and_has_sane_prefixes() {
        let mut list = Vec::new();
        crate::sys::interface_addrs(&mut list).unwrap();
        for entry in &list {
            let max = if entry.ip.is_ipv4() { 32 } else { 128 };
            assert!(entry.prefix <= max, "{entry:?}");
            if entry.ip == ip("127.0.0.1") {
                assert!(entry.loopback, "{entry:?}");
            }
        }
        let local = LocalAddrs::read(0);
        for entry in &list {
            assert!(local.contains(entry.ip), "{entry:?}");
        }
    }
}
