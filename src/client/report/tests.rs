//! Unit tests of `client::report`.

use super::*;
use crate::client::doctor::{Finding, Severity};
use crate::client::stats::Counts;
use crate::client::stats::Latency;

/// A one-flow ping run of 64-byte probes against 127.0.0.1:9999, no
/// figures yet: each test sets what it looks at.
fn sample_summary() -> RunSummary {
    RunSummary::for_tests()
}

#[test]
fn the_histogram_has_a_bar_per_non_empty_bucket_and_marks_p50_and_p99() {
    let mut latency = Latency::new();
    for _ in 0..90 {
        latency.record(40_000);
    }
    for _ in 0..9 {
        latency.record(300_000);
    }
    latency.record(5_000_000);
    let text = histogram(&latency, 80);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let bars = lines.iter().filter(|l| l.contains('#')).count();
    // Three non-empty buckets and the two gaps between them.
    assert_eq!((bars, lines.len()), (3, 5), "{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
    let marked = |mark: &str| lines.iter().filter(|l| l.contains(mark)).count();
    assert_eq!((marked("p50"), marked("p99")), (1, 1), "{text}");
    assert!(lines[0].ends_with("90  90.0%  <- p50"), "{text}");
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("#####                              1 100.0%"),
        "{text}"
    );
}

/// The bar length of each line of a histogram, by its count.
fn bars_by_count(text: &str) -> Vec<(u64, usize)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let after = l.split('|').nth(1).unwrap();
            let bar = after.chars().take_while(|&c| c == '#').count();
            (
                after
                    .split_whitespace()
                    .find(|w| !w.starts_with('#'))
                    .unwrap()
                    .parse()
                    .unwrap(),
                bar,
            )
        })
        .collect()
}

#[test]
fn tails_of_different_sizes_get_different_bars() {
    let mut latency = Latency::new();
    for (rtt, n) in [
        (50_000, 300_000),
        (200_000, 32),
        (400_000, 576),
        (800_000, 1824),
    ] {
        for _ in 0..n {
            latency.record(rtt);
        }
    }
    let text = histogram(&latency, 80);
    let bars = bars_by_count(&text);
    let bar = |count: u64| {
        bars.iter()
            .find(|b| b.0 == count)
            .unwrap_or_else(|| panic!("{count}: {text}"))
            .1
    };
    assert!(
        0 < bar(32) && bar(32) < bar(576) && bar(576) < bar(1824),
        "{text}"
    );
    assert!(bar(1824) < bar(300_000), "{text}");
    // Longer bars for more round trips, everywhere.
    let mut sorted = bars.clone();
    sorted.sort();
    assert!(sorted.windows(2).all(|w| w[0].1 <= w[1].1), "{text}");
}

#[test]
fn a_narrow_distribution_is_split_finer_than_doublings() {
    // 272 of 300 round trips within one doubling, as on loopback.
    let mut latency = Latency::new();
    for i in 0..272 {
        latency.record(33_000 + i * 100);
    }
    for i in 0..28 {
        latency.record(70_000 + i * 50_000);
    }
    let text = histogram(&latency, 100);
    let bars = bars_by_count(&text);
    let biggest = bars.iter().map(|b| b.0).max().unwrap();
    assert!(biggest < 200, "the bulk is split: {text}");
    assert_eq!(bars.iter().map(|b| b.0).sum::<u64>(), 300, "{text}");
    assert!(text.lines().count() <= 26, "{text}");
}

#[test]
fn loss_goes_only_where_the_evidence_puts_it() {
    let mut run = sample_summary();
    run.counts = Counts {
        sent: 20,
        received: 10,
        lost: 10,
        ..Counts::default()
    };
    run.client_drops = Some(4);
    run.lost_in_client = run.counts.lost_in_client(run.client_drops, false);
    assert_eq!(
        loss_attribution(&run),
        "lost 10: 4 dropped in this client's receive buffers (kernel counter of its sockets, /proc/net/udp), 6 on the path or at the server"
    );
    run.counts.duplicates = 2990;
    run.client_drops = Some(5577);
    run.lost_in_client = run.counts.lost_in_client(run.client_drops, false);
    assert_eq!(
        loss_attribution(&run),
        "lost 10: 10 on the path, at the server or dropped in this client's receive buffers (they dropped 5577 datagrams, but 2990 duplicates came too, so the drops need not be replies: at most 10 of the lost)"
    );
    run.client_drops = None;
    run.lost_in_client = None;
    assert!(loss_attribution(&run).ends_with("(this system does not say what those dropped)"));
    let mut refused = sample_summary();
    refused.counts = Counts {
        sent: 3,
        lost: 3,
        refused: 3,
        lost_refused: 3,
        ..Counts::default()
    };
    refused.longest_silence_ms = 5000.0;
    assert_eq!(
        loss_attribution(&refused),
        "lost 3: 3 refused (ICMP port unreachable: nothing listens on 127.0.0.1:9999)"
    );
    assert_eq!(silence(&refused), None, "the path was not down");
}

