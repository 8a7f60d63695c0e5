//! `--histogram`: the round-trip distribution as text bars, fitted to the terminal.

use std::fmt::Write as _;

use super::count;
use crate::client::stats::Latency;

/// The terminal's width for `--histogram`: `COLUMNS` when set, else 80.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(80)
}

/// A bucket bound in the unit that reads best: `850 µs`, `1.64 ms`, `2.1 s`.
fn duration_label(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The most lines `--histogram` draws, gaps merged (see [`histogram`]).
const HISTOGRAM_LINES: usize = 24;

/// Merges each run of empty buckets into one, so a lone outlier far out
/// costs one line, not one per bucket on the way.
fn merge_empty_runs(
    buckets: Vec<crate::client::stats::RttBucket>,
) -> Vec<crate::client::stats::RttBucket> {
    let mut merged: Vec<crate::client::stats::RttBucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.count == 0 && b.count == 0 => last.high_ns = b.high_ns,
            _ => merged.push(b),
        }
    }
    merged
}

/// `--histogram`: the round trips in buckets of equal ratio, as fine as fits
/// in `HISTOGRAM_LINES` (8, 4, 2 or 1 per doubling; a run of empty buckets
/// is one line), one line each: its bounds, a bar of `#` whose length is
/// log-scaled (a tail of 32 and one of 1,824 differ at a glance, and a bucket
/// with any round trip gets at least one `#`), the count, the cumulative
/// percentage (the CDF), and the buckets holding p50 and p99 marked.
pub fn histogram(latency: &Latency, width: usize) -> String {
    let buckets = [8, 4, 2]
        .into_iter()
        .map(|per| merge_empty_runs(latency.buckets(per)))
        .find(|b| b.len() <= HISTOGRAM_LINES)
        .unwrap_or_else(|| merge_empty_runs(latency.buckets(1)));
    if buckets.is_empty() {
        return "RTT distribution: no round trips to show\n".to_owned();
    }
    let (p50, p99) = (latency.quantile_ns(0.50), latency.quantile_ns(0.99));
    let labels: Vec<String> = buckets
        .iter()
        .map(|b| {
            format!(
                "{:>10} - {:>10}",
                duration_label(b.low_ns),
                duration_label(b.high_ns)
            )
        })
        .collect();
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let total = buckets.iter().map(|b| b.count).sum::<u64>().max(1);
    let count_width = most.to_string().len();
    // label, " |", bar, " ", count, " ", "100.0%", "  <- p50 p99"
    let room = width
        .saturating_sub(labels[0].chars().count() + 2 + 1 + count_width + 7 + 12)
        .max(10);
    let scale = |count: u64| ((count as f64).ln_1p() / (most as f64).ln_1p() * room as f64).round();
    let mut text = format!(
        "RTT distribution: {}, p50 {}, p99 {}; log-scaled bars, count, cumulative %\n",
        count(latency.count(), "round trip", "round trips"),
        duration_label(p50),
        duration_label(p99)
    );
    let mut below = 0;
    for (b, label) in buckets.iter().zip(&labels) {
        let bar = match b.count {
            0 => 0,
            n => (scale(n) as usize).max(1),
        };
        below += b.count;
        let _ = write!(
            text,
            "{label} |{:<room$} {:>count_width$} {:>5.1}%",
            "#".repeat(bar),
            b.count,
            below as f64 * 100.0 / total as f64
        );
        let inside = |v: u64| v > b.low_ns && v <= b.high_ns;
        match (inside(p50), inside(p99)) {
            (true, true) => text.push_str("  <- p50 p99"),
            (true, false) => text.push_str("  <- p50"),
            (false, true) => text.push_str("  <- p99"),
            (false, false) => {}
        }
        text.push('\n');
    }
    text
}
