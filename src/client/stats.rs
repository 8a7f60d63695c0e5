//! Measurement results as data: probe counters, round-trip statistics from a
//! histogram, and the run summary that both the human report and `--json` render.
//!
//! Pure and unit-tested; nothing here does I/O or formats text for people
//! (that is `report`'s job).

mod dscp;
mod latency;

use std::fmt;

pub use dscp::{DscpFigures, TosTally};
pub use latency::{Latency, RttBucket};

use serde::Serialize;

/// The largest round trip a histogram holds, in ns; longer ones are clamped
/// (a reply that late is counted late anyway).
const MAX_RTT_NS: u64 = 600_000_000_000;

/// What happened to the probes of a run (or of one interval of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Probes sent.
    pub sent: u64,
    /// Probes answered within the timeout (intact, corrupt or truncated).
    pub received: u64,
    /// Probes with no answer within the timeout (late ones included).
    pub lost: u64,
    /// Replies that came after their probe's timeout (their probe is lost).
    pub late: u64,
    /// Extra copies of a reply already seen.
    pub duplicates: u64,
    /// Replies whose sequence number is lower than one already received.
    pub reordered: u64,
    /// Replies matched to a probe but not equal to it: a wrong byte anywhere
    /// (header included: sequence number or send time) or longer than the
    /// probe. Every such reply counts, a late or repeated one too; the first
    /// reply to a probe in time also counts as received.
    pub corrupt: u64,
    /// Replies shorter than the probe.
    pub truncated: u64,
    /// Datagrams that are not replies to any probe of this run.
    pub foreign: u64,
    /// ICMP port-unreachable reports (connection refused) seen on the socket.
    pub refused: u64,
    /// Probes settled as lost by such a report (nobody listens on the
    /// port): each report settles the newest probe still waiting, at once.
    /// Part of `lost`.
    pub lost_refused: u64,
    /// Sends the kernel refused (e.g. ENOBUFS); those probes were not sent.
    pub send_errors: u64,
    /// Payload bytes of the intact replies in time (the throughput figures'
    /// bytes: corrupt and truncated replies carry none of what was asked).
    pub bytes_received: u64,
}

impl Counts {
    /// Adds another flow's or interval's counts.
    pub fn merge(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.received += o.received;
        self.lost += o.lost;
        self.late += o.late;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.corrupt += o.corrupt;
        self.truncated += o.truncated;
        self.foreign += o.foreign;
        self.refused += o.refused;
        self.lost_refused += o.lost_refused;
        self.send_errors += o.send_errors;
        self.bytes_received += o.bytes_received;
    }

    /// What was counted since `earlier`, a snapshot of the same counters.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            sent: self.sent - earlier.sent,
            received: self.received - earlier.received,
            lost: self.lost - earlier.lost,
            late: self.late - earlier.late,
            duplicates: self.duplicates - earlier.duplicates,
            reordered: self.reordered - earlier.reordered,
            corrupt: self.corrupt - earlier.corrupt,
            truncated: self.truncated - earlier.truncated,
            foreign: self.foreign - earlier.foreign,
            refused: self.refused - earlier.refused,
            lost_refused: self.lost_refused - earlier.lost_refused,
            send_errors: self.send_errors - earlier.send_errors,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }

    /// Datagrams that came beside the replies the probes needed: duplicates,
    /// late and foreign ones, and damaged copies. Any of them may be among
    /// what a socket's kernel drop counter counts.
    pub fn extra_datagrams(&self) -> u64 {
        self.duplicates + self.late + self.foreign + self.corrupt
    }

    /// How many lost probes the evidence puts in this client's own receive
    /// buffers, given their kernel drop counter `drops` (datagrams of any
    /// kind): all the drops (at most the probes lost other than to a
    /// refusal) when nothing but first replies came, since then every
    /// dropped datagram was some probe's only reply; `None` when duplicates,
    /// late, damaged or foreign datagrams came too, as any drop may have been
    /// one of those, or when there is no counter. With `drops_are_buffers`
    /// (UDP GRO: each drop a buffer of many replies) drops give only a bound
    /// on the lost, so `None` as soon as there are any.
    pub fn lost_in_client(&self, drops: Option<u64>, drops_are_buffers: bool) -> Option<u64> {
        let lost = self.lost.saturating_sub(self.lost_refused);
        drops
            .filter(|&d| self.extra_datagrams() == 0 && !(drops_are_buffers && d > 0))
            .map(|d| d.min(lost))
    }

    /// Lost as a percentage of the probes whose fate is known.
    pub fn loss_percent(&self, in_flight: u64) -> f64 {
        let settled = self.sent.saturating_sub(in_flight);
        if settled == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / settled as f64
        }
    }
}

