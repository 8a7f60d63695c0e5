//! The fleet's `/metrics`: the single-target client's `udp_echo_client_*`
//! series (same names, so dashboards carry over), one per target, labelled
//! `target` (as written) plus its group's labels; and process-wide
//! `udp_echo_client_fleet_*` series.
//!
//! The engine owns the books; what a scrape reads is a [`TargetMetrics`] per
//! target, plain atomics the engine stores into after each change of that
//! target's books (a few stores per probe, no lock). A scrape takes the
//! current list of targets (an `Arc` swapped on reload, so a removed
//! target's series leave with it) and encodes it with `prometheus-client`
//! through a [`Collector`], family by family, never touching the engine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::spec::TargetSpec;
use crate::client::metrics::RTT_BUCKETS;
use crate::client::probe::Clock;
use crate::client::stamp::StampFigures;
use crate::client::stats::Counts;

/// One target's figures as a scrape reads them. Written by the engine only.
#[derive(Debug)]
pub(crate) struct TargetMetrics {
    target: String,
    labels: Arc<[(String, String)]>,
    counts: [AtomicU64; COUNTS],
    dscp_changed: AtomicU64,
    /// Round trips per bucket of [`RTT_BUCKETS`] (not cumulative), past the last.
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len() + 1],
    rtt_count: AtomicU64,
    /// f64 bits: the sum of the round trips, seconds.
    rtt_sum: AtomicU64,
    /// The engine clock's ns of the last reply (of the start before one).
    last_reply_ns: AtomicU64,
    stamp: Option<StampMetrics>,
}

/// A STAMP target's own figures.
#[derive(Debug, Default)]
struct StampMetrics {
    forward_count: AtomicU64,
    forward_sum: AtomicU64,
    reverse_count: AtomicU64,
    reverse_sum: AtomicU64,
    invalid: AtomicU64,
    split_known: AtomicBool,
    lost_forward: AtomicU64,
    lost_reverse: AtomicU64,
    lost_unattributed: AtomicU64,
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
            counts: Default::default(),
            dscp_changed: AtomicU64::new(0),
            rtt_buckets: Default::default(),
            rtt_count: AtomicU64::new(0),
            rtt_sum: AtomicU64::new(0f64.to_bits()),
            last_reply_ns: AtomicU64::new(now_ns),
            stamp: spec.settings.stamp.then(StampMetrics::default),
        }
    }

    /// Takes the books' running counts.
    pub(crate) fn counts(&self, c: &Counts) {
        for (cell, v) in self.counts.iter().zip(count_values(c)) {
            cell.store(v, Relaxed);
        }
    }

    /// Takes one matched reply at `now_ns`: its round trip when it is
    /// measured (intact, in time, first), and whether its DSCP changed.
    pub(crate) fn reply(&self, now_ns: u64, rtt_ns: Option<u64>, dscp_changed: bool) {
        self.last_reply_ns.store(now_ns, Relaxed);
        if dscp_changed {
            self.dscp_changed.fetch_add(1, Relaxed);
        }
        if let Some(ns) = rtt_ns {
            let secs = ns as f64 / 1e9;
            let i = RTT_BUCKETS
                .iter()
                .position(|&b| secs <= b)
                .unwrap_or(RTT_BUCKETS.len());
            self.rtt_buckets[i].fetch_add(1, Relaxed);
            // One writer: load and store cannot lose an update.
            let sum = f64::from_bits(self.rtt_sum.load(Relaxed)) + secs;
            self.rtt_sum.store(sum.to_bits(), Relaxed);
            self.rtt_count.fetch_add(1, Relaxed);
        }
    }

    /// Takes a STAMP target's figures.
    pub(crate) fn stamp(&self, f: &StampFigures) {
        let Some(s) = &self.stamp else { return };
        s.forward_count.store(f.forward.0, Relaxed);
        s.forward_sum.store(f.forward.1.to_bits(), Relaxed);
        s.reverse_count.store(f.reverse.0, Relaxed);
        s.reverse_sum.store(f.reverse.1.to_bits(), Relaxed);
        s.invalid.store(f.invalid, Relaxed);
        s.split_known.store(f.lost_split.is_some(), Relaxed);
        if let Some((fw, rv, un)) = f.lost_split {
            s.lost_forward.store(fw, Relaxed);
            s.lost_reverse.store(rv, Relaxed);
            s.lost_unattributed.store(un, Relaxed);
        }
    }
}

