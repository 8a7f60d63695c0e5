//! The fleet's `/metrics`: the single-target client's `udp_echo_client_*`
//! series (same names, so dashboards carry over), one per target, labelled
//! `target` (as written) plus its group's labels; and process-wide
//! `udp_echo_client_fleet_*` series.
//!
//! The engine owns the books; what a scrape reads is a [`TargetMetrics`] per
//! target, which the engine writes under its own short lock after each
//! change of that target's books. A scrape takes the current list of
//! targets (an `Arc` swapped on reload, so a removed target's series leave
//! with it) and encodes it with `prometheus-client` through a
//! [`Collector`](prometheus_client::collector::Collector), family by
//! family, never touching the engine (`collector.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::spec::TargetSpec;
use crate::client::metrics::RTT_BUCKETS;
use crate::client::probe::Clock;
use crate::client::stamp::StampFigures;
use crate::client::stats::Counts;

/// One target's figures as a scrape reads them, written by the engine.
///
/// Behind one lock per target, taken once per change by the engine and once
/// per scrape by the endpoint (never contended for long: a copy of a few
/// hundred bytes), so a scrape sees each target whole: never more received
/// than sent, nor a round trip counted before its reply (the negative loss
/// of cloudprober#1035 comes from counters read at different moments).
#[derive(Debug)]
pub(crate) struct TargetMetrics {
    target: String,
    labels: Arc<[(String, String)]>,
    stamped: bool,
    state: Mutex<State>,
}

/// A target's figures at one moment.
#[derive(Debug, Clone, Copy)]
struct State {
    counts: [u64; COUNTS],
    dscp_changed: u64,
    /// Round trips per bucket of [`RTT_BUCKETS`] (not cumulative), past the last.
    rtt_buckets: [u64; RTT_BUCKETS.len() + 1],
    rtt_count: u64,
    /// The sum of the round trips, seconds.
    rtt_sum: f64,
    /// The engine clock's ns of the last reply (of the start before one).
    last_reply_ns: u64,
    /// A STAMP target's own figures.
    stamp: StampFigures,
}

/// One matched reply, as the metrics take it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    /// When it was booked (the engine's clock).
    pub(crate) now_ns: u64,
    /// Its round trip, when it is measured (intact, in time, first).
    pub(crate) rtt_ns: Option<u64>,
    /// It came back with another DSCP than its probe left with.
    pub(crate) dscp_changed: bool,
}

/// The counters taken from the books' [`Counts`], in this order.
const COUNTS: usize = 8;
const COUNT_FAMILIES: [(&str, &str); COUNTS] = [
    ("udp_echo_client_probes_sent", "Probes sent"),
    (
        "udp_echo_client_probes_received",
        "Probes answered within the timeout (intact, corrupt or truncated)",
    ),
    (
        "udp_echo_client_probes_lost",
        "Probes with no answer within the timeout",
    ),
    (
        "udp_echo_client_replies_late",
        "Replies that came after their probe's timeout",
    ),
    (
        "udp_echo_client_replies_duplicate",
        "Extra copies of a reply already seen",
    ),
    (
        "udp_echo_client_replies_reordered",
        "Replies with a lower sequence number than one already received",
    ),
    (
        "udp_echo_client_replies_corrupt",
        "Replies whose bytes differ from the probe",
    ),
    (
        "udp_echo_client_replies_truncated",
        "Replies shorter than the probe",
    ),
];

fn count_values(c: &Counts) -> [u64; COUNTS] {
    [
        c.sent,
        c.received,
        c.lost,
        c.late,
        c.duplicates,
        c.reordered,
        c.corrupt,
        c.truncated,
    ]
}

impl TargetMetrics {
    /// Empty figures for `spec`, its last reply "now" (`now_ns`).
    pub(crate) fn new(spec: &TargetSpec, now_ns: u64) -> TargetMetrics {
        TargetMetrics {
            target: spec.target.clone(),
            labels: Arc::clone(&spec.labels),
            stamped: spec.settings.stamp,
            state: Mutex::new(State {
                counts: [0; COUNTS],
                dscp_changed: 0,
                rtt_buckets: [0; RTT_BUCKETS.len() + 1],
                rtt_count: 0,
                rtt_sum: 0.0,
                last_reply_ns: now_ns,
                stamp: StampFigures::default(),
            }),
        }
    }

