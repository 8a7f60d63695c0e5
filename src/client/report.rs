//! The only place that formats measurement results for people: ping's lines
//! and summary block, flood/rate interval lines, and the `--json` object.

mod histogram;
mod stamp;
mod tools;

pub use histogram::{histogram, terminal_width};
pub use stamp::{not_reflections, stamp_summary};
pub use tools::{
    doctor, doctor_json, find_rate_start, find_rate_step, find_rate_summary, pmtu_start, pmtu_step,
    pmtu_summary,
};

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::measure::{Event, IntervalReport, MeasureConfig, MeasureMode, MeasureSummary};
use crate::client::probe::Check;
use crate::client::stats::{RttResolution, RunSummary};

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

pub use crate::units::count;

fn flows(n: usize) -> String {
    count(n as u64, "flow", "flows")
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
        MeasureMode::Ping { count, interval } => format!(
            "{kind} PING {target}: {what}{tos}, {}interval {} s, timeout {timeout} s",
            count.map_or(String::new(), |c| format!(
                "{}, ",
                crate::client::report::count(c, noun.trim_end_matches('s'), noun)
            )),
            secs(interval),
        ),
        MeasureMode::Flood { window } => format!(
            "{kind} FLOOD {target}: {what}{tos}, window {window} × {}, {} s, timeout {timeout} s",
            flows(config.flows),
            secs(config.duration),
        ),
        MeasureMode::Rate { pps } => format!(
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
        Event::Refused { seq: Some(seq) } => {
            format!("no UDP server at {target}: seq={seq} (connection refused)")
        }
        Event::Refused { seq: None } => format!("no UDP server at {target} (connection refused)"),
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
        report.latency.count() as f64 / secs,
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
        "{} sent, {} received, {:.1}% loss, {}, {} reordered, {} corrupt, {} truncated, {} late, time {:.0} ms",
        count(c.sent, "probe", "probes"),
        c.received,
        s.loss_percent,
        count(c.duplicates, "duplicate", "duplicates"),
        c.reordered,
        c.corrupt,
        c.truncated,
        c.late,
        s.duration_s * 1e3,
    );
    if s.in_flight > 0 || c.foreign > 0 || c.refused > 0 || c.send_errors > 0 {
        let _ = writeln!(
            out,
            "{} still in flight at the end, {}, {} refused (ICMP port unreachable), {}",
            s.in_flight,
            count(c.foreign, "foreign datagram", "foreign datagrams"),
            c.refused,
            count(c.send_errors, "send error", "send errors")
        );
    }
    if s.mode != crate::client::stats::RunMode::Ping {
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
            "rtt p50/p90/p99/p99.9 = {}/{}/{}/{} ms, jitter {}",
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.p999),
            match r.jitter {
                Some(j) => format!("{} ms", ms(j)),
                None if s.rtt_resolution == RttResolution::PerBatch => {
                    "n/a (per-batch times)".to_owned()
                }
                None => "n/a (one round trip)".to_owned(),
            }
        );
        if let Some(line) = send_delay_line(s) {
            let _ = writeln!(out, "{line}");
        }
        if s.rtt_resolution == RttResolution::PerBatch {
            let _ = writeln!(
                out,
                "rtt resolution per-batch: {} of {} round trips timed with a batch's shared time (probes sent in one write share a send time, replies in one receive buffer a receive time), so no jitter",
                s.rtt_batch_timed, r.samples
            );
        }
    }
    if let Some(line) = stamp::dscp_line(&s.dscp) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The host's own send delay, where kernel transmit stamps timed the round
/// trips' start, and how many round trips asked for one and got none.
pub fn send_delay_line(s: &RunSummary) -> Option<String> {
    let missing = match s.tx_stamp_missing {
        0 => String::new(),
        n => format!(", {n} round trips without a stamp timed from the user-space send"),
    };
    match s.send_delay_us {
        Some(d) => Some(format!(
            "send delay p50/p99 = {}/{} ms (user-space send to kernel transmit stamp; round trips start at the stamp{missing})",
            ms(d.p50),
            ms(d.p99)
        )),
        None if s.tx_stamp_missing > 0 => Some(format!(
            "no kernel transmit stamps: {} round trips timed from the user-space send",
            s.tx_stamp_missing
        )),
        None => None,
    }
}

/// The human summary of any run: the echo summary, or STAMP's.
pub fn any_summary(s: &MeasureSummary) -> String {
    match s {
        MeasureSummary::Echo(run) => summary(run),
        MeasureSummary::Stamp(stamp) => stamp_summary(stamp),
    }
}