/// A target's labels as `prometheus-client` encodes them: `target` first.
struct SeriesLabels<'a>(&'a TargetMetrics);

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabel::encode(&("target", self.0.target.as_str()), encoder.encode_label())?;
        for (name, value) in self.0.labels.iter() {
            EncodeLabel::encode(&(name.as_str(), value.as_str()), encoder.encode_label())?;
        }
        Ok(())
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
    pub(crate) fn new(clock: Clock) -> FleetMetrics {
        let process = ProcessMetrics::default();
        let mut registry = Registry::default();
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

/// One family over every target (or every STAMP target, `stamp_only`).
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    targets: &[Arc<TargetMetrics>],
    stamp_only: bool,
    mut each: impl FnMut(
        &TargetMetrics,
        &mut prometheus_client::encoding::MetricEncoder,
    ) -> std::fmt::Result,
) -> std::fmt::Result {
    if stamp_only && !targets.iter().any(|t| t.stamp.is_some()) {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for t in targets {
        if stamp_only && t.stamp.is_none() {
            continue;
        }
        let labels = SeriesLabels(t);
        each(t, &mut m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(m: &mut prometheus_client::encoding::MetricEncoder, v: u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge_f64(m: &mut prometheus_client::encoding::MetricEncoder, v: f64) -> std::fmt::Result {
    m.encode_gauge(&v)
}

impl Collector for TargetList {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let targets = self.current();
        let e = &mut encoder;
        for (i, (name, help)) in COUNT_FAMILIES.iter().enumerate() {
            family(
                e,
                (name, help, MetricType::Counter),
                &targets,
                false,
                |t, m| counter(m, t.counts[i].load(Relaxed)),
            )?;
        }
        family(
            e,
            (
                "udp_echo_client_replies_dscp_changed",
                "Replies that came back with another DSCP than the probes were sent with",
                MetricType::Counter,
            ),
            &targets,
            false,
            |t, m| counter(m, t.dscp_changed.load(Relaxed)),
        )?;
        family(
            e,
            (
                "udp_echo_client_rtt_seconds",
                "Round-trip time of intact replies in time",
                MetricType::Histogram,
            ),
            &targets,
            false,
            |t, m| {
                let mut buckets = [(0f64, 0u64); RTT_BUCKETS.len()];
                for (k, b) in buckets.iter_mut().enumerate() {
                    *b = (RTT_BUCKETS[k], t.rtt_buckets[k].load(Relaxed));
                }
                let count = t.rtt_count.load(Relaxed);
                let sum = f64::from_bits(t.rtt_sum.load(Relaxed));
                m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
            },
        )?;
        let now = self.clock.now_ns();
        family(
            e,
            (
                "udp_echo_client_last_reply_age_seconds",
                "Seconds since the last reply came (since the start before the first)",
                MetricType::Gauge,
            ),
            &targets,
            false,
            |t, m| {
                let age = now.saturating_sub(t.last_reply_ns.load(Relaxed));
                gauge_f64(m, age as f64 / 1e9)
            },
        )?;
        stamp_families(e, &targets)
    }
}

/// The STAMP targets' one-way delays and loss by direction.
fn stamp_families(e: &mut DescriptorEncoder, targets: &[Arc<TargetMetrics>]) -> std::fmt::Result {
    type Get = fn(&StampMetrics) -> f64;
    let families: [(&str, &str, MetricType, Get); 5] = [
        (
            "udp_echo_client_stamp_owd_forward_delay_sum_seconds",
            "STAMP: sum of the sender-to-reflector delays (reflector's receive time minus our send time; needs synchronised clocks, may fall when they are not)",
            MetricType::Gauge,
            |s| f64::from_bits(s.forward_sum.load(Relaxed)),
        ),
        (
            "udp_echo_client_stamp_owd_forward_samples",
            "STAMP: replies whose forward delay is in the sum",
            MetricType::Counter,
            |s| s.forward_count.load(Relaxed) as f64,
        ),
        (
            "udp_echo_client_stamp_owd_reverse_delay_sum_seconds",
            "STAMP: sum of the reflector-to-sender delays (our receive time minus the reflector's send time; needs synchronised clocks, may fall when they are not)",
            MetricType::Gauge,
            |s| f64::from_bits(s.reverse_sum.load(Relaxed)),
        ),
        (
            "udp_echo_client_stamp_owd_reverse_samples",
            "STAMP: replies whose reverse delay is in the sum",
            MetricType::Counter,
            |s| s.reverse_count.load(Relaxed) as f64,
        ),
        (
            "udp_echo_client_stamp_owd_invalid",
            "STAMP: replies whose time stamps cannot be true (in no delay)",
            MetricType::Counter,
            |s| s.invalid.load(Relaxed) as f64,
        ),
    ];
    for (name, help, kind, get) in families {
        family(e, (name, help, kind), targets, true, |t, m| {
            let s = t.stamp.as_ref().expect("stamp targets only");
            match kind {
                MetricType::Counter => counter(m, get(s) as u64),
                _ => gauge_f64(m, get(s)),
            }
        })?;
    }
    for (name, help, get) in [
        (
            "udp_echo_client_stamp_lost_forward",
            "STAMP: probes lost on the way to the reflector (stateful reflectors only)",
            (|s: &StampMetrics| s.lost_forward.load(Relaxed)) as fn(&StampMetrics) -> u64,
        ),
        (
            "udp_echo_client_stamp_lost_reverse",
            "STAMP: replies lost on the way back (stateful reflectors only)",
            |s| s.lost_reverse.load(Relaxed),
        ),
        (
            "udp_echo_client_stamp_lost_unattributed",
            "STAMP: losses after the last answered probe, direction unknown (stateful reflectors only)",
            |s| s.lost_unattributed.load(Relaxed),
        ),
    ] {
        // Only where the split is known: a stateless reflector's series are
        // absent rather than a made-up 0.
        let known: Vec<Arc<TargetMetrics>> = targets
            .iter()
            .filter(|t| {
                t.stamp
                    .as_ref()
                    .is_some_and(|s| s.split_known.load(Relaxed))
            })
            .cloned()
            .collect();
        family(e, (name, help, MetricType::Gauge), &known, true, |t, m| {
            let s = t.stamp.as_ref().expect("stamp targets only");
            m.encode_gauge(&(get(s) as i64))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fleet::spec::Settings;
    use std::time::Duration;

    fn spec(target: &str, stamp: bool) -> TargetSpec {
        TargetSpec {
            target: target.into(),
            labels: vec![("site".into(), "a \"b\"".into())].into(),
            settings: Settings {
                stamp,
                interval: Duration::from_secs(1),
                size: 64,
                tos: None,
                timeout: Duration::from_secs(1),
            },
        }
    }

    #[test]
    fn every_target_has_its_series_with_its_labels() {
        let m = FleetMetrics::new(Clock::new());
        let a = Arc::new(TargetMetrics::new(&spec("127.0.0.1:7", false), 0));
        let b = Arc::new(TargetMetrics::new(&spec("[::1]:862", true), 0));
        a.counts(&Counts {
            sent: 3,
            received: 2,
            lost: 1,
            ..Counts::default()
        });
        a.reply(5, Some(120_000), true);
        b.stamp(&StampFigures {
            forward: (1, 0.5),
            reverse: (1, -0.25),
            invalid: 0,
            lost_split: Some((1, 0, 0)),
        });
        m.publish(vec![a, b]);
        let text = m.render();
        for line in [
            "udp_echo_client_probes_sent_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 3",
            "udp_echo_client_probes_lost_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
            "udp_echo_client_rtt_seconds_bucket{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\",le=\"0.00025\"} 1",
            "udp_echo_client_rtt_seconds_count{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
            "udp_echo_client_replies_dscp_changed_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
            "udp_echo_client_stamp_owd_reverse_delay_sum_seconds{target=\"[::1]:862\",site=\"a \\\"b\\\"\"} -0.25",
            "udp_echo_client_stamp_lost_forward{target=\"[::1]:862\",site=\"a \\\"b\\\"\"} 1",
            "udp_echo_client_fleet_targets 2",
            "# TYPE udp_echo_client_last_reply_age_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("owd_forward_delay_sum_seconds{target=\"127.0.0.1:7\""));
        // A removed target's series leave.
        m.publish(Vec::new());
        assert!(!m.render().contains("127.0.0.1:7"));
    }
}
