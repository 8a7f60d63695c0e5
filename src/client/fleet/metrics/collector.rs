//! The per-target families as a [`Collector`] encodes them at each scrape:
//! every target read once, whole, then written family by family.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::{COUNT_FAMILIES, State, TargetList, TargetMetrics};
use crate::client::metrics::RTT_BUCKETS;
use crate::client::stamp::StampFigures;

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