/// A line on the longest wait with no reply, when it says more than the loss
/// percentage: past the timeout it was an outage (the server or the path was
/// down for that long, however few probes were lost meanwhile); a stall of at
/// least 100 ms that is also ten times the p99 round trip is worth a note.
/// When every lost probe was refused (ICMP port unreachable) the loss line
/// already says why: nobody listened, the path was up.
pub fn silence(s: &RunSummary) -> Option<String> {
    let quiet = s.longest_silence_ms;
    let c = &s.counts;
    if c.lost_refused > 0 && c.lost_refused >= c.lost {
        return None;
    }
    let refused = if c.lost_refused > 0 {
        format!(
            " ({} of the lost refused: nobody listened on the port for part of it)",
            c.lost_refused
        )
    } else {
        String::new()
    };
    if s.had_outage() {
        Some(format!(
            "warning: no reply for {quiet:.0} ms while probes were out, longer than the {:.0} ms timeout: the server or the path was down for that long{refused}",
            s.timeout_ms
        ))
    } else if quiet >= 100.0 && quiet > 10.0 * s.rtt_us.p99 / 1e3 {
        Some(format!(
            "longest silence {quiet:.0} ms with probes out (p99 round trip {} ms){refused}",
            ms(s.rtt_us.p99)
        ))
    } else {
        None
    }
}

use crate::net::GRO_SEGMENTS_MAX;

/// Where the lost probes went, as far as the evidence goes: refused (an ICMP
/// port unreachable: nobody listens), dropped in this client's own receive
/// buffers (the kernel counts those per socket, but counts every kind of
/// datagram: only when nothing but first replies came are the drops lost
/// replies), or on the path and at the server.
pub fn loss_attribution(s: &RunSummary) -> String {
    let c = &s.counts;
    let refused = c.lost_refused.min(c.lost);
    let rest = c.lost - refused;
    let mut parts = Vec::new();
    if refused > 0 {
        parts.push(format!(
            "{refused} refused (ICMP port unreachable: nothing listens on {})",
            s.target
        ));
    }
    let drops = s.client_drops.unwrap_or(0);
    // With UDP GRO the kernel's drop counter counts receive buffers.
    let (unit, per_drop) = if s.client_drops_are_buffers {
        (("receive buffer", "receive buffers"), GRO_SEGMENTS_MAX)
    } else {
        (("datagram", "datagrams"), 1)
    };
    match (s.lost_in_client, s.client_drops) {
        _ if rest == 0 && drops == 0 && refused > 0 => {}
        (None, Some(drops)) if s.client_drops_are_buffers && c.extra_datagrams() == 0 && rest > 0 => parts.push(format!(
            "{rest} on the path, at the server or in this client's receive buffers, which dropped {} (UDP GRO: each holds up to {GRO_SEGMENTS_MAX} replies, so up to {} of the lost; /proc/net/udp)",
            count(drops, "buffer", "buffers"),
            drops.saturating_mul(per_drop).min(rest)
        )),
        (Some(mine), _) => {
            parts.push(format!(
                "{mine} dropped in this client's receive buffers (kernel counter of its sockets, /proc/net/udp)"
            ));
            parts.push(format!("{} on the path or at the server", rest - mine));
        }
        (None, Some(drops)) if rest == 0 => parts.push(match c.extra_datagrams() {
            0 => format!(
                "none in this client's receive buffers, which dropped {} that were not needed",
                count(drops, unit.0, unit.1),
            ),
            _ => format!(
                "none in this client's receive buffers, which dropped {} that were not needed ({} came)",
                count(drops, unit.0, unit.1),
                extras(c)
            ),
        }),
        (None, Some(drops)) => parts.push(format!(
            "{rest} on the path, at the server or dropped in this client's receive buffers (they dropped {}, but {} came too, so the drops need not be replies: at most {} of the lost)",
            count(drops, unit.0, unit.1),
            extras(c),
            drops.saturating_mul(per_drop).min(rest)
        )),
        (None, None) => parts.push(format!(
            "{rest} on the path, at the server or dropped in this client's receive buffers (this system does not say what those dropped)"
        )),
    }
    format!("lost {}: {}", c.lost, parts.join(", "))
}

/// The datagrams beside the needed replies, named: `300 duplicates, 2 foreign`.
fn extras(c: &crate::client::stats::Counts) -> String {
    let named = [
        (c.duplicates, "duplicate", "duplicates"),
        (c.late, "late reply", "late replies"),
        (c.corrupt, "damaged reply", "damaged replies"),
        (c.foreign, "foreign datagram", "foreign datagrams"),
    ];
    named
        .iter()
        .filter(|(n, ..)| *n > 0)
        .map(|&(n, one, many)| count(n, one, many))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `--json` object, one line.
pub fn json(s: &impl serde::Serialize) -> String {
    serde_json::to_string(s).expect("results always serialize")
}

#[cfg(test)]
mod tests;
