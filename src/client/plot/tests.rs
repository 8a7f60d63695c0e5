//! Unit tests of `client::plot`.

use super::*;

#[test]
fn dates_are_utc_minutes() {
    assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
    assert_eq!(utc_minute(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
    assert_eq!(utc_minute(1_795_750_278), "2026-11-27 03:31 UTC");
}

#[test]
fn ticks_are_round() {
    assert_eq!(edge_ticks(10.0).1, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    let labels: Vec<String> = edge_ticks(0.55).1.into_iter().map(tick_label).collect();
    assert_eq!(labels, ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6"]);
    assert_eq!(tick_label(0.6000000000000001), "0.6");
}

/// The text of every `<text>` element of a panel's SVG.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            t.split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn every_axis_edge_is_labelled() {
    assert_eq!(
        edge_ticks(10.0),
        (10.0, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    );
    let (end, t) = edge_ticks(10.3);
    assert_eq!((end, t.len()), (12.0, 7));
    // A 6.49 s run ends its axis at 7 s, not 8 or 10.
    assert_eq!(edge_ticks(6.49).0, 7.0);
    assert_eq!(tick_label(edge_ticks(0.7).0), "0.7");
    assert_eq!(tick_label(edge_ticks(0.242).0), "0.25");
    let mut latency = Latency::new();
    for (rtt, n) in [
        (50_000, 3000),
        (200_000, 32),
        (400_000, 576),
        (9_000_000, 1),
    ] {
        for _ in 0..n {
            latency.record(rtt);
        }
    }
    let mut s = String::new();
    distribution(&mut s, &latency);
    let texts = texts(&s);
    let buckets = latency.buckets(4);
    let (first, last) = (buckets[0].low_ns, buckets[buckets.len() - 1].high_ns);
    let label = |ns: u64| tick_label(ns as f64 / 1e6);
    // x: both bucket edges; y: 0 at the bottom, a power of ten at the
    // top (at or above the most in a bucket); the CDF's 0% and 100%.
    for edge in [
        label(first),
        label(last),
        "0".into(),
        "10000".into(),
        "0%".into(),
        "100%".into(),
    ] {
        assert!(texts.contains(&edge), "{edge} not in {texts:?}");
    }
    assert!(s.contains("4 buckets per doubling"), "{texts:?}");
    // Bars on a log scale: the tails of 1, 32 and 576 have distinct heights.
    let heights: Vec<f64> = s
        .split(r#"class="bar""#)
        .skip(1)
        .map(|b| {
            b.split("height=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut distinct = heights.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    assert_eq!((heights.len(), distinct.len()), (4, 4), "{heights:?}");
    // The CDF ends at 100% at the right edge.
    let cdf = s
        .split(r#"class="cdf" d=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        cdf.ends_with(&format!("L{RIGHT:.2},{:.2}", BOTTOM.0)),
        "{cdf}"
    );
}

#[test]
fn a_long_ping_run_keeps_a_bounded_number_of_points() {
    let mut t = Timeline::new(Duration::from_secs(1));
    for i in 0..(MAX_POINTS * 5) {
        t.push_point(i as f64, 1.0);
    }
    assert!(t.points.len() <= MAX_POINTS, "{}", t.points.len());
    assert!(t.points.len() >= MAX_POINTS / 4, "{}", t.points.len());
}