/// Round-trip figures in microseconds (0 when nothing came back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RttSummary {
    /// Round trips measured: intact replies in time (corrupt, truncated,
    /// late and duplicate replies are not timed).
    pub samples: u64,
    /// Fastest round trip, µs.
    pub min: f64,
    /// Mean round trip, µs.
    pub mean: f64,
    /// Slowest round trip, µs.
    pub max: f64,
    /// Standard deviation (ping's mdev), µs.
    pub stddev: f64,
    /// Median, µs.
    pub p50: f64,
    /// 90th percentile, µs.
    pub p90: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// 99.9th percentile, µs.
    pub p999: f64,
    /// RFC 3550 interarrival jitter estimate, µs; `None` when there is
    /// nothing to estimate it from: fewer than two round trips, or ones timed
    /// with batch-shared times ([`RttResolution::PerBatch`]), whose
    /// differences are the batching's, not the path's.
    pub jitter: Option<f64>,
}

/// Whether each round trip was timed with its own probe's times; serialises
/// as `"per-probe"` or `"per-batch"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RttResolution {
    /// Every round trip from its probe's own send time and its reply's own
    /// receive time (ping: one probe per send, one reply per receive).
    PerProbe,
    /// Some round trips from times shared by a batch: probes sent in one
    /// write (GSO or `sendmmsg`) carry one send time, replies in one GRO
    /// buffer (or one receive call without kernel stamps) one receive
    /// time. Their spread within a batch is not measured.
    PerBatch,
}

impl RttResolution {
    /// The resolution of a run in which `batch_timed` round trips used
    /// batch-shared times.
    pub fn of(batch_timed: u64) -> RttResolution {
        if batch_timed == 0 {
            RttResolution::PerProbe
        } else {
            RttResolution::PerBatch
        }
    }
}

/// Whose clock timed the replies' arrival; serialises as `"kernel"`,
/// `"user"` or `"mixed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RttClock {
    /// The kernel's receive time stamp of every reply (`SO_TIMESTAMPNS`):
    /// the client's own wake-up delay is not in the round trips.
    Kernel,
    /// The client's clock when its receive call returned (no kernel stamps).
    User,
    /// Some replies one way, some the other.
    Mixed,
}

impl RttClock {
    /// The clock of a run whose receives carried a kernel time `kernel`
    /// times and none `user` times (no receive at all: `User`).
    pub fn of(kernel: u64, user: u64) -> RttClock {
        match (kernel, user) {
            (0, _) => RttClock::User,
            (_, 0) => RttClock::Kernel,
            _ => RttClock::Mixed,
        }
    }
}

/// The host's own send delay: from the client's user-space send time to
/// the kernel's transmit stamp of the datagram, µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SendDelay {
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
}

impl SendDelay {
    /// The figures of `delays` (ns); `None` when there are none.
    pub fn of(delays: &Latency) -> Option<SendDelay> {
        (delays.count() > 0).then(|| SendDelay {
            p50: delays.quantile_ns(0.5) as f64 / 1e3,
            p99: delays.quantile_ns(0.99) as f64 / 1e3,
        })
    }
}

/// Which measured mode a run was; serialises as `"ping"`, `"flood"`, `"rate"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// One probe per interval.
    Ping,
    /// Closed loop: a window of probes in flight.
    Flood,
    /// Open loop: a fixed send rate.
    Rate,
}

impl RunMode {
    /// The mode's name, as in the JSON and the reports.
    pub fn name(self) -> &'static str {
        match self {
            RunMode::Ping => "ping",
            RunMode::Flood => "flood",
            RunMode::Rate => "rate",
        }
    }
}

