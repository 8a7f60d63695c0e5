//! The measured modes: ping (one probe per interval), flood (closed loop, a
//! window of probes in flight per flow) and rate (open loop, paced sends).
//!
//! Each flow is one connected socket with its own sequence space. A `Flow`
//! does the socket work: it sends probes in batches (flood and rate: several
//! probes per UDP GSO send where the kernel has it, else `sendmmsg`), receives
//! replies in batches (`recvmmsg`; flood and rate with UDP GRO), times them
//! with the kernel's receive time stamp where there is one (`offload.rs`)
//! and hands each reply to its `Books`, the
//! pure bookkeeping (`measure/books.rs`) that checks every byte and tells
//! answers, losses, duplicates, late replies and reordering apart. A probe
//! with no reply within `--timeout` is lost and frees its window slot.
//!
//! The probes are echo probes, or with `--stamp` STAMP test packets (one
//! session per flow): `measure/codec.rs` writes and reads either, so the
//! books and every figure they give serve both; STAMP's own figures
//! (`client/stamp.rs`) are kept beside the books.
//!
//! # A probe's path through the client
//!
//! 1. `Command::Measure` → `session::run`: the target resolved once (`client::pinned`: every socket,
//!    line and label names that address), report to stdout (stderr if `--probes -`), a `--metrics`
//!    thread (URL on stderr), a `--probes` writer (`sync_channel(64)`), and `measure_with`, whose hooks
//!    print `report::start_line`/`ping_event`/`interval_line` and feed `ClientMetrics` and `Timeline`.
//! 2. `measure_with` connects a socket per flow (ping: one), 1 ms read timeout (`TICK`). Ping runs on
//!    the calling thread; flood and rate, a scoped thread per flow while the calling thread's
//!    `report_intervals` takes an `IntervalReport` a second from the flows' `Shared`.
//! 3. `Flow::send`: the `Codec` writes up to 64 probes (echo: sequence, increasing send stamp,
//!    pattern; STAMP: a test packet whose sequence and sender time stamp carry the same two);
//!    flood and rate send them with one `UDP_SEGMENT` send (`GsoSender`), else through the
//!    `SendBatch` with `sendmmsg`; `Books::sent` queues them on the FIFO.
//!    Ping and rate ask the kernel for a transmit stamp of every send (`TxKeys` maps its counter to
//!    the probes the send carried).
//! 4. `Flow::receive`: first the transmit stamps queued on the error queue (non-blocking; a probe's
//!    round trip then starts at its stamp, `Books::tx_stamp`), then one `GroBatch` receive (GRO on in flood and rate: a buffer holds many replies,
//!    split into datagrams), each buffer timed by its kernel receive stamp (`rtt_clock` "kernel") or
//!    the clock after the call ("user"); flood blocks (≤ 1 ms); ping and rate take what is queued,
//!    then `ppoll` (`wait_readable`) until the next send or deadline (ping ≤ 100 ms, rate ≤ 10 ms).
//!    `codec::book_reply` decodes each reply once (`Codec::decode`); from that one reading
//!    `Books::reply_decoded` matches it to its probe through the `Codec`'s claims (sequence, echoed
//!    stamp), the codec checks the rest (echo: pattern; STAMP: SSID, HMAC, CoS TLV, each at most
//!    once), the echoed stamp must be the one recorded; RTTs go to `Latency`, the reply's TOS to the
//!    flow's `TosTally`, STAMP figures (from the same decoding) to its `StampBooks`. A probe's RTT runs from its send's one time (the stamps' +i ns only
//!    name the probes); a probe that shared its send or its reply's receive time with others counts in
//!    `batch_timed` (`rtt_resolution` "per-batch", no jitter). An ICMP port unreachable settles the
//!    newest waiting probe as lost (`lost_refused`). `Flow::expire` counts probes past `--timeout` as
//!    lost. Records go to the writer in batches of ≤ 512.
//! 5. The books merge into a `RunSummary`; `session` writes `report::summary`/`json`, histogram, SVG.

