//! What the echo loops count, how the `--stats-interval` thread sees it, and
//! the end-of-run summary.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::info;

use crate::net::udp_table;
use crate::server::guard::DropReason;
use crate::shutdown::{Stop, signal_name};

/// What one echo loop counted.
///
/// Each datagram read is booked once: `datagrams_received =
/// datagrams_echoed + dropped (all reasons) + send_errors + taken_after_stop`,
/// plus the stop datagram itself when `stopped_by` is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received, the stop datagram included.
    pub datagrams_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Datagrams sent back in full.
    pub datagrams_echoed: u64,
    /// Payload bytes sent back.
    pub bytes_echoed: u64,
    /// Echoes the kernel refused (ENOBUFS, EMSGSIZE, unreachable…): counted, not fatal.
    pub send_errors: u64,
    /// Receive calls that failed with something other than a timeout (e.g. an ICMP
    /// error queued on the socket): counted, not fatal.
    pub recv_errors: u64,
    /// Datagrams one `recvmmsg` took after the stop datagram in the same batch:
    /// read, so counted as received, but not echoed.
    pub taken_after_stop: u64,
    /// Datagrams dropped by the guard, per [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    /// Echoes a wildcard socket sent from the kernel's choice of source
    /// address instead of their request's destination: the kernel reported
    /// none that can be a source (e.g. a multicast destination), or refused
    /// it. Also in `datagrams_echoed`.
    pub unsourced_replies: u64,
    /// The sender of the empty datagram that stopped this loop, if one did.
    pub stopped_by: Option<SocketAddr>,
}

impl Counters {
    /// Adds another loop's counts (the summary of a multi-threaded run).
    pub fn merge(&mut self, other: &Counters) {
        self.datagrams_received += other.datagrams_received;
        self.bytes_received += other.bytes_received;
        self.datagrams_echoed += other.datagrams_echoed;
        self.bytes_echoed += other.bytes_echoed;
        self.send_errors += other.send_errors;
        self.recv_errors += other.recv_errors;
        self.taken_after_stop += other.taken_after_stop;
        self.unsourced_replies += other.unsourced_replies;
        for (total, more) in self.dropped.iter_mut().zip(other.dropped) {
            *total += more;
        }
        self.stopped_by = self.stopped_by.or(other.stopped_by);
    }

    /// All datagrams the guard dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// A loop's counters as the stats and metrics threads see them: the loop
/// stores its own totals (relaxed stores, no read-modify-write) after each
/// batch, only when `--stats-interval` or `--metrics` is on. Padded to a cache
/// line so threads don't share one.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct Published {
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
    datagrams_echoed: AtomicU64,
    bytes_echoed: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    unsourced_replies: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
}

impl Published {
    pub(super) fn store(&self, c: &Counters) {
        self.datagrams_received
            .store(c.datagrams_received, Ordering::Relaxed);
        self.bytes_received
            .store(c.bytes_received, Ordering::Relaxed);
        self.datagrams_echoed
            .store(c.datagrams_echoed, Ordering::Relaxed);
        self.bytes_echoed.store(c.bytes_echoed, Ordering::Relaxed);
        self.send_errors.store(c.send_errors, Ordering::Relaxed);
        self.recv_errors.store(c.recv_errors, Ordering::Relaxed);
        self.unsourced_replies
            .store(c.unsourced_replies, Ordering::Relaxed);
        for (slot, value) in self.dropped.iter().zip(c.dropped) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Counters {
        Counters {
            datagrams_received: self.datagrams_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            datagrams_echoed: self.datagrams_echoed.load(Ordering::Relaxed),
            bytes_echoed: self.bytes_echoed.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            recv_errors: self.recv_errors.load(Ordering::Relaxed),
            unsourced_replies: self.unsourced_replies.load(Ordering::Relaxed),
            dropped: self.dropped.each_ref().map(|d| d.load(Ordering::Relaxed)),
            ..Counters::default()
        }
    }
}

/// The published totals of every loop, merged.
pub(super) fn totals(published: &[Published]) -> Counters {
    let mut totals = Counters::default();
    for p in published {
        totals.merge(&p.load());
    }
    totals
}

/// The `--stats-interval` thread: every interval, one line whose figures
/// all cover that interval (rates, drops, errors, kernel drops), then the
/// running totals, labelled as such. A drop before the interval began is in
/// the totals only.
pub(super) fn report_stats(
    published: &[Published],
    inodes: &[u64],
    interval: Duration,
    stop: &Stop,
    started: Instant,
    status: Option<&(dyn Fn(&str) + Send + Sync)>,
) {
    let mut last = Counters::default();
    // The socket's counter may predate this run (socket activation).
    let first_kernel = udp_table::drops_of(inodes);
    let mut last_kernel = first_kernel;
    let mut last_at = started;
    let mut next = started + interval;
    while stop.sleep_until(next) {
        let now = Instant::now();
        let totals = totals(published);
        let kernel = udp_table::drops_of(inodes);
        let line = stats_line(
            (last_at.duration_since(started), now.duration_since(started)),
            &totals,
            &last,
            (kernel, last_kernel, first_kernel),
        );
        info!("{line}");
        // The same line as the service manager's STATUS (`systemctl status`).
        if let Some(status) = status {
            status(&line);
        }
        last = totals;
        last_kernel = kernel;
        last_at = now;
        next += interval;
    }
}

/// One `--stats-interval` line for the interval `span` (since the start):
/// what changed from `last` to `totals` (and in the kernel's drop counter,
/// `kernel` = (now, at the interval's start, at the run's start)), then the
/// totals since the start.
fn stats_line(
    span: (Duration, Duration),
    totals: &Counters,
    last: &Counters,
    kernel: (Option<u64>, Option<u64>, Option<u64>),
) -> String {
    let (from, to) = (span.0.as_secs_f64(), span.1.as_secs_f64());
    let secs = (to - from).max(1e-9);
    let mut dropped = totals.dropped;
    for (d, before) in dropped.iter_mut().zip(last.dropped) {
        *d = d.saturating_sub(before);
    }
    let since = |then: Option<u64>| Some(kernel.0?.saturating_sub(then?));
    format!(
        "stats {from:.1}-{to:.1} s: {:.0} datagrams/s, {:.0} bytes/s, {}, send errors {}, receive errors {}, kernel drops {}; since the start: received {}, echoed {}, dropped {}, kernel drops {}",
        totals
            .datagrams_echoed
            .saturating_sub(last.datagrams_echoed) as f64
            / secs,
        totals.bytes_echoed.saturating_sub(last.bytes_echoed) as f64 / secs,
        Drops(&dropped),
        totals.send_errors.saturating_sub(last.send_errors),
        totals.recv_errors.saturating_sub(last.recv_errors),
        crate::net::limits::Reading(since(kernel.1)),
        totals.datagrams_received,
        totals.datagrams_echoed,
        totals.dropped_total(),
        crate::net::limits::Reading(since(kernel.2)),
    )
}

/// Renders per-reason drop counts: `dropped 3 (service-port 1, bad-source 0, …)`.
struct Drops<'a>(&'a [u64; DropReason::COUNT]);

