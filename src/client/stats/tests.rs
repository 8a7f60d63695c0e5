//! Unit tests of `client::stats`.

use super::*;

#[test]
fn exact_figures_and_percentiles_of_known_samples() {
    let mut l = Latency::new();
    for us in 1..=1000u64 {
        l.record(us * 1000);
    }
    let s = l.summary();
    assert_eq!(s.min, 1.0);
    assert_eq!(s.max, 1000.0);
    assert!((s.mean - 500.5).abs() < 1e-9);
    assert!((s.stddev - 288.675).abs() < 0.01, "{}", s.stddev);
    for (got, want) in [
        (s.p50, 500.0),
        (s.p90, 900.0),
        (s.p99, 990.0),
        (s.p999, 999.0),
    ] {
        assert!((got - want).abs() / want < 0.002, "{got} vs {want}");
    }
    // Consecutive samples differ by 1 µs: the RFC 3550 estimate converges to 1 µs.
    let jitter = s.jitter.unwrap();
    assert!((jitter - 1.0).abs() < 0.01, "{jitter}");
}

#[test]
fn every_percentile_lies_within_the_exact_min_and_max() {
    // 120,085 ns sits in a bucket whose highest value is 120,127 ns:
    // unclamped, p90 came out above the maximum.
    let mut l = Latency::new();
    for ns in [118_900, 119_500, 120_085] {
        l.record(ns);
    }
    let s = l.summary();
    assert_eq!((s.min, s.max), (118.9, 120.085));
    for p in [s.p50, s.p90, s.p99, s.p999] {
        assert!(
            s.min <= p && p <= s.max,
            "{p} outside [{}, {}]",
            s.min,
            s.max
        );
    }
    assert_eq!(s.p999, s.max);
    let mut one = Latency::new();
    one.record(1_234_567);
    assert_eq!(one.quantile_ns(0.5), 1_234_567);
}

#[test]
fn an_empty_record_reports_zeros() {
    assert_eq!(Latency::new().summary(), RttSummary::default());
}

#[test]
fn merging_two_flows_equals_recording_both() {
    let (mut a, mut b, mut both) = (Latency::new(), Latency::new(), Latency::new());
    for i in 0..100u64 {
        a.record(10_000 + i);
        both.record(10_000 + i);
    }
    for i in 0..300u64 {
        b.record(50_000 + i * 10);
        both.record(50_000 + i * 10);
    }
    a.merge(&b);
    let (m, w) = (a.summary(), both.summary());
    assert_eq!((m.min, m.max, m.p50, m.p99), (w.min, w.max, w.p50, w.p99));
    assert!((m.mean - w.mean).abs() < 1e-9);
    assert_eq!(a.count(), 400);
}

#[test]
fn reset_forgets_everything() {
    let mut l = Latency::new();
    l.record(5_000);
    l.reset();
    assert_eq!(l.count(), 0);
    assert_eq!(l.summary(), RttSummary::default());
    l.record(7_000);
    assert_eq!(l.summary().min, 7.0);
}

#[test]
fn since_undoes_merge() {
    let earlier = Counts {
        sent: 5,
        received: 4,
        lost: 1,
        bytes_received: 256,
        ..Counts::default()
    };
    let more = Counts {
        sent: 3,
        received: 2,
        duplicates: 1,
        refused: 2,
        ..Counts::default()
    };
    let mut now = earlier;
    now.merge(&more);
    assert_eq!(now.since(&earlier), more);
    assert_eq!(now.since(&now), Counts::default());
}

#[test]
fn client_drops_explain_loss_only_when_nothing_else_came() {
    let mut c = Counts {
        sent: 20,
        received: 10,
        lost: 10,
        ..Counts::default()
    };
    assert_eq!(c.lost_in_client(Some(4), false), Some(4));
    assert_eq!(
        c.lost_in_client(Some(50), false),
        Some(10),
        "at most the loss"
    );
    assert_eq!(c.lost_in_client(None, false), None);
    // GRO buffers: a drop may hold many replies, so only a bound.
    assert_eq!(c.lost_in_client(Some(4), true), None);
    assert_eq!(c.lost_in_client(Some(0), true), Some(0));
    // The server's loss, with 300 copies of each reply it sent: the
    // drops may all be copies, so they explain nothing.
    c.duplicates = 2990;
    assert_eq!(c.lost_in_client(Some(5577), false), None);
    c.duplicates = 0;
    c.foreign = 1;
    assert_eq!(c.lost_in_client(Some(3), false), None);
    c.foreign = 0;
    // Probes a refusal settled were not dropped here.
    c.lost_refused = 8;
    assert_eq!(c.lost_in_client(Some(5), false), Some(2));
}

#[test]
fn loss_is_a_share_of_settled_probes() {
    let c = Counts {
        sent: 10,
        received: 4,
        lost: 4,
        ..Counts::default()
    };
    assert_eq!(c.loss_percent(2), 50.0);
    assert_eq!(Counts::default().loss_percent(0), 0.0);
}

#[test]
fn the_json_has_the_documented_fields() {
    let summary = RunSummary {
        host: "localhost".into(),
        mode: RunMode::Flood,
        window: Some(32),
        counts: Counts {
            sent: 3,
            received: 3,
            ..Counts::default()
        },
        send_rate_pps: 3.0,
        rtt_per_s: 3.0,
        longest_silence_ms: 0.1,
        rtt_resolution: RttResolution::PerBatch,
        rtt_batch_timed: 3,
        ..RunSummary::for_tests()
    };
    let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["rtt_resolution"], "per-batch");
    for key in [
        "target",
        "host",
        "mode",
        "size",
        "window",
        "rate_pps",
        "flows",
        "sent",
        "received",
        "lost",
        "late",
        "duplicates",
        "reordered",
        "corrupt",
        "truncated",
        "in_flight",
        "duration_s",
        "rtt_per_s",
        "mbit_per_s",
        "timeout_ms",
        "rtt_clock",
        "rtt_send_clock",
        "tx_stamp_missing",
        "send_delay_us",
        "longest_silence_ms",
        "dscp_sent",
        "dscp_seen",
        "ecn_seen",
        "dscp_changed",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in ["min", "mean", "max", "stddev", "p50", "p90", "p99", "p999"] {
        assert!(json["rtt_us"].get(key).is_some(), "missing rtt_us.{key}");
    }
    assert!(summary.passed());
}

#[test]
fn modes_serialise_to_their_names() {
    for mode in [RunMode::Ping, RunMode::Flood, RunMode::Rate] {
        assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
        assert_eq!(mode.to_string(), mode.name());
    }
    assert_eq!(RunMode::Rate.name(), "rate");
}

#[test]
fn the_rtt_clock_is_kernel_only_when_every_receive_had_a_stamp() {
    assert_eq!(RttClock::of(5, 0), RttClock::Kernel);
    assert_eq!(RttClock::of(0, 5), RttClock::User);
    assert_eq!(RttClock::of(0, 0), RttClock::User);
    assert_eq!(RttClock::of(4, 1), RttClock::Mixed);
}