use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::Target;
use super::probes::{ProbeBatch, unix_now_ns};
use super::stamp::StampConfig;
use crate::client::probe::{Check, Clock};
use crate::client::stats::{Counts, Latency, RunMode, RunSummary};
use crate::error::{Error, Result};
use crate::net::udp_table;
use crate::shutdown::Stop;

pub(crate) mod books;
pub(crate) mod codec;
mod flow;
mod modes;
pub(crate) mod offload;
mod summary;

use codec::Codec;
use flow::{Flow, Shared};
use modes::{ping, run_flow, until};
pub use summary::MeasureSummary;

/// Probes per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;

/// How long a blocking receive in flood mode waits before the loop looks at its
/// clocks again: short enough to expire lost probes and end on time, long
/// enough not to spin.
const TICK: Duration = Duration::from_millis(1);

/// How the probes are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeasureMode {
    /// One probe per `interval` (0: the next as soon as the reply or its
    /// timeout comes), `count` probes in all (`None`: until stopped).
    Ping {
        /// Probes in all; `None` until stopped (`-c 0`).
        count: Option<u64>,
        /// From one probe to the next.
        interval: Duration,
    },
    /// Closed loop: keep `window` probes in flight on each flow.
    Flood {
        /// Probes in flight per flow.
        window: usize,
    },
    /// Open loop: `pps` probes per second over all flows.
    Rate {
        /// Probes per second, all flows together.
        pps: f64,
    },
}

impl MeasureMode {
    /// Which mode this is, as a run summary names it.
    pub fn kind(&self) -> RunMode {
        match self {
            MeasureMode::Ping { .. } => RunMode::Ping,
            MeasureMode::Flood { .. } => RunMode::Flood,
            MeasureMode::Rate { .. } => RunMode::Rate,
        }
    }
}

/// A measured run, free of command-line types.
#[derive(Debug, Clone)]
pub struct MeasureConfig {
    /// How probes are sent.
    pub mode: MeasureMode,
    /// Probe size in bytes, 16 ..= 65507.
    pub size: usize,
    /// How long to wait for each reply before counting its probe lost.
    pub timeout: Duration,
    /// Length of a flood or rate run.
    pub duration: Duration,
    /// Sockets (source ports), one thread each, in flood and rate mode.
    pub flows: usize,
    /// STAMP test packets instead of echo probes (`--stamp`): one session
    /// per flow; `size` is then the test packet's length.
    pub stamp: Option<StampConfig>,
    /// The TOS byte every probe is sent with (`--tos`); `None`: the system's.
    pub tos: Option<u8>,
}

/// Something a run prints a line for (ping mode: every reply and timeout).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// The sockets are ready and the first probe is about to leave.
    Start {
        /// The server's address, as resolved.
        peer: SocketAddr,
    },
    /// A reply to probe `seq`.
    Reply {
        /// The probe it answers.
        seq: u64,
        /// Its length.
        bytes: usize,
        /// Where it came from (ping's `(DIFFERENT ADDRESS!)` when not the peer).
        from: SocketAddr,
        /// Round trip in ns (0 for a duplicate; by the echoed time when late).
        rtt_ns: u64,
        /// What the bytes turned out to be.
        check: Check,
        /// Another copy of a reply already counted.
        duplicate: bool,
        /// The first reply, but after the probe's timeout.
        late: bool,
        /// The TOS byte it arrived with, where the kernel reports it.
        tos: Option<u8>,
    },
    /// Probe `seq` got no reply within the timeout.
    Timeout {
        /// The probe that timed out.
        seq: u64,
    },
    /// The kernel reported ICMP port unreachable: nobody listens on the
    /// port. It settled probe `seq` as lost (`None`: no probe was waiting).
    Refused {
        /// The probe it settled.
        seq: Option<u64>,
    },
}

/// One interval line of a flood or rate run.
#[derive(Debug, Clone)]
pub struct IntervalReport {
    /// Seconds since the start, at the interval's start and end.
    pub from_s: f64,
    /// End of the interval, seconds since the start.
    pub to_s: f64,
    /// What happened in the interval.
    pub counts: Counts,
    /// Round trips of the interval.
    pub latency: Latency,
}