#[test]
fn counts_of_one_are_singular() {
    assert_eq!(count(1, "probe", "probes"), "1 probe");
    assert_eq!(count(0, "probe", "probes"), "0 probes");
    assert_eq!(count(2, "round trip", "round trips"), "2 round trips");
    let mut run = sample_summary();
    run.counts.sent = 1;
    run.counts.received = 1;
    run.counts.duplicates = 1;
    run.counts.foreign = 1;
    run.counts.send_errors = 1;
    let text = summary(&run);
    assert!(text.contains("1 probe sent, 1 received,"), "{text}");
    assert!(text.contains(", 1 duplicate, "), "{text}");
    assert!(text.contains(", 1 foreign datagram, "), "{text}");
    assert!(text.contains(", 1 send error\n"), "{text}");
    let one = [Finding {
        severity: Severity::Action,
        topic: "buffers",
        text: "small".to_owned(),
        fix: None,
    }];
    assert!(doctor("x", &one).ends_with("1 needs action, 0 notes"));
}

#[test]
fn doctor_json_names_the_target_and_every_finding() {
    let findings = [Finding {
        severity: Severity::Action,
        topic: "buffers",
        text: "small".to_owned(),
        fix: Some("raise rmem_max".to_owned()),
    }];
    let text = json(&doctor_json("localhost:9999", &findings));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["target"], "localhost:9999");
    assert_eq!(value["mode"], "doctor");
    assert_eq!(value["findings"][0]["severity"], "action");
    assert_eq!(value["findings"][0]["fix"], "raise rmem_max");
    assert!(!text.contains('\n'), "one line: {text}");
}

/// A run with UDP GRO on: `sent`, `received` and `lost` probes, `drops`
/// receive buffers dropped (nothing else came).
fn gro_summary(sent: u64, received: u64, lost: u64, drops: u64) -> RunSummary {
    let mut run = sample_summary();
    run.counts = Counts {
        sent,
        received,
        lost,
        ..Counts::default()
    };
    run.client_drops = Some(drops);
    run.client_drops_are_buffers = true;
    run.lost_in_client = run.counts.lost_in_client(run.client_drops, true);
    run
}

/// With UDP GRO on, the kernel's drop counter counts receive buffers of up
/// to 128 replies: 578 drops were 36,862 lost replies in a real 1 M/s run,
/// which the datagram reading called "578 dropped here, 36,284 on the
/// path". Now only a bound is put on the client.
#[test]
fn gro_drops_are_buffers_and_only_bound_the_loss() {
    let mut run = gro_summary(1000, 850, 150, 2);
    assert_eq!(
        loss_attribution(&run),
        "lost 150: 150 on the path, at the server or in this client's receive buffers, which dropped 2 buffers (UDP GRO: each holds up to 128 replies, so up to 150 of the lost; /proc/net/udp)"
    );
    run.counts.duplicates = 7;
    assert_eq!(
        loss_attribution(&run),
        "lost 150: 150 on the path, at the server or dropped in this client's receive buffers (they dropped 2 receive buffers, but 7 duplicates came too, so the drops need not be replies: at most 150 of the lost)"
    );
}

/// GRO drops while nothing was lost (a dropped buffer held no needed
/// reply) read as "none in this client's buffers", as without GRO, not as
/// "0 on the path … up to 0 of the lost".
#[test]
fn gro_drops_with_nothing_lost_are_not_put_on_the_loss() {
    let mut run = gro_summary(1000, 1000, 0, 2);
    assert_eq!(
        loss_attribution(&run),
        "lost 0: none in this client's receive buffers, which dropped 2 receive buffers that were not needed"
    );
    run.counts.lost_refused = 5;
    run.counts.lost = 5;
    run.counts.received = 995;
    assert_eq!(
        loss_attribution(&run),
        format!(
            "lost 5: 5 refused (ICMP port unreachable: nothing listens on {}), none in this client's receive buffers, which dropped 2 receive buffers that were not needed",
            run.target
        )
    );
}

/// Kernels from 6.11 take UDP GSO sends of 128 segments (UDP_MAX_SEGMENTS),
/// which loopback and veth deliver to a GRO socket as one buffer: one drop
/// can be 128 replies, so the bound must allow that.
#[test]
fn a_gro_drop_may_hold_a_128_segment_send() {
    let run = gro_summary(1000, 872, 128, 1);
    let text = loss_attribution(&run);
    assert!(text.contains("up to 128 of the lost"), "{text}");
}