    /// Takes the books' running counts, with the reply that moved them (if
    /// one did) and a STAMP target's figures, all at once.
    pub(crate) fn update(&self, c: &Counts, reply: Option<Reply>, stamp: Option<StampFigures>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.counts = count_values(c);
        if let Some(stamp) = stamp {
            s.stamp = stamp;
        }
        let Some(reply) = reply else { return };
        s.last_reply_ns = reply.now_ns;
        s.dscp_changed += u64::from(reply.dscp_changed);
        if let Some(ns) = reply.rtt_ns {
            let secs = ns as f64 / 1e9;
            let i = RTT_BUCKETS
                .iter()
                .position(|&b| secs <= b)
                .unwrap_or(RTT_BUCKETS.len());
            s.rtt_buckets[i] += 1;
            s.rtt_sum += secs;
            s.rtt_count += 1;
        }
    }

    fn snapshot(&self) -> State {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Process-wide figures the engine and the loader update.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProcessMetrics {
    pub(crate) targets: Gauge,
    pub(crate) probes_sent: Counter,
    pub(crate) send_errors: Counter,
    pub(crate) receive_drops: Counter,
    pub(crate) replies_foreign: Counter,
    pub(crate) unresolved: Gauge,
    pub(crate) reload_errors: Counter,
    pub(crate) last_reload: Gauge<f64, AtomicU64>,
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub(crate) struct FleetMetrics {
    registry: Registry,
    pub(crate) process: ProcessMetrics,
    targets: Arc<TargetList>,
}

/// The current targets, swapped whole on reload.
#[derive(Debug)]
struct TargetList {
    list: RwLock<Arc<Vec<Arc<TargetMetrics>>>>,
    clock: Clock,
}

impl FleetMetrics {
    /// Metrics whose last-reply ages are read on `clock` (the engine's).
    /// `constant` labels every series (`--label`).
    pub(crate) fn new(clock: Clock, constant: &[(String, String)]) -> FleetMetrics {
        let process = ProcessMetrics::default();
        let mut registry = Registry::with_labels(
            constant
                .iter()
                .map(|(n, v)| (n.clone().into(), v.clone().into())),
        );
        let p = &process;
        registry.register(
            "udp_echo_client_fleet_targets",
            "Targets probed now",
            p.targets.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_probes_sent",
            "Probes sent to all targets",
            p.probes_sent.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_send_errors",
            "Probes the kernel refused to send",
            p.send_errors.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_receive_drops",
            "Datagrams the kernel dropped on the prober's sockets (receive buffer full)",
            p.receive_drops.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_replies_foreign",
            "Datagrams from an address that is no target",
            p.replies_foreign.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_targets_unresolved",
            "Targets whose name did not resolve at the last load (not probed)",
            p.unresolved.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_reload_errors",
            "Reloads of the targets refused (the previous set kept running)",
            p.reload_errors.clone(),
        );
        registry.register(
            "udp_echo_client_fleet_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the targets",
            p.last_reload.clone(),
        );
        let targets = Arc::new(TargetList {
            list: RwLock::new(Arc::new(Vec::new())),
            clock,
        });
        registry.register_collector(Box::new(Arc::clone(&targets)));
        FleetMetrics {
            registry,
            process,
            targets,
        }
    }

    /// Publishes the targets a scrape shows from now on.
    pub(crate) fn publish(&self, list: Vec<Arc<TargetMetrics>>) {
        self.process.targets.set(list.len() as i64);
        *self
            .targets
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(list);
    }

    /// The metrics now, as Prometheus text.
    pub(crate) fn render(&self) -> String {
        let n = self.targets.current().len();
        // About 2.5 KB a target with a label or two; more grows in place.
        let mut text = String::with_capacity(4096 + n * 2560);
        prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The HTTP content type of [`render`](Self::render)'s text.
    pub(crate) const CONTENT_TYPE: &'static str = prometheus_text::CONTENT_TYPE;
}

impl TargetList {
    fn current(&self) -> Arc<Vec<Arc<TargetMetrics>>> {
        Arc::clone(
            &self
                .list
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

mod collector;

#[cfg(test)]
mod tests;
