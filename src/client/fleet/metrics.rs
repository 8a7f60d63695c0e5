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

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
    prometheus_text,
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

/// A target and its figures at the scrape.
type Snap<'a> = (&'a TargetMetrics, State);

/// One family over every target (or every STAMP target, `stamp_only`).
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    targets: &[Snap],
    stamp_only: bool,
    mut each: impl FnMut(&State, &mut MetricEncoder) -> std::fmt::Result,
) -> std::fmt::Result {
    if stamp_only && !targets.iter().any(|(t, _)| t.stamped) {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (t, state) in targets {
        if stamp_only && !t.stamped {
            continue;
        }
        let labels = SeriesLabels(t);
        each(state, &mut m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder, v: u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

impl Collector for TargetList {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let targets = self.current();
        let now = self.clock.now_ns();
        // Every target read once, whole, before anything is written.
        let snaps: Vec<Snap> = targets.iter().map(|t| (&**t, t.snapshot())).collect();
        let e = &mut encoder;
        for (i, (name, help)) in COUNT_FAMILIES.iter().enumerate() {
            family(
                e,
                (name, help, MetricType::Counter),
                &snaps,
                false,
                |s, m| counter(m, s.counts[i]),
            )?;
        }
        family(
            e,
            (
                "udp_echo_client_replies_dscp_changed",
                "Replies that came back with another DSCP than the probes were sent with",
                MetricType::Counter,
            ),
            &snaps,
            false,
            |s, m| counter(m, s.dscp_changed),
        )?;
        family(
            e,
            (
                "udp_echo_client_rtt_seconds",
                "Round-trip time of intact replies in time",
                MetricType::Histogram,
            ),
            &snaps,
            false,
            |s, m| {
                let mut buckets = [(0f64, 0u64); RTT_BUCKETS.len()];
                for (k, b) in buckets.iter_mut().enumerate() {
                    *b = (RTT_BUCKETS[k], s.rtt_buckets[k]);
                }
                m.encode_histogram::<NoLabelSet>(s.rtt_sum, s.rtt_count, &buckets, None)
            },
        )?;
        family(
            e,
            (
                "udp_echo_client_last_reply_age_seconds",
                "Seconds since the last reply came (since the start before the first)",
                MetricType::Gauge,
            ),
            &snaps,
            false,
            |s, m| {
                let age = now.saturating_sub(s.last_reply_ns);
                m.encode_gauge(&(age as f64 / 1e9))
            },
        )?;
        stamp_families(e, &snaps)
    }
}

/// The STAMP targets' one-way delays and loss by direction.
fn stamp_families(e: &mut DescriptorEncoder, targets: &[Snap]) -> std::fmt::Result {
    type Get = fn(&StampFigures) -> f64;
    let sums: [(&str, &str, Get); 2] = [
        (
            "udp_echo_client_stamp_owd_forward_delay_sum_seconds",
            "STAMP: sum of the sender-to-reflector delays (reflector's receive time minus our send time; needs synchronised clocks, may fall when they are not)",
            |f| f.forward.1,
        ),
        (
            "udp_echo_client_stamp_owd_reverse_delay_sum_seconds",
            "STAMP: sum of the reflector-to-sender delays (our receive time minus the reflector's send time; needs synchronised clocks, may fall when they are not)",
            |f| f.reverse.1,
        ),
    ];
    for (name, help, get) in sums {
        family(e, (name, help, MetricType::Gauge), targets, true, |s, m| {
            m.encode_gauge(&get(&s.stamp))
        })?;
    }
    type Count = fn(&StampFigures) -> u64;
    let counts: [(&str, &str, Count); 3] = [
        (
            "udp_echo_client_stamp_owd_forward_samples",
            "STAMP: replies whose forward delay is in the sum",
            |f| f.forward.0,
        ),
        (
            "udp_echo_client_stamp_owd_reverse_samples",
            "STAMP: replies whose reverse delay is in the sum",
            |f| f.reverse.0,
        ),
        (
            "udp_echo_client_stamp_owd_invalid",
            "STAMP: replies whose time stamps cannot be true (in no delay)",
            |f| f.invalid,
        ),
    ];
    for (name, help, get) in counts {
        family(
            e,
            (name, help, MetricType::Counter),
            targets,
            true,
            |s, m| counter(m, get(&s.stamp)),
        )?;
    }
    // Only where the split is known: a stateless reflector's series are
    // absent rather than a made-up 0.
    let known: Vec<Snap> = targets
        .iter()
        .filter(|(t, s)| t.stamped && s.stamp.lost_split.is_some())
        .copied()
        .collect();
    type Split = fn((u64, u64, u64)) -> u64;
    let splits: [(&str, &str, Split); 3] = [
        (
            "udp_echo_client_stamp_lost_forward",
            "STAMP: probes lost on the way to the reflector (stateful reflectors only)",
            |s| s.0,
        ),
        (
            "udp_echo_client_stamp_lost_reverse",
            "STAMP: replies lost on the way back (stateful reflectors only)",
            |s| s.1,
        ),
        (
            "udp_echo_client_stamp_lost_unattributed",
            "STAMP: losses after the last answered probe, direction unknown (stateful reflectors only)",
            |s| s.2,
        ),
    ];
    for (name, help, get) in splits {
        family(e, (name, help, MetricType::Gauge), &known, true, |s, m| {
            let split = s.stamp.lost_split.unwrap_or_default();
            m.encode_gauge(&i64::try_from(get(split)).unwrap_or(i64::MAX))
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
                rounds: None,
            },
        }
    }

    #[test]
    fn every_target_has_its_series_with_its_labels() {
        let m = FleetMetrics::new(Clock::new(), &[]);
        let a = Arc::new(TargetMetrics::new(&spec("127.0.0.1:7", false), 0));
        let b = Arc::new(TargetMetrics::new(&spec("[::1]:862", true), 0));
        let counts = Counts {
            sent: 3,
            received: 2,
            lost: 1,
            ..Counts::default()
        };
        let reply = Reply {
            now_ns: 5,
            rtt_ns: Some(120_000),
            dscp_changed: true,
        };
        a.update(&counts, Some(reply), None);
        let figures = StampFigures {
            forward: (1, 0.5),
            reverse: (1, -0.25),
            invalid: 0,
            lost_split: Some((1, 0, 0)),
        };
        b.update(&Counts::default(), None, Some(figures));
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
