//! A burst's result as the Prometheus text `/probe` answers with.

use super::*;

/// The quantiles the RTT summary gives.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// A burst's result in the Prometheus text format (blackbox's
/// `probe_success` and `probe_duration_seconds`, then `probe_udp_echo_*`).
pub fn render(result: &ProbeResult) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    };
    let c = &result.counts;
    gauge(
        "probe_success",
        "Whether the target answered correctly: an intact reply and none corrupt.",
        u8::from(result.success()).into(),
    );
    gauge(
        "probe_duration_seconds",
        "How long the probe took, resolution included.",
        result.duration.as_secs_f64(),
    );
    if let Some(peer) = result.peer {
        gauge(
            "probe_ip_protocol",
            "The IP version the target was probed over.",
            if peer.is_ipv4() { 4.0 } else { 6.0 },
        );
    }
    gauge(
        "probe_udp_echo_sent",
        "Probes sent in the burst.",
        c.sent as f64,
    );
    gauge(
        "probe_udp_echo_received",
        "Probes answered by an intact reply in time.",
        c.received as f64,
    );
    gauge(
        "probe_udp_echo_lost",
        "Probes with no reply within the timeout.",
        c.lost as f64,
    );
    gauge(
        "probe_udp_echo_duplicate",
        "Extra copies of replies.",
        c.duplicates as f64,
    );
    gauge(
        "probe_udp_echo_corrupt",
        "Replies whose bytes differ from the probe.",
        c.corrupt as f64,
    );
    gauge(
        "probe_udp_echo_late",
        "Replies that came after their probe's timeout.",
        c.late as f64,
    );
    gauge(
        "probe_udp_echo_reordered",
        "Replies that came out of order.",
        c.reordered as f64,
    );
    let loss = if c.sent == 0 {
        1.0
    } else {
        c.lost as f64 / c.sent as f64
    };
    gauge(
        "probe_udp_echo_loss_ratio",
        "Lost probes / probes sent (1 if none was sent).",
        loss,
    );
    let rtt = result.latency.summary();
    let secs = |us: f64| us / 1e6;
    gauge(
        "probe_udp_echo_rtt_min_seconds",
        "The shortest round trip (0: none).",
        secs(rtt.min),
    );
    gauge(
        "probe_udp_echo_rtt_avg_seconds",
        "The mean round trip (0: none).",
        secs(rtt.mean),
    );
    gauge(
        "probe_udp_echo_rtt_max_seconds",
        "The longest round trip (0: none).",
        secs(rtt.max),
    );
    let name = "probe_udp_echo_rtt_seconds";
    let _ = write!(
        out,
        "# HELP {name} Round trips of the burst's intact replies.\n# TYPE {name} summary\n"
    );
    for q in QUANTILES {
        let value = result.latency.quantile_ns(q) as f64 / 1e9;
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value}");
    }
    let sum_s = rtt.mean * rtt.samples as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum_s}\n{name}_count {}", rtt.samples);
    out
}