/// Everything a run tells as it goes, beside its summary.
pub struct Hooks<'a> {
    /// Ping mode's replies and timeouts (and the start, in every mode).
    pub on_event: &'a mut dyn FnMut(Event),
    /// Flood and rate modes' interval reports, one a second.
    pub on_interval: &'a mut dyn FnMut(&IntervalReport),
    /// Ping mode: the running counts, after every step that changed them.
    pub on_counts: Option<&'a mut dyn FnMut(&Counts)>,
    /// `--probes`: where each flow sends its per-probe records.
    pub probes: Option<SyncSender<ProbeBatch>>,
    /// Filled at the end with the run's merged round trips (`--histogram`).
    pub latency: Option<&'a mut Latency>,
}

/// Runs a measured mode against `target` and returns the summary (a STAMP
/// run's: the figures every run has).
///
/// `on_event` sees ping mode's replies and timeouts; `on_interval` gets one
/// report per second in flood and rate modes.
pub fn measure(
    target: &Target,
    config: &MeasureConfig,
    stop: &Stop,
    on_event: &mut dyn FnMut(Event),
    on_interval: &mut dyn FnMut(&IntervalReport),
) -> Result<RunSummary> {
    let hooks = Hooks {
        on_event,
        on_interval,
        on_counts: None,
        probes: None,
        latency: None,
    };
    measure_with(target, config, stop, hooks).map(MeasureSummary::into_run)
}

impl MeasureConfig {
    /// This run's config for resolved target `peer`, when that changes it:
    /// with `--stamp-tlv dna` the Destination Node Address TLV is 4 or 16
    /// address bytes by `peer`'s family, and without `--size` the packet's
    /// length follows. `None`: nothing changes.
    pub fn for_peer(&self, peer: std::net::IpAddr) -> Option<MeasureConfig> {
        let stamp = self.stamp.as_ref().filter(|s| s.tlvs.dna)?;
        let mut stamp = stamp.clone();
        stamp.tlvs = stamp.tlvs.for_peer(peer);
        Some(MeasureConfig {
            size: stamp.packet_len(self.tos),
            stamp: Some(stamp),
            ..self.clone()
        })
    }
}

