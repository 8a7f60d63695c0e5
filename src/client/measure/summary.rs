//! The end of a measured run: the flows' books merged into one summary, with
//! STAMP's own figures beside it when the run was a STAMP session.

use serde::Serialize;

use super::flow::Flow;
use super::{MeasureConfig, MeasureMode};
use crate::client::stamp::{self, StampSummary};
use crate::client::stats::{
    Counts, Latency, RttClock, RttResolution, RunSummary, SendDelay, TosTally,
};

/// What a measured run found: an echo run's summary, or a STAMP session's
/// (which holds the echo summary and adds to it). Serialises as the one
/// flat JSON object of either.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
// One per run, built once at its end: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum MeasureSummary {
    /// Echo probes.
    Echo(RunSummary),
    /// STAMP test packets (`--stamp`).
    Stamp(StampSummary),
}

impl MeasureSummary {
    /// The figures every run has.
    pub fn run(&self) -> &RunSummary {
        match self {
            MeasureSummary::Echo(run) => run,
            MeasureSummary::Stamp(s) => &s.run,
        }
    }

    /// Says which name the server was given as (the run's own target may
    /// have named the address already: [`crate::client::pinned`]).
    pub fn set_host(&mut self, host: &str) {
        let run = match self {
            MeasureSummary::Echo(run) => run,
            MeasureSummary::Stamp(s) => &mut s.run,
        };
        host.clone_into(&mut run.host);
    }

    /// Just the figures every run has.
    pub fn into_run(self) -> RunSummary {
        match self {
            MeasureSummary::Echo(run) => run,
            MeasureSummary::Stamp(s) => s.run,
        }
    }

    /// Whether the run passed: at least one reply, none corrupt or truncated.
    pub fn passed(&self) -> bool {
        self.run().passed()
    }
}

/// When a run's sending started and ended, and when it ended altogether (ns).
pub(super) struct Span {
    pub(super) start_ns: u64,
    pub(super) send_end_ns: u64,
    pub(super) end_ns: u64,
}

/// Merges the flows' books into the run's summary; `latency_out` gets the
/// merged round trips (`--histogram`).
pub(super) fn summarize(
    config: &MeasureConfig,
    flows: &[Flow],
    target: String,
    host: String,
    span: Span,
    client_drops: Option<u64>,
    latency_out: Option<&mut Latency>,
) -> MeasureSummary {
    let mut counts = Counts::default();
    let client_drops_are_buffers = flows.iter().any(|f| f.gro);
    let mut latency = Latency::new();
    let mut tos = TosTally::default();
    let mut in_flight = 0;
    let mut longest_silence = std::time::Duration::ZERO;
    let (mut kernel_timed, mut user_timed, mut batch_timed) = (0, 0, 0);
    let (mut tx_stamped, mut tx_missing) = (0, 0);
    let mut send_delay = Latency::new();
    for flow in flows {
        let (stamped, missing) = flow.books.tx_stamps();
        tx_stamped += stamped;
        tx_missing += missing;
        send_delay.merge(flow.books.send_delay());
        batch_timed += flow.books.batch_timed();
        kernel_timed += flow.kernel_timed;
        user_timed += flow.user_timed;
        counts.merge(flow.books.counts());
        latency.merge(flow.books.latency());
        tos.merge(&flow.tos);
        in_flight += flow.books.outstanding();
        longest_silence = longest_silence.max(flow.books.longest_silence(span.end_ns));
    }
    if let Some(out) = latency_out {
        out.clone_from(&latency);
    }
    let resolution = RttResolution::of(batch_timed);
    let mut rtt_us = latency.summary();
    if resolution == RttResolution::PerBatch {
        // Differences of batch-shared times are the batching's, not the path's.
        rtt_us.jitter = None;
    }
    let duration_s = (span.send_end_ns.saturating_sub(span.start_ns) as f64 / 1e9).max(1e-9);
    let run = RunSummary {
        target,
        host,
        mode: config.mode.kind(),
        size: config.size,
        window: match config.mode {
            MeasureMode::Flood { window } => Some(window),
            _ => None,
        },
        rate_pps: match config.mode {
            MeasureMode::Rate { pps } => Some(pps),
            _ => None,
        },
        flows: flows.len(),
        in_flight,
        duration_s,
        send_rate_pps: counts.sent as f64 / duration_s,
        // Intact replies in time only, like the Mbit/s: a damaged reply is
        // no completed round trip.
        rtt_per_s: latency.count() as f64 / duration_s,
        mbit_per_s: counts.bytes_received as f64 * 8.0 / duration_s / 1e6,
        loss_percent: counts.loss_percent(in_flight),
        rtt_us,
        lost_in_client: counts.lost_in_client(client_drops, client_drops_are_buffers),
        client_drops_are_buffers,
        counts,
        client_drops,
        timeout_ms: config.timeout.as_secs_f64() * 1e3,
        longest_silence_ms: longest_silence.as_secs_f64() * 1e3,
        rtt_clock: RttClock::of(kernel_timed, user_timed),
        rtt_send_clock: RttClock::of(tx_stamped, latency.count().saturating_sub(tx_stamped)),
        tx_stamp_missing: tx_missing,
        send_delay_us: SendDelay::of(&send_delay),
        rtt_resolution: resolution,
        rtt_batch_timed: batch_timed,
        dscp: tos.figures(config.tos),
    };
    let sessions: Vec<_> = flows
        .iter()
        .filter_map(|f| {
            let c = f.books.counts();
            f.stamp.as_ref().map(|s| (s, c.lost, f.books.outstanding()))
        })
        .collect();
    if sessions.is_empty() {
        MeasureSummary::Echo(run)
    } else {
        MeasureSummary::Stamp(stamp::summarize(run, &sessions))
    }
}
