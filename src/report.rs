//! The only place that formats measurement results for people: ping's lines
//! and summary block, flood/rate interval lines, and the `--json` object.

mod stamp;

pub use stamp::{not_reflections, stamp_summary};

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::doctor::{Finding, Severity};
use crate::client::find_rate::{FindRateSummary, Step};
use crate::client::measure::{Event, IntervalReport, MeasureConfig, Mode, Summary};
use crate::client::pmtu::{Outcome, PmtuStep, PmtuSummary};
use crate::probe::Check;
use crate::stats::{Latency, RunSummary};

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

fn flows(n: usize) -> String {
    if n == 1 {
        "1 flow".to_owned()
    } else {
        format!("{n} flows")
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The first line of a run, like ping's `PING host (addr) 56(84) bytes of data.`
pub fn start_line(target: &str, config: &MeasureConfig) -> String {
    let timeout = secs(config.timeout);
    let (kind, what, noun) = match &config.stamp {
        None => (
            "UDP ECHO",
            format!("{} bytes per probe", config.size),
            "probes",
        ),
        Some(s) => ("STAMP", stamp::packets(config, s), "packets"),
    };
    let tos = config.tos.map_or(String::new(), |t| {
        format!(", DSCP {}", crate::net::dscp::dscp_name(t >> 2))
    });
    match config.mode {
        Mode::Ping { count, interval } => format!(
            "{kind} PING {target}: {what}{tos}, {}interval {} s, timeout {timeout} s",
            count.map_or(String::new(), |c| format!("{c} {noun}, ")),
            secs(interval),
        ),
        Mode::Flood { window } => format!(
            "{kind} FLOOD {target}: {what}{tos}, window {window} × {}, {} s, timeout {timeout} s",
            flows(config.flows),
            secs(config.duration),
        ),
        Mode::Rate { pps } => format!(
            "{kind} RATE {target}: {what}{tos}, {pps} {noun}/s over {}, {} s, timeout {timeout} s",
            flows(config.flows),
            secs(config.duration),
        ),
    }
}

/// The line ping prints for one event, e.g.
/// `64 bytes from 127.0.0.1:9999: seq=1 time=0.052 ms`.
pub fn ping_event(event: &Event, target: &str) -> String {
    match *event {
        Event::Reply {
            seq,
            bytes,
            from,
            rtt_ns,
            check,
            duplicate,
            late,
            ..
        } => {
            let mut line = format!("{bytes} bytes from {from}: seq={seq}");
            if duplicate {
                line.push_str(" (DUP!)");
                return line;
            }
            if rtt_ns > 0 {
                let _ = write!(line, " time={:.3} ms", rtt_ns as f64 / 1e6);
            }
            match check {
                Check::Corrupt { .. } => line.push_str(" (CORRUPT: bytes differ from the probe)"),
                Check::Truncated { .. } => line.push_str(" (TRUNCATED)"),
                _ => {}
            }
            if late {
                line.push_str(" (LATE: after the timeout, counted lost)");
            }
            if from.to_string() != target {
                line.push_str(" (DIFFERENT ADDRESS!)");
            }
            line
        }
        Event::Timeout { seq } => format!("no reply from {target}: seq={seq} (timeout)"),
        Event::Refused => format!("no UDP server at {target} (connection refused)"),
        Event::Start { peer } => format!("start {peer}"),
    }
}

/// One flood/rate interval line:
/// `[  1.00-2.00 s] 48213 rt/s  24.7 Mbit/s  lost 0  p50 0.61 ms  p99 1.20 ms`.
pub fn interval_line(report: &IntervalReport) -> String {
    let secs = (report.to_s - report.from_s).max(1e-9);
    let c = &report.counts;
    let rtt = report.latency.summary();
    format!(
        "[{:6.2}-{:.2} s] {:.0} rt/s  {:.1} Mbit/s  lost {}  p50 {} ms  p99 {} ms",
        report.from_s,
        report.to_s,
        c.received as f64 / secs,
        c.bytes_received as f64 * 8.0 / secs / 1e6,
        c.lost,
        ms(rtt.p50),
        ms(rtt.p99),
    )
}

/// The human summary block, ping-style.
pub fn summary(s: &RunSummary) -> String {
    let c = &s.counts;
    let mut out = format!("--- {} udp echo {} statistics ---\n", s.target, s.mode);
    let _ = writeln!(
        out,
        "{} probes sent, {} received, {:.1}% loss, {} duplicates, {} reordered, {} corrupt, {} truncated, {} late, time {:.0} ms",
        c.sent,
        c.received,
        s.loss_percent,
        c.duplicates,
        c.reordered,
        c.corrupt,
        c.truncated,
        c.late,
        s.duration_s * 1e3,
    );
    if s.in_flight > 0 || c.foreign > 0 || c.refused > 0 || c.send_errors > 0 {
        let _ = writeln!(
            out,
            "{} still in flight at the end, {} foreign datagrams, {} refused (ICMP port unreachable), {} send errors",
            s.in_flight, c.foreign, c.refused, c.send_errors
        );
    }
    if s.mode != crate::stats::RunMode::Ping {
        let _ = write!(
            out,
            "{:.0} rt/s, {:.1} Mbit/s, sent {:.0} probes/s",
            s.rtt_per_s, s.mbit_per_s, s.send_rate_pps
        );
        match (s.window, s.rate_pps) {
            (Some(w), _) => {
                let _ = write!(out, " (window {w} × {})", flows(s.flows));
            }
            (_, Some(r)) => {
                let _ = write!(
                    out,
                    " of {r:.0} requested ({:.1}%), {}",
                    100.0 * s.send_rate_pps / r.max(1e-9),
                    flows(s.flows)
                );
            }
            _ => {}
        }
        out.push('\n');
    }
    if c.lost > 0 || s.client_drops.unwrap_or(0) > 0 {
        let _ = writeln!(out, "{}", loss_attribution(s));
    }
    if let Some(line) = silence(s) {
        let _ = writeln!(out, "{line}");
    }
    let r = &s.rtt_us;
    if r.samples > 0 {
        let _ = writeln!(
            out,
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
            ms(r.min),
            ms(r.mean),
            ms(r.max),
            ms(r.stddev)
        );
        let _ = writeln!(
            out,
            "rtt p50/p90/p99/p99.9 = {}/{}/{}/{} ms, jitter {} ms",
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.p999),
            ms(r.jitter)
        );
    }
    if let Some(line) = stamp::dscp_line(&s.dscp) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The human summary of any run: the echo summary, or STAMP's.
pub fn any_summary(s: &Summary) -> String {
    match s {
        Summary::Echo(run) => summary(run),
        Summary::Stamp(stamp) => stamp_summary(stamp),
    }
}

/// A line on the longest wait with no reply, when it says more than the loss
/// percentage: past the timeout it was an outage (the server or the path was
/// down for that long, however few probes were lost meanwhile); a stall of at
/// least 100 ms that is also ten times the p99 round trip is worth a note.
pub fn silence(s: &RunSummary) -> Option<String> {
    let quiet = s.longest_silence_ms;
    if s.had_outage() {
        Some(format!(
            "warning: no reply for {quiet:.0} ms while probes were out, longer than the {:.0} ms timeout: the server or the path was down for that long",
            s.timeout_ms
        ))
    } else if quiet >= 100.0 && quiet > 10.0 * s.rtt_us.p99 / 1e3 {
        Some(format!(
            "longest silence {quiet:.0} ms with probes out (p99 round trip {} ms)",
            ms(s.rtt_us.p99)
        ))
    } else {
        None
    }
}

/// Where the lost probes went: dropped in this client's own receive buffers
/// (the kernel counts those per socket) or on the path and server.
pub fn loss_attribution(s: &RunSummary) -> String {
    match s.client_drops {
        Some(mine) => format!(
            "lost {}: {} dropped in this client's receive buffers (kernel counter of its sockets, /proc/net/udp), {} on the path or at the server",
            s.counts.lost,
            mine,
            s.counts.lost.saturating_sub(mine)
        ),
        None => format!(
            "lost {}: this system does not say how many were dropped in this client's own receive buffers",
            s.counts.lost
        ),
    }
}

/// The first line of `--find-rate`.
pub fn find_rate_start(host: &str, config: &MeasureConfig, max_loss: f64) -> String {
    format!(
        "UDP ECHO FIND-RATE {host}: {} bytes per probe, loss ≤ {max_loss}%, steps of {} s over {}, {} s apart",
        config.size,
        secs(config.duration),
        flows(config.flows),
        secs(crate::client::find_rate::SETTLE),
    )
}

/// One `--find-rate` step.
pub fn find_rate_step(i: usize, step: &Step) -> String {
    format!(
        "step {i:2}: {:>9.0} probes/s  sent {:>9.0}/s  lost {} ({:.2}%{})  p99 {} ms  {}",
        step.rate_pps,
        step.send_rate_pps,
        step.lost,
        step.loss_percent,
        match step.client_drops {
            Some(mine) if step.lost > 0 => format!(", {mine} in this client's buffers"),
            _ => String::new(),
        },
        ms(step.p99_us),
        if step.ok { "ok" } else { "too fast" }
    )
}

/// The answer of `--find-rate`.
pub fn find_rate_summary(s: &FindRateSummary) -> String {
    if s.interrupted {
        let so_far = match (s.answer_pps, s.limit_pps) {
            (Some(a), Some(l)) => format!("{a:.0} probes/s passed, {l:.0} probes/s was too fast"),
            (Some(a), None) => format!("{a:.0} probes/s passed, no rate failed yet"),
            (None, Some(l)) => format!("no rate passed, {l:.0} probes/s was too fast"),
            (None, None) => "no step finished".to_owned(),
        };
        let steps = s.steps.len();
        return format!(
            "interrupted after {steps} step{}, before the search ended (loss ≤ {}%): so far {so_far}",
            if steps == 1 { "" } else { "s" },
            s.max_loss_percent
        );
    }
    let limit = s
        .limit_pps
        .map_or("no limit found below the ceiling".to_owned(), |l| {
            format!("{l:.0} probes/s was too fast")
        });
    match s.answer_pps {
        Some(a) => format!(
            "highest rate with loss ≤ {}%: {a:.0} probes/s of {} bytes ({:.1} Mbit/s each way); {limit}",
            s.max_loss_percent,
            s.size,
            a * s.size as f64 * 8.0 / 1e6
        ),
        None => format!("no rate passed (loss ≤ {}%); {limit}", s.max_loss_percent),
    }
}

/// The first line of `--pmtu`.
pub fn pmtu_start(target: &str, min: usize, timeout: Duration) -> String {
    format!(
        "UDP ECHO PMTU {target}: don't-fragment set, payload {min}..{} bytes, timeout {} s",
        crate::probe::MAX_SIZE,
        secs(timeout)
    )
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Intact => "echoed intact".to_owned(),
        Outcome::Emsgsize { path_mtu: Some(m) } => {
            format!("too big here (EMSGSIZE: the kernel's path MTU is {m})")
        }
        Outcome::Emsgsize { path_mtu: None } => "too big here (EMSGSIZE)".to_owned(),
        Outcome::Silence => format!(
            "no reply in {} tries (dropped on the way?)",
            crate::client::pmtu::SILENT_TRIES
        ),
        Outcome::Truncation => "came back truncated".to_owned(),
        Outcome::Corruption => "came back with other bytes".to_owned(),
    }
}

/// One size tried by `--pmtu`.
pub fn pmtu_step(step: &PmtuStep) -> String {
    format!("{:>6} bytes: {}", step.size, outcome_text(&step.outcome))
}

/// The answer of `--pmtu`.
pub fn pmtu_summary(s: &PmtuSummary) -> String {
    let limit = match &s.limit {
        None => "nothing larger exists: the largest UDP payload fits".to_owned(),
        Some(Outcome::Emsgsize { .. }) => {
            "limit: local EMSGSIZE, the kernel knows the path MTU (from the interface or an ICMP \"fragmentation needed\")".to_owned()
        }
        Some(Outcome::Silence) => {
            "limit: silence, larger datagrams are dropped on the way without an ICMP error (a PMTU black hole)".to_owned()
        }
        Some(Outcome::Truncation) => "limit: truncation, larger replies come back cut".to_owned(),
        Some(Outcome::Corruption) => "limit: corruption, larger replies come back altered".to_owned(),
        Some(Outcome::Intact) => unreachable!("an intact size is never the limit"),
    };
    let kernel = s
        .kernel_path_mtu
        .map_or(String::new(), |m| format!("; kernel path MTU {m}"));
    match (s.largest_payload, s.proven_mtu) {
        (Some(p), Some(mtu)) => format!(
            "largest payload that echoes intact: {p} bytes (a path MTU of at least {mtu} = {p} + {} bytes of headers){kernel}; {limit}",
            mtu - p
        ),
        _ => format!(
            "not even the smallest payload echoes intact with don't-fragment set{kernel}; {limit}"
        ),
    }
}

/// The `--doctor` report: one line per finding, its fix indented below, and a
/// closing count.
pub fn doctor(target: &str, findings: &[Finding]) -> String {
    let mut out = format!("udp-echo doctor for {target}\n");
    for f in findings {
        let tag = match f.severity {
            Severity::Ok => "[ok]    ",
            Severity::Note => "[note]  ",
            Severity::Action => "[ACTION]",
        };
        let _ = writeln!(out, "{tag} {}: {}", f.topic, f.text);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "         fix: {fix}");
        }
    }
    let actions = findings
        .iter()
        .filter(|f| f.severity == Severity::Action)
        .count();
    let notes = findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .count();
    let _ = write!(out, "{} need action, {} notes", actions, notes);
    out
}

/// The `--doctor --json` object: the target, the mode and every finding.
pub fn doctor_json(target: &str, findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "target": target, "mode": "doctor", "findings": findings })
}

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
fn merge_empty_runs(buckets: Vec<crate::stats::RttBucket>) -> Vec<crate::stats::RttBucket> {
    let mut merged: Vec<crate::stats::RttBucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.count == 0 && b.count == 0 => last.high_ns = b.high_ns,
            _ => merged.push(b),
        }
    }
    merged
}

/// `--histogram`: the round trips in buckets of equal ratio, as fine as fits
/// in [`HISTOGRAM_LINES`] (8, 4, 2 or 1 per doubling; a run of empty buckets
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
        "RTT distribution: {} round trips, p50 {}, p99 {}; log-scaled bars, count, cumulative %\n",
        latency.count(),
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

/// The `--json` object, one line.
pub fn json(s: &impl serde::Serialize) -> String {
    serde_json::to_string(s).expect("results always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