impl fmt::Display for Drops<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dropped {} (", self.0.iter().sum::<u64>())?;
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{reason} {}", self.0[reason.index()])?;
        }
        f.write_str(")")
    }
}

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An empty datagram from this sender, allowed by `--stop-on-empty`.
    EmptyDatagram(SocketAddr),
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The embedding code raised the stop flag.
    Requested,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::EmptyDatagram(source) => write!(f, "empty datagram from {source}"),
            StopReason::Signal(signal) => f.write_str(signal_name(*signal)),
            StopReason::Requested => f.write_str("request"),
        }
    }
}

/// The end-of-run report: what was echoed, what failed, and why it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSummary {
    /// Merged counters of the run.
    pub counters: Counters,
    /// Why the run ended.
    pub cause: StopReason,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// What the kernel dropped before the server saw it (receive buffer
    /// full), from `/proc/net/udp`; `None` where that is unavailable.
    pub kernel_drops: Option<u64>,
    /// Whether [`Self::kernel_drops`] counts receive buffers, not datagrams:
    /// with UDP GRO on (the default loop) the kernel counts one drop per
    /// buffer, and a sender's GSO send arrives as one buffer of up to
    /// [`GRO_SEGMENTS_MAX`](crate::net::GRO_SEGMENTS_MAX) datagrams (3
    /// counted drops were 158 lost probes of `--rate 1000000`).
    pub kernel_drops_are_buffers: bool,
    /// Foreign sockets seen sharing the port during the run; `None` when the
    /// kernel's socket table could not be read (the watch was off).
    pub port_sharers: Option<u64>,
}