impl fmt::Display for RunMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The whole result of a measured run: what `--json` prints, field for field.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The server probed, as `ADDR:PORT`: the address, whatever name was
    /// given (the same text as every line of the report and the metrics'
    /// `target` label).
    pub target: String,
    /// The server as given (`-H`): a name, or the address itself.
    pub host: String,
    /// Which measured mode ran.
    pub mode: RunMode,
    /// Probe size in bytes (UDP payload).
    pub size: usize,
    /// Probes in flight per flow (flood mode).
    pub window: Option<usize>,
    /// Requested send rate in probes/s, all flows together (rate mode).
    pub rate_pps: Option<f64>,
    /// Sockets (source ports) used.
    pub flows: usize,
    /// Probe counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// Probes still unanswered and not yet timed out when the run ended
    /// (`sent = received + lost + in_flight`).
    pub in_flight: u64,
    /// Length of the sending period, seconds.
    pub duration_s: f64,
    /// Achieved send rate, probes/s.
    pub send_rate_pps: f64,
    /// Round trips completed per second: intact replies in time.
    pub rtt_per_s: f64,
    /// Reply payload throughput, Mbit/s (one direction): intact replies in
    /// time only.
    pub mbit_per_s: f64,
    /// Loss as a percentage of settled probes.
    pub loss_percent: f64,
    /// Round-trip figures of intact replies, µs.
    pub rtt_us: RttSummary,
    /// Datagrams the kernel dropped because this client's own receive
    /// buffers were full: the `drops` counter of its sockets in
    /// `/proc/net/udp` (`None` where unavailable). Datagrams of any kind:
    /// replies, but also duplicates, late and foreign ones.
    pub client_drops: Option<u64>,
    /// Whether `client_drops` counts receive buffers rather than datagrams:
    /// with UDP GRO on (flood and rate) the kernel queues, and drops, up to
    /// 128 same-size replies as one buffer and counts it once.
    pub client_drops_are_buffers: bool,
    /// How many of the lost probes were dropped in this client's own
    /// receive buffers, where the evidence says (see
    /// [`Counts::lost_in_client`]); `None` when it does not.
    pub lost_in_client: Option<u64>,
    /// How long a reply could take before its probe counted as lost, ms.
    pub timeout_ms: f64,
    /// The longest time one flow waited with probes out and no reply at
    /// all, ms: from the first probe sent after a reply (or from a reply
    /// that left probes out) to the next reply or the end of the run. A
    /// server that died mid-run shows here even when the few probes in
    /// flight at that moment make a tiny loss percentage.
    pub longest_silence_ms: f64,
    /// Whose clock timed the replies: `"kernel"` (receive time stamps),
    /// `"user"` or `"mixed"`.
    pub rtt_clock: RttClock,
    /// Whose clock timed the probes' departure: `"kernel"` (the kernel's
    /// transmit stamp of every round trip's probe: ping and rate on Linux),
    /// `"user"` (the client's clock before its send call) or `"mixed"`.
    pub rtt_send_clock: RttClock,
    /// Round trips that asked for a kernel transmit stamp but got none in
    /// time, so started at the user-space send time instead.
    pub tx_stamp_missing: u64,
    /// The host's own send delay (user-space send time → kernel transmit
    /// stamp) of the round trips timed from a stamp; `None` without any.
    pub send_delay_us: Option<SendDelay>,
    /// `"per-probe"` when every round trip had its probe's own times,
    /// `"per-batch"` when some shared a batch's (flood and rate).
    pub rtt_resolution: RttResolution,
    /// Round trips timed with batch-shared times (of `rtt_us.samples`).
    pub rtt_batch_timed: u64,
    /// The DSCP sent and the DSCPs and ECN codepoints the replies came back
    /// with: `dscp_sent`, `dscp_seen`, `ecn_seen`, `dscp_changed`.
    #[serde(flatten)]
    pub dscp: DscpFigures,
}

impl RunSummary {
    /// Whether the run had an outage: longer than the timeout with no reply.
    pub fn had_outage(&self) -> bool {
        self.longest_silence_ms > self.timeout_ms
    }

    /// Whether the run passed: at least one reply, none corrupt or truncated.
    pub fn passed(&self) -> bool {
        self.counts.received > 0 && self.counts.corrupt == 0 && self.counts.truncated == 0
    }

    /// A one-flow ping of 64-byte probes to 127.0.0.1:9999, nothing counted
    /// yet: unit tests set the fields they look at (`..for_tests()`), so a
    /// new field is added here once.
    #[cfg(test)]
    pub(crate) fn for_tests() -> RunSummary {
        RunSummary {
            target: "127.0.0.1:9999".into(),
            host: "127.0.0.1".into(),
            mode: RunMode::Ping,
            size: 64,
            window: None,
            rate_pps: None,
            flows: 1,
            counts: Counts::default(),
            in_flight: 0,
            duration_s: 1.0,
            send_rate_pps: 0.0,
            rtt_per_s: 0.0,
            mbit_per_s: 0.0,
            loss_percent: 0.0,
            rtt_us: RttSummary::default(),
            client_drops: Some(0),
            client_drops_are_buffers: false,
            lost_in_client: Some(0),
            timeout_ms: 1000.0,
            longest_silence_ms: 0.0,
            rtt_clock: RttClock::Kernel,
            rtt_send_clock: RttClock::User,
            tx_stamp_missing: 0,
            send_delay_us: None,
            rtt_resolution: RttResolution::PerProbe,
            rtt_batch_timed: 0,
            dscp: DscpFigures::default(),
        }
    }
}

#[cfg(test)]
mod tests;
