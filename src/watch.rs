//! Port-sharing watch: SO_REUSEADDR (kept, as the seed had it) lets any local
//! user bind the server's UDP port later and silently take datagrams meant for
//! it — neither socket sees an error. The server looks at the kernel's socket
//! table at start (`Server::bind`, in its start-up report) and then every
//! [`WATCH_INTERVAL`] for sockets on its port that are not its own, and warns
//! once per newcomer.
//!
//! The decision ([`Watch::newcomers`]) is pure; the thread only reads
//! `/proc/net/udp{,6}` and sleeps in short steps so a stop is seen promptly.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::net::{self, udp_table::UdpSocketEntry};
use crate::shutdown::Stop;

/// How often the kernel's table is read: often enough that a hijack is named
/// within seconds, rarely enough to cost nothing (one small file read).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Remembers which foreign sockets were already reported.
#[derive(Debug, Default)]
pub struct Watch {
    known: HashSet<u64>,
}

impl Watch {
    /// The holders not reported before, now remembered.
    pub fn newcomers(&mut self, holders: &[UdpSocketEntry]) -> Vec<UdpSocketEntry> {
        holders
            .iter()
            .filter(|h| self.known.insert(h.inode))
            .copied()
            .collect()
    }

    /// How many distinct foreign sockets were seen.
    pub fn seen(&self) -> u64 {
        self.known.len() as u64
    }
}

/// The warning for one newcomer: who, and what to do.
pub fn warning(local: SocketAddr, h: &UdpSocketEntry) -> String {
    format!(
        "another socket shares UDP port {port} with this server: {addr}, uid {uid}, inode {inode}; it can receive datagrams meant for this server. Find it with `ss -ulpne 'sport = :{port}'`; restart with --exclusive to keep others out",
        port = local.port(),
        addr = h.local,
        uid = h.uid,
        inode = h.inode
    )
}

/// Watches `local` until `stop`, warning about sockets that are not `ours` and
/// were not already there `at_start` (the start-up report names those); returns
/// how many distinct ones were seen, those at start included.
pub fn watch_port(
    local: SocketAddr,
    ours: &[u64],
    at_start: &[UdpSocketEntry],
    stop: &Stop,
) -> u64 {
    let mut watch = Watch::default();
    // The start-up report named these already: remember them, warn about none.
    watch.newcomers(at_start);
    let mut next = Instant::now() + WATCH_INTERVAL;
    while stop.sleep_until(next) {
        let Some(holders) = net::foreign_holders(local, ours) else {
            log::debug!("/proc/net/udp is no longer readable: the port-sharing watch stops");
            return watch.seen();
        };
        for h in watch.newcomers(&holders) {
            log::warn!("{}", warning(local, &h));
        }
        next = Instant::now() + WATCH_INTERVAL;
    }
    watch.seen()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(inode: u64) -> UdpSocketEntry {
        UdpSocketEntry {
            local: "127.0.0.1:9999".parse().unwrap(),
            uid: 1000,
            inode,
            drops: 0,
        }
    }

    #[test]
    fn each_foreign_socket_is_reported_once() {
        let mut watch = Watch::default();
        assert_eq!(watch.newcomers(&[entry(1)]), vec![entry(1)]);
        assert_eq!(watch.newcomers(&[entry(1)]), vec![]);
        assert_eq!(watch.newcomers(&[entry(1), entry(2)]), vec![entry(2)]);
        assert_eq!(watch.newcomers(&[]), vec![]);
        assert_eq!(watch.seen(), 2);
    }

    #[test]
    fn the_warning_names_address_uid_inode_and_the_way_out() {
        let text = warning("127.0.0.1:9999".parse().unwrap(), &entry(4242));
        for part in [
            "UDP port 9999",
            "127.0.0.1:9999",
            "uid 1000",
            "inode 4242",
            "--exclusive",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }
}