impl fmt::Display for ServerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "stopped by {} after {:.1} s: received {} ({} bytes), echoed {} ({} bytes), {}, send errors {}, ",
            self.cause,
            self.elapsed.as_secs_f64(),
            crate::units::count(c.datagrams_received, "datagram", "datagrams"),
            c.bytes_received,
            c.datagrams_echoed,
            c.bytes_echoed,
            Drops(&c.dropped),
            c.send_errors,
        )?;
        // Only a stop datagram followed by more in the same batch leaves these.
        if c.taken_after_stop > 0 {
            write!(
                f,
                "taken after the stop datagram {} (read, not echoed), ",
                c.taken_after_stop
            )?;
        }
        // Only a wildcard socket that could not answer from the address asked.
        if c.unsourced_replies > 0 {
            write!(
                f,
                "replies not from the address asked {}, ",
                c.unsourced_replies
            )?;
        }
        let unit = match self.kernel_drops {
            Some(drops) if drops > 0 && self.kernel_drops_are_buffers => format!(
                " receive buffers (UDP GRO: up to {} datagrams each)",
                crate::net::GRO_SEGMENTS_MAX
            ),
            _ => String::new(),
        };
        write!(
            f,
            "receive errors {}, kernel drops {}{unit}, port sharers {}",
            c.recv_errors,
            crate::net::limits::Reading(self.kernel_drops),
            crate::net::limits::Reading(self.port_sharers),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_one_line() {
        let summary = ServerSummary {
            counters: Counters {
                datagrams_received: 3,
                bytes_received: 10,
                datagrams_echoed: 2,
                bytes_echoed: 10,
                dropped: [1, 0, 0, 0, 0, 0, 0, 0],
                ..Counters::default()
            },
            cause: StopReason::Signal(signal_hook::consts::SIGTERM),
            elapsed: Duration::from_millis(1500),
            kernel_drops: None,
            kernel_drops_are_buffers: false,
            port_sharers: Some(0),
        };
        assert_eq!(
            summary.to_string(),
            "stopped by SIGTERM after 1.5 s: received 3 datagrams (10 bytes), echoed 2 (10 bytes), dropped 1 (service-port 1, bad-source 0, not-allowed 0, rate-limited 0, loop 0, malformed 0, short 0, no-reply 0), send errors 0, receive errors 0, kernel drops unknown, port sharers 0"
        );
        // Only a wildcard server that could not answer from the address asked.
        let mut wildcard = summary;
        wildcard.counters.unsourced_replies = 2;
        assert!(
            wildcard
                .to_string()
                .contains("send errors 0, replies not from the address asked 2, receive errors 0"),
            "{wildcard}"
        );
    }

    #[test]
    fn a_stats_line_gives_the_interval_s_figures_and_labels_the_totals() {
        let mut earlier = Counters {
            datagrams_received: 1,
            ..Counters::default()
        };
        earlier.dropped[DropReason::NotAllowed.index()] = 1;
        let mut now = earlier;
        now.datagrams_received += 10;
        now.datagrams_echoed = 10;
        now.bytes_echoed = 100;
        now.send_errors = 2;
        let line = stats_line(
            (Duration::from_millis(500), Duration::from_millis(1000)),
            &now,
            &earlier,
            (Some(7), Some(5), Some(4)),
        );
        assert!(
            line.starts_with("stats 0.5-1.0 s: 20 datagrams/s, 200 bytes/s, dropped 0 ("),
            "{line}"
        );
        assert!(line.contains("not-allowed 0"), "{line}");
        assert!(
            line.contains("), send errors 2, receive errors 0, kernel drops 2; "),
            "{line}"
        );
        assert!(
            line.ends_with("since the start: received 11, echoed 10, dropped 1, kernel drops 3"),
            "{line}"
        );
        let unknown = stats_line(
            (Duration::ZERO, Duration::from_secs(1)),
            &now,
            &now,
            (None, None, None),
        );
        assert!(unknown.ends_with("kernel drops unknown"), "{unknown}");
    }

    #[test]
    fn one_datagram_is_singular() {
        let summary = ServerSummary {
            counters: Counters {
                datagrams_received: 1,
                ..Counters::default()
            },
            cause: StopReason::Requested,
            elapsed: Duration::from_millis(100),
            kernel_drops: Some(0),
            kernel_drops_are_buffers: false,
            port_sharers: Some(0),
        };
        let line = summary.to_string();
        assert!(line.contains("received 1 datagram (0 bytes)"), "{line}");
    }

    #[test]
    fn kernel_drops_of_a_gro_socket_are_named_buffers() {
        // With UDP GRO the kernel counts a dropped GSO send once: 3 drops
        // were 158 lost probes of a --rate 1000000 client.
        let summary = |drops, are_buffers| {
            ServerSummary {
                counters: Counters::default(),
                cause: StopReason::Requested,
                elapsed: Duration::from_millis(100),
                kernel_drops: Some(drops),
                kernel_drops_are_buffers: are_buffers,
                port_sharers: Some(0),
            }
            .to_string()
        };
        assert!(
            summary(3, true).ends_with(
                "kernel drops 3 receive buffers (UDP GRO: up to 128 datagrams each), port sharers 0"
            ),
            "{}",
            summary(3, true)
        );
        // Nothing dropped, or datagrams counted one by one: the plain count.
        assert!(summary(0, true).ends_with("kernel drops 0, port sharers 0"));
        assert!(summary(3, false).ends_with("kernel drops 3, port sharers 0"));
    }

    #[test]
    fn the_summary_names_datagrams_taken_after_the_stop() {
        let summary = ServerSummary {
            counters: Counters {
                datagrams_received: 4,
                bytes_received: 11,
                datagrams_echoed: 2,
                bytes_echoed: 6,
                taken_after_stop: 1,
                stopped_by: Some("127.0.0.1:40000".parse().unwrap()),
                ..Counters::default()
            },
            cause: StopReason::EmptyDatagram("127.0.0.1:40000".parse().unwrap()),
            elapsed: Duration::from_millis(100),
            kernel_drops: Some(0),
            kernel_drops_are_buffers: false,
            port_sharers: None,
        };
        let line = summary.to_string();
        assert!(
            line.contains(
                "send errors 0, taken after the stop datagram 1 (read, not echoed), receive errors 0"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("kernel drops 0, port sharers unknown"),
            "no socket table, no count: {line}"
        );
    }
}
