//! The client's metrics as a continuous probe (`udp-echo-client -c 0 -i 1
//! --metrics ADDR:PORT`): `udp_echo_client_*`, labelled with the target.
//!
//! Unlike the server's, these are live `prometheus-client` metrics updated
//! as the ping run goes (one probe per interval: the cost is nothing next to
//! the interval), from the run's running counts and its reply events.

use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::client::measure::Event;
use crate::client::probe::Check;
use crate::client::stats::Counts;
use crate::shutdown::Stop;

/// Upper bounds of the RTT histogram's buckets, seconds: 50 µs to 10 s in
/// steps of ×2 or ×2.5 (50, 100, 250, 500 µs, 1, 2.5, 5, 10, 25 … ms, 10 s).
pub const RTT_BUCKETS: [f64; 17] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5, 5.0, 10.0,
];

/// The live metrics of one ping run.
#[derive(Debug)]
pub struct ClientMetrics {
    registry: Registry,
    sent: Counter,
    received: Counter,
    lost: Counter,
    late: Counter,
    duplicates: Counter,
    reordered: Counter,
    corrupt: Counter,
    truncated: Counter,
    /// Replies that came back with another DSCP than `dscp_sent`.
    dscp_changed: Counter,
    dscp_sent: u8,
    rtt: Histogram,
    last_reply_age: Gauge<f64, AtomicU64>,
    /// The counts already added to the counters.
    told: Mutex<Counts>,
    /// When the last reply (any) came; the run's start until one does.
    last_reply: Mutex<Instant>,
}

impl ClientMetrics {
    /// Metrics for a run against `target` (the `target` label) whose probes
    /// carry DSCP `dscp_sent`, starting now.
    pub fn new(target: &str, dscp_sent: u8) -> ClientMetrics {
        let mut registry = Registry::with_prefix_and_labels(
            "udp_echo_client",
            [("target".into(), target.to_owned().into())].into_iter(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let sent = counter(&mut registry, "probes_sent", "Probes sent");
        let received = counter(
            &mut registry,
            "probes_received",
            "Probes answered within the timeout (intact, corrupt or truncated)",
        );
        let lost = counter(
            &mut registry,
            "probes_lost",
            "Probes with no answer within the timeout",
        );
        let late = counter(
            &mut registry,
            "replies_late",
            "Replies that came after their probe's timeout",
        );
        let duplicates = counter(
            &mut registry,
            "replies_duplicate",
            "Extra copies of a reply already seen",
        );
        let reordered = counter(
            &mut registry,
            "replies_reordered",
            "Replies with a lower sequence number than one already received",
        );
        let corrupt = counter(
            &mut registry,
            "replies_corrupt",
            "Replies whose bytes differ from the probe",
        );
        let truncated = counter(
            &mut registry,
            "replies_truncated",
            "Replies shorter than the probe",
        );
        let dscp_changed = counter(
            &mut registry,
            "replies_dscp_changed",
            "Replies that came back with another DSCP than the probes were sent with",
        );
        let rtt = Histogram::new(RTT_BUCKETS);
        registry.register(
            "rtt_seconds",
            "Round-trip time of intact replies in time",
            rtt.clone(),
        );
        let last_reply_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_reply_age_seconds",
            "Seconds since the last reply came (since the start before the first)",
            last_reply_age.clone(),
        );
        ClientMetrics {
            registry,
            sent,
            received,
            lost,
            late,
            duplicates,
            reordered,
            corrupt,
            truncated,
            dscp_changed,
            dscp_sent,
            rtt,
            last_reply_age,
            told: Mutex::new(Counts::default()),
            last_reply: Mutex::new(Instant::now()),
        }
    }

    /// Takes the run's running counts: the counters move by the difference.
    pub fn counts(&self, now: &Counts) {
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        let d = now.since(&told);
        for (counter, by) in [
            (&self.sent, d.sent),
            (&self.received, d.received),
            (&self.lost, d.lost),
            (&self.late, d.late),
            (&self.duplicates, d.duplicates),
            (&self.reordered, d.reordered),
            (&self.corrupt, d.corrupt),
            (&self.truncated, d.truncated),
        ] {
            counter.inc_by(by);
        }
        *told = *now;
    }

    /// Takes one event of the run: a reply's round trip into the histogram.
    pub fn event(&self, event: &Event) {
        if let Event::Reply {
            rtt_ns,
            check,
            duplicate,
            late,
            tos,
            ..
        } = *event
        {
            *self.last_reply.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            if tos.is_some_and(|t| t >> 2 != self.dscp_sent) {
                self.dscp_changed.inc();
            }
            if !duplicate && !late && matches!(check, Check::Intact { .. }) {
                self.rtt.observe(rtt_ns as f64 / 1e9);
            }
        }
    }

    /// The metrics now, as Prometheus text.
    pub fn render(&self) -> String {
        let last = *self.last_reply.lock().unwrap_or_else(|p| p.into_inner());
        self.last_reply_age.set(last.elapsed().as_secs_f64());
        let mut text = String::with_capacity(4096);
        prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Serves these metrics on `listener` until `stop`.
    pub fn serve(&self, listener: &TcpListener, stop: &Stop) {
        crate::metrics::http::serve(listener, stop, prometheus_text::CONTENT_TYPE, &|| {
            self.render()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_two_to_two_and_a_half() {
        for pair in RTT_BUCKETS.windows(2) {
            let step = pair[1] / pair[0];
            assert!((1.99..=2.51).contains(&step), "{pair:?}");
        }
        assert_eq!(
            (RTT_BUCKETS[0], RTT_BUCKETS[RTT_BUCKETS.len() - 1]),
            (50e-6, 10.0)
        );
    }

    #[test]
    fn counts_and_replies_move_the_metrics() {
        let m = ClientMetrics::new("127.0.0.1:9999", 46);
        m.counts(&Counts {
            sent: 2,
            received: 1,
            lost: 1,
            ..Counts::default()
        });
        m.event(&Event::Reply {
            seq: 1,
            bytes: 64,
            from: "127.0.0.1:9999".parse().unwrap(),
            rtt_ns: 120_000,
            check: Check::Intact { seq: 1, sent_ns: 0 },
            duplicate: false,
            late: false,
            tos: Some(0),
        });
        m.counts(&Counts {
            sent: 3,
            received: 2,
            lost: 1,
            ..Counts::default()
        });
        let text = m.render();
        for line in [
            "udp_echo_client_probes_sent_total{target=\"127.0.0.1:9999\"} 3",
            "udp_echo_client_probes_received_total{target=\"127.0.0.1:9999\"} 2",
            "udp_echo_client_probes_lost_total{target=\"127.0.0.1:9999\"} 1",
            "udp_echo_client_rtt_seconds_count{target=\"127.0.0.1:9999\"} 1",
            "udp_echo_client_replies_dscp_changed_total{target=\"127.0.0.1:9999\"} 1",
            "udp_echo_client_rtt_seconds_bucket{target=\"127.0.0.1:9999\",le=\"0.00025\"} 1",
            "# TYPE udp_echo_client_last_reply_age_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