/// [`measure`] with every hook (running counts in ping mode, per-probe
/// records) and the whole summary, STAMP's figures included.
pub fn measure_with(
    target: &Target,
    config: &MeasureConfig,
    stop: &Stop,
    hooks: Hooks<'_>,
) -> Result<MeasureSummary> {
    let Hooks {
        on_event,
        on_interval,
        on_counts,
        probes,
        latency: latency_out,
    } = hooks;
    let flows = match config.mode {
        MeasureMode::Ping { .. } => 1,
        _ => config.flows.max(1),
    };
    let in_flight_max = match config.mode {
        MeasureMode::Ping { .. } => 1024,
        MeasureMode::Flood { window } => window,
        MeasureMode::Rate { pps } => {
            (pps / flows as f64 * config.timeout.as_secs_f64() * 1.5) as usize + BATCH
        }
    };
    let (clock, origin_unix_ns) = (Clock::new(), unix_now_ns());
    let offloads = offload::Offloads::from_env();
    let mut conns = Vec::with_capacity(flows);
    for _ in 0..flows {
        let conn = super::connect(target)?;
        Flow::mark(&conn, config.tos)?;
        conn.socket
            .set_read_timeout(Some(TICK))
            .map_err(|source| Error::Socket {
                what: "set a receive timeout",
                addr: conn.peer,
                source,
            })?;
        conns.push(conn);
    }
    let peer = conns[0].peer;
    // The codec once the target is resolved: a Destination Node Address
    // TLV (`--stamp-tlv dna`) is 4 or 16 bytes by its family, and without
    // `--size` the packet's length follows.
    let sized = config.for_peer(peer.ip());
    let config = sized.as_ref().unwrap_or(config);
    if let Some(stamp) = &config.stamp {
        stamp
            .check_size_for(config.tos, peer.ip())
            .map_err(|problem| Error::Size { problem })?;
    }
    let codec = match &config.stamp {
        Some(stamp) => stamp.codec(config.tos, origin_unix_ns)?,
        None => Codec::Echo,
    };
    on_event(Event::Start { peer });
    let interval_lines = !matches!(config.mode, MeasureMode::Ping { .. });
    let mut flow_list: Vec<Flow> = conns
        .into_iter()
        .map(|c| {
            let codec = codec.clone();
            Flow::new(
                c,
                config,
                codec,
                clock,
                in_flight_max,
                interval_lines,
                offloads,
            )
        })
        .collect();
    if let Some(sink) = &probes {
        for (id, flow) in (0u32..).zip(&mut flow_list) {
            flow.keep_records(id, sink.clone(), origin_unix_ns);
        }
    }
    drop(probes);
    let start_ns = clock.now_ns();
    let end_ns = start_ns + u64::try_from(config.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut send_end_ns = end_ns;
    match config.mode {
        MeasureMode::Ping { count, interval } => {
            ping(
                &mut flow_list[0],
                count,
                interval,
                stop,
                on_event,
                on_counts,
            )?;
            send_end_ns = clock.now_ns();
        }
        mode => {
            let shared: Vec<Arc<Mutex<Shared>>> =
                flow_list.iter().filter_map(|f| f.shared.clone()).collect();
            let results = thread::scope(|scope| {
                let handles: Vec<_> = flow_list
                    .iter_mut()
                    .enumerate()
                    .map(|(index, flow)| {
                        scope.spawn(move || {
                            run_flow(flow, mode, (index, flows), (start_ns, end_ns), stop)
                        })
                    })
                    .collect();
                report_intervals(
                    &shared,
                    &clock,
                    start_ns,
                    end_ns,
                    stop,
                    &handles,
                    on_interval,
                );
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect::<Vec<_>>()
            });
            for r in results {
                r?;
            }
            if stop.is_requested() {
                send_end_ns = send_end_ns.min(clock.now_ns());
            }
        }
    }
    let inodes: Vec<u64> = flow_list
        .iter()
        .filter_map(|f| udp_table::socket_inode(&f.conn.socket))
        .collect();
    let client_drops = udp_table::drops_of(&inodes);
    for flow in &mut flow_list {
        flow.flush_records(true);
    }
    let span = summary::Span {
        start_ns,
        send_end_ns,
        end_ns: clock.now_ns(),
    };
    Ok(summary::summarize(
        config,
        &flow_list,
        peer.to_string(),
        target.host.clone(),
        span,
        client_drops,
        latency_out,
    ))
}

/// The main thread of a flood or rate run: one interval report per second
/// while the flows run, taken from their shared books.
fn report_intervals<T>(
    shared: &[Arc<Mutex<Shared>>],
    clock: &Clock,
    start_ns: u64,
    end_ns: u64,
    stop: &Stop,
    handles: &[thread::ScopedJoinHandle<'_, T>],
    on_interval: &mut dyn FnMut(&IntervalReport),
) {
    const SECOND: u64 = 1_000_000_000;
    let mut from_ns = start_ns;
    let mut merged = Latency::new();
    loop {
        let boundary = (from_ns + SECOND).min(end_ns);
        while clock.now_ns() < boundary
            && !stop.is_requested()
            && !handles.iter().all(|h| h.is_finished())
        {
            thread::sleep(until(clock, boundary).min(Duration::from_millis(50)));
        }
        let to_ns = clock.now_ns().min(boundary.max(from_ns));
        let mut counts = Counts::default();
        merged.reset();
        for s in shared {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            counts.merge(&s.counts);
            merged.merge(&s.latency);
            s.counts = Counts::default();
            s.latency.reset();
        }
        // Flows that ended on their own before the run's end failed: their
        // error is the report, not a stub interval.
        let finished = handles.iter().all(|h| h.is_finished());
        let failed_early = finished && to_ns < end_ns && !stop.is_requested();
        if to_ns > from_ns && !failed_early {
            on_interval(&IntervalReport {
                from_s: (from_ns - start_ns) as f64 / 1e9,
                to_s: (to_ns - start_ns) as f64 / 1e9,
                counts,
                latency: merged.clone(),
            });
        }
        from_ns = to_ns;
        if to_ns >= end_ns || stop.is_requested() || finished {
            return;
        }
    }
}
