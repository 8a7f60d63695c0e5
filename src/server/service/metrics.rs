//! The server's metrics: a [`Snapshot`] of what the echo loops published,
//! rendered as Prometheus text with `prometheus-client`.
//!
//! The registry is built at scrape time from the snapshot. The echo loops
//! already store their running totals in relaxed atomics after each batch
//! (the `--stats-interval` mechanism); the metrics thread only reads them, so
//! the hot loop does no more work with `--metrics` than with
//! `--stats-interval`. A `prometheus-client` collector must be `'static`, and
//! the loops' atomics live on `Server::run`'s stack; copying them into an
//! owned snapshot and registering fresh metrics holding its values (and one
//! small collector, for the drop reasons in a fixed order) per scrape costs a
//! few allocations every scrape interval (seconds), nothing per datagram.

use std::net::{SocketAddr, TcpListener};
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::net::{self, udp_table};
use crate::server::guard::DropReason;
use crate::server::{Counters, Observer, Running, StartupReport};
use crate::shutdown::Stop;

/// Everything one scrape shows: the loops' totals and what the kernel says now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// The echo loops' totals, merged.
    pub counters: Counters,
    /// Datagrams the kernel dropped on our sockets (`/proc/net/udp`); `None`
    /// where unreadable (the metric is then left out).
    pub kernel_drops: Option<u64>,
    /// Other sockets on our port now; `None` where unreadable.
    pub port_sharers: Option<u64>,
    /// Granted `SO_RCVBUF`, bytes.
    pub recv_buf_bytes: u64,
    /// Granted `SO_SNDBUF`, bytes.
    pub send_buf_bytes: u64,
    /// Echo threads.
    pub threads: u64,
    /// When the server started, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl Snapshot {
    /// Reads the kernel's side now (`/proc/net/udp`) beside the loops' `counters`.
    pub fn take(
        counters: Counters,
        report: &StartupReport,
        inodes: &[u64],
        started: SystemTime,
    ) -> Snapshot {
        Snapshot {
            counters,
            kernel_drops: udp_table::drops_of(inodes),
            port_sharers: net::foreign_holders(report.local, inodes).map(|h| h.len() as u64),
            recv_buf_bytes: report.recv_buf.effective as u64,
            send_buf_bytes: report.send_buf.effective as u64,
            threads: report.threads as u64,
            start_time_seconds: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

/// `dropped_datagrams_total{reason}`, every reason in [`DropReason::ALL`]'s
/// order (a `Family` would list them in hash order, different every scrape).
#[derive(Debug)]
struct DropsByReason([u64; DropReason::COUNT]);

impl Collector for DropsByReason {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "dropped_datagrams",
            "Datagrams dropped unanswered by the guard, by reason.",
            None,
            MetricType::Counter,
        )?;
        for reason in DropReason::ALL {
            let labels = [("reason", reason.name())];
            ConstCounter::new(self.0[reason.index()]).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A label set of `(name, value)` pairs, as `prometheus-client` encodes it.
type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric: Counter = Counter::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let metric: Gauge = Gauge::default();
    metric.set(value);
    registry.register(name, help, metric);
}

/// The snapshot as Prometheus text (format 0.0.4), every name `udp_echo_server_*`.
pub fn render(s: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("udp_echo_server");
    let c = &s.counters;
    // `prometheus-client` appends `_total` to counters itself.
    counter(
        &mut registry,
        "received_datagrams",
        "Datagrams received, the stop datagram included",
        c.datagrams_received,
    );
    counter(
        &mut registry,
        "received_bytes",
        "Payload bytes received",
        c.bytes_received,
    );
    counter(
        &mut registry,
        "echoed_datagrams",
        "Datagrams sent back in full",
        c.datagrams_echoed,
    );
    counter(
        &mut registry,
        "echoed_bytes",
        "Payload bytes sent back",
        c.bytes_echoed,
    );
    registry.register_collector(Box::new(DropsByReason(c.dropped)));
    counter(
        &mut registry,
        "send_errors",
        "Echoes the kernel refused (ENOBUFS, unreachable...)",
        c.send_errors,
    );
    counter(
        &mut registry,
        "receive_errors",
        "Receive calls that failed (e.g. a queued ICMP error)",
        c.recv_errors,
    );
    counter(
        &mut registry,
        "unsourced_replies",
        "Replies of a wildcard socket sent from the kernel's choice of source, not the address asked",
        c.unsourced_replies,
    );
    if let Some(drops) = s.kernel_drops {
        counter(
            &mut registry,
            "kernel_dropped_datagrams",
            "Drops the kernel counted on the server's sockets (receive buffer full), from /proc/net/udp: datagrams, or with UDP GRO on (the default) receive buffers of up to 128 datagrams each",
            drops,
        );
    }
    if let Some(sharers) = s.port_sharers {
        gauge(
            &mut registry,
            "port_sharers",
            "Sockets other than the server's own on its UDP port now",
            sharers as i64,
        );
    }
    gauge(
        &mut registry,
        "receive_buffer_bytes",
        "SO_RCVBUF as granted by the kernel, per socket",
        s.recv_buf_bytes as i64,
    );
    gauge(
        &mut registry,
        "send_buffer_bytes",
        "SO_SNDBUF as granted by the kernel, per socket",
        s.send_buf_bytes as i64,
    );
    gauge(&mut registry, "threads", "Echo threads", s.threads as i64);
    let start = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    start.set(s.start_time_seconds);
    registry.register(
        "start_time_seconds",
        "When the server started, seconds since the Unix epoch",
        start,
    );
    let build = Family::<Labels, Gauge>::default();
    build
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
        .set(1);
    registry.register("build_info", "Always 1; the version is a label", build);
    let mut text = String::with_capacity(4096);
    prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// Serves `/metrics` on `listener` until `stop`: each scrape merges the loops'
/// published totals (`totals()`) and reads the kernel's socket table.
pub fn serve(
    listener: &TcpListener,
    report: &StartupReport,
    inodes: &[u64],
    totals: &dyn Fn() -> Counters,
    stop: &Stop,
) {
    let started = SystemTime::now();
    let render_now = || render(&Snapshot::take(totals(), report, inodes, started));
    crate::metrics::http::serve(listener, stop, prometheus_text::CONTENT_TYPE, &render_now);
}

/// [`serve`] on `listener` as the server's [`Observer`]: the thread
/// `Server::run` starts beside its loops.
pub fn observer(listener: TcpListener) -> Observer {
    Observer::new(move |running: Running<'_>| {
        serve(
            &listener,
            running.report,
            running.inodes,
            running.totals,
            running.stop,
        );
    })
}

/// The second line the server prints on stdout with `--metrics`.
pub fn announce(addr: SocketAddr) -> String {
    format!("metrics on {}", crate::metrics::url(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_renders_every_metric_with_its_unit_and_reason() {
        let mut counters = Counters {
            datagrams_received: 12,
            bytes_received: 1200,
            datagrams_echoed: 9,
            bytes_echoed: 900,
            send_errors: 1,
            unsourced_replies: 5,
            ..Counters::default()
        };
        counters.dropped[DropReason::NotAllowed.index()] = 2;
        counters.dropped[DropReason::Short.index()] = 4;
        let text = render(&Snapshot {
            counters,
            kernel_drops: Some(3),
            port_sharers: Some(0),
            recv_buf_bytes: 212_992,
            send_buf_bytes: 212_992,
            threads: 2,
            start_time_seconds: 1.7e9,
        });
        for line in [
            "# TYPE udp_echo_server_received_datagrams_total counter",
            "udp_echo_server_received_datagrams_total 12",
            "udp_echo_server_received_bytes_total 1200",
            "udp_echo_server_echoed_datagrams_total 9",
            "udp_echo_server_echoed_bytes_total 900",
            "udp_echo_server_dropped_datagrams_total{reason=\"not-allowed\"} 2",
            "udp_echo_server_dropped_datagrams_total{reason=\"loop\"} 0",
            "udp_echo_server_dropped_datagrams_total{reason=\"short\"} 4",
            "udp_echo_server_send_errors_total 1",
            "udp_echo_server_receive_errors_total 0",
            "udp_echo_server_unsourced_replies_total 5",
            "udp_echo_server_kernel_dropped_datagrams_total 3",
            "udp_echo_server_port_sharers 0",
            "udp_echo_server_receive_buffer_bytes 212992",
            "udp_echo_server_threads 2",
            "udp_echo_server_start_time_seconds 1700000000.0",
            "udp_echo_server_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn unknown_kernel_figures_are_left_out() {
        let text = render(&Snapshot {
            counters: Counters::default(),
            kernel_drops: None,
            port_sharers: None,
            recv_buf_bytes: 1,
            send_buf_bytes: 1,
            threads: 1,
            start_time_seconds: 0.0,
        });
        assert!(!text.contains("kernel_dropped"), "{text}");
        assert!(!text.contains("port_sharers"), "{text}");
    }
}
