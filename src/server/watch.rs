//! Port-sharing watch: SO_REUSEADDR (set unless `--exclusive`) lets any local
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

/// How often the kernel's table is read at most: often enough that a
/// co-binder living a fraction of a second is usually seen. The read's cost
/// grows faster than the table (measured here: 0.1 ms with a handful of UDP
/// sockets, 0.4 ms with 100, 6 ms with 1,000, 350 ms with 10,000), so the
/// interval also stretches to [`COST_FACTOR`] times the last read: the watch
/// never takes more than 2% of one core. A co-binder living less than the
/// interval can still be missed; the datagram it may leave behind to start a
/// loop is caught by the own-socket check and loop detection
/// ([`loop_detect`](crate::server::guard::loop_detect)), not by the watch.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The interval is at least this many times the last read of the table.
pub(crate) const COST_FACTOR: u32 = 50;

/// After a failed read (out of descriptors, say), the next try comes after
/// [`WATCH_INTERVAL`], then twice as long each time, up to this.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long to wait before the next read after `failures` failed ones in a row.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    WATCH_INTERVAL
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

/// Remembers which foreign sockets were already reported.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    known: HashSet<u64>,
}

impl Watch {
    /// The holders not reported before, now remembered.
    pub(crate) fn newcomers(&mut self, holders: &[UdpSocketEntry]) -> Vec<UdpSocketEntry> {
        holders
            .iter()
            .filter(|h| self.known.insert(h.inode))
            .copied()
            .collect()
    }

    /// How many distinct foreign sockets were seen.
    pub(crate) fn seen(&self) -> u64 {
        self.known.len() as u64
    }
}

/// The warning for one newcomer: what it does, who, and what to do. With
/// `exclusive` the kernel should have refused it, so the advice differs.
pub(crate) fn warning(h: &UdpSocketEntry, exclusive: bool) -> String {
    let way_out = if exclusive {
        "--exclusive is on, so it bound before this server or in a way the kernel allows (another network namespace shares no port)"
    } else {
        "restart with --exclusive to keep others out"
    };
    format!(
        "another socket shares UDP port {port} with this server and receives the datagrams meant for it: {addr}, uid {uid}, inode {inode} (on Linux the later or more specific SO_REUSEADDR binder takes all of them, silently). Find it with `ss -ulpne 'sport = :{port}'`; {way_out}",
        port = h.local.port(),
        addr = h.local,
        uid = h.uid,
        inode = h.inode
    )
}

/// Watches `locals` (the server's distinct socket addresses) until `stop`, warning about sockets that are not `ours` and
/// were not already there `at_start` (the start-up report names those); returns
/// how many distinct ones were seen, those at start included, or `None` when
/// a read of the table failed on the way (the count may understate). A failed
/// read is retried with a growing delay ([`retry_delay`]), and the log says
/// when the watch is blind and when it sees again.
pub(crate) fn watch_port(
    locals: &[SocketAddr],
    ours: &[u64],
    at_start: &[UdpSocketEntry],
    exclusive: bool,
    stop: &Stop,
) -> Option<u64> {
    let mut watch = Watch::default();
    // The start-up report named these already: remember them, warn about none.
    watch.newcomers(at_start);
    let mut next = Instant::now() + WATCH_INTERVAL;
    let (mut failures, mut blind_once) = (0u32, false);
    while stop.sleep_until(next) {
        let read_at = Instant::now();
        let Some(holders) = net::foreign_holders_of(locals, ours) else {
            failures += 1;
            blind_once = true;
            let delay = retry_delay(failures);
            if failures == 1 {
                log::warn!(
                    "cannot read /proc/net/udp (out of descriptors?): the port-sharing watch is blind; retrying in {} ms, then less and less often (up to every {} s)",
                    delay.as_millis(),
                    MAX_RETRY.as_secs()
                );
            }
            next = Instant::now() + delay;
            continue;
        };
        if failures > 0 {
            log::info!(
                "/proc/net/udp is readable again after {failures} failed read{}: the port-sharing watch goes on (a socket that came and went meanwhile was missed)",
                if failures == 1 { "" } else { "s" }
            );
            failures = 0;
        }
        for h in watch.newcomers(&holders) {
            log::warn!("{}", warning(&h, exclusive));
        }
        let now = Instant::now();
        next = now + WATCH_INTERVAL.max(now.duration_since(read_at) * COST_FACTOR);
    }
    (!blind_once).then(|| watch.seen())
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
    fn a_failed_read_is_retried_ever_later_up_to_the_cap() {
        assert_eq!(retry_delay(1), WATCH_INTERVAL);
        assert_eq!(retry_delay(2), WATCH_INTERVAL * 2);
        assert_eq!(retry_delay(3), WATCH_INTERVAL * 4);
        assert_eq!(retry_delay(8), MAX_RETRY);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn the_warning_names_address_uid_inode_and_the_way_out() {
        let text = warning(&entry(4242), false);
        for part in [
            "UDP port 9999",
            "receives the datagrams meant for it",
            "127.0.0.1:9999",
            "uid 1000",
            "inode 4242",
            "restart with --exclusive",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let text = warning(&entry(4242), true);
        assert!(!text.contains("restart with --exclusive"), "{text}");
        assert!(text.contains("--exclusive is on"), "{text}");
    }
}
