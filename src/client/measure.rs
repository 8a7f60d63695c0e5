//! The measured modes: ping (one probe per interval), flood (closed loop, a
//! window of probes in flight per flow) and rate (open loop, paced sends).
//!
//! Each flow is one connected socket with its own sequence space. A `Flow`
//! does the socket work: it sends probes in batches (flood and rate: several
//! probes per UDP GSO send where the kernel has it, else `sendmmsg`), receives
//! replies in batches (`recvmmsg`; flood and rate with UDP GRO, each buffer
//! split into its datagrams), times them with the kernel's receive time stamp
//! where there is one (`offload.rs`) and hands each reply to its `Books`, the
//! pure bookkeeping (`measure/books.rs`) that checks every byte and tells
//! answers, losses, duplicates, late replies and reordering apart. A probe
//! with no reply within `--timeout` is lost and frees its window slot.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::{Connection, Target};
use crate::error::{Error, Result};
use crate::net::udp_table;
use crate::probe::{self, Check, Clock};
use crate::shutdown::{self, Stop};
use crate::stats::RttClock;
use crate::stats::{Counts, Latency, RunMode, RunSummary};
use crate::sys::{GroBatch, SendBatch, wait_readable};

mod books;
mod intervals;
mod offload;

use books::Books;
use intervals::report_intervals;
use offload::{GsoSender, GsoSent, Offloads};

/// Probes per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;

/// Receive buffers (64 KiB each, touched as data arrives) per `recvmmsg` of a
/// flood or rate flow; with GRO each may hold many replies.
const GRO_SLOTS: usize = 16;

/// Receive buffers of a ping flow (one reply at a time, plus strays).
const PING_SLOTS: usize = 2;

/// How long a blocking receive in flood mode waits before the loop looks at its
/// clocks again: short enough to expire lost probes and end on time, long
/// enough not to spin.
const TICK: Duration = Duration::from_millis(1);

/// How the probes are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// One probe per `interval` (0: the next as soon as the reply or its
    /// timeout comes), `count` probes in all (`None`: until stopped).
    Ping {
        count: Option<u64>,
        interval: Duration,
    },
    /// Closed loop: keep `window` probes in flight on each flow.
    Flood { window: usize },
    /// Open loop: `pps` probes per second over all flows.
    Rate { pps: f64 },
}

impl Mode {
    /// Which mode this is, as a run summary names it.
    pub fn kind(&self) -> RunMode {
        match self {
            Mode::Ping { .. } => RunMode::Ping,
            Mode::Flood { .. } => RunMode::Flood,
            Mode::Rate { .. } => RunMode::Rate,
        }
    }
}

/// A measured run, free of command-line types.
#[derive(Debug, Clone)]
pub struct MeasureConfig {
    /// How probes are sent.
    pub mode: Mode,
    /// Probe size in bytes, 16 ..= 65507.
    pub size: usize,
    /// How long to wait for each reply before counting its probe lost.
    pub timeout: Duration,
    /// Length of a flood or rate run.
    pub duration: Duration,
    /// Sockets (source ports), one thread each, in flood and rate mode.
    pub flows: usize,
}

/// Something a run prints a line for (ping mode: every reply and timeout).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// The sockets are ready and the first probe is about to leave.
    Start { peer: SocketAddr },
    /// A reply to probe `seq`.
    Reply {
        seq: u64,
        bytes: usize,
        from: SocketAddr,
        rtt_ns: u64,
        check: Check,
        duplicate: bool,
        late: bool,
    },
    /// Probe `seq` got no reply within the timeout.
    Timeout { seq: u64 },
    /// The kernel reported ICMP port unreachable.
    Refused,
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

/// The part of a flow's books the interval reporter reads, behind a lock taken
/// once per batch of replies.
#[derive(Debug, Default)]
struct Shared {
    counts: Counts,
    latency: Latency,
}

/// One socket's probes: the socket work around its [`Books`].
struct Flow {
    conn: Connection,
    clock: Clock,
    books: Books,
    /// Per-interval copy for flood/rate interval lines.
    shared: Option<Arc<Mutex<Shared>>>,
    batch_rtts: Vec<u64>,
    /// The books' counts as last handed to `shared`: the next hand-over is the difference.
    flushed: Counts,
    out: SendBatch,
    /// Probes per UDP GSO send (flood and rate, until the kernel refuses).
    gso: Option<GsoSender>,
    inbox: GroBatch,
    /// Receive buffers that carried the kernel's receive time, and those that did not.
    kernel_timed: u64,
    user_timed: u64,
}

impl Flow {
    fn new(
        conn: Connection,
        config: &MeasureConfig,
        clock: Clock,
        in_flight_max: usize,
        shared: bool,
        offloads: Offloads,
    ) -> Flow {
        let bulk = !matches!(config.mode, Mode::Ping { .. });
        let gso = offload::set_up(&conn, config.size, bulk, offloads);
        Flow {
            clock,
            books: Books::new(config.size, config.timeout, in_flight_max),
            shared: shared.then(|| Arc::new(Mutex::new(Shared::default()))),
            batch_rtts: Vec::with_capacity(BATCH),
            flushed: Counts::default(),
            out: SendBatch::new(BATCH, config.size),
            gso,
            inbox: GroBatch::new(if bulk { GRO_SLOTS } else { PING_SLOTS }),
            kernel_timed: 0,
            user_timed: 0,
            conn,
        }
    }

    /// Sends up to `n` probes now (at most one batch); returns how many left.
    fn send(&mut self, n: usize) -> usize {
        let n = n.min(BATCH);
        if n == 0 {
            return 0;
        }
        let now = self.clock.now_ns();
        let (first, stamp) = (self.books.next_seq(), self.books.stamp(now));
        let mut sent = 0;
        if let Some(gso) = &mut self.gso {
            match gso.send(&self.conn.socket, first, stamp, n) {
                GsoSent::All => sent = n,
                GsoSent::Refused { sent: k } => {
                    sent = k;
                    self.gso = None;
                }
                GsoSent::Failed { sent: k, error } => {
                    self.books.sent(k, now);
                    if error.kind() == io::ErrorKind::ConnectionRefused {
                        self.refused();
                    } else {
                        self.books.send_error();
                        log::debug!("send to {} failed: {error}", self.conn.peer);
                    }
                    return k;
                }
            }
        }
        for i in sent..n {
            probe::fill(self.out.slot_mut(i), first + i as u64, stamp + i as u64);
        }
        while sent < n {
            match self.out.send(&self.conn.socket, sent, n) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.refused();
                    break;
                }
                Err(e) => {
                    self.books.send_error();
                    log::debug!("send to {} failed: {e}", self.conn.peer);
                    break;
                }
            }
        }
        self.books.sent(sent, now);
        sent
    }

    fn refused(&mut self) {
        self.books.refused();
        log::debug!(
            "{}: connection refused (ICMP port unreachable)",
            self.conn.peer
        );
    }

    /// Receives what is queued; if nothing is, waits up to `wait` (`None`:
    /// one blocking receive bounded by the socket's 1 ms read timeout).
    /// Returns how many datagrams it took.
    fn receive(
        &mut self,
        wait: Option<Duration>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<usize> {
        let first = match wait {
            None => self.inbox.recv(&self.conn.socket),
            Some(_) => self.inbox.recv_queued(&self.conn.socket),
        };
        let result = match (first, wait) {
            (Err(e), Some(d)) if e.kind() == io::ErrorKind::WouldBlock && !d.is_zero() => {
                match wait_readable(&self.conn.socket, d) {
                    Ok(true) => self.inbox.recv_queued(&self.conn.socket),
                    Ok(false) => return Ok(0),
                    Err(source) => {
                        return Err(Error::Recv {
                            addr: self.conn.peer,
                            source,
                        });
                    }
                }
            }
            (other, _) => other,
        };
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                return match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => Ok(0),
                    io::ErrorKind::ConnectionRefused => {
                        self.refused();
                        on_event(Event::Refused);
                        Ok(0)
                    }
                    _ => Err(Error::Recv {
                        addr: self.conn.peer,
                        source: e,
                    }),
                };
            }
        };
        let (now, realtime_now) = offload::clock_pair(&self.clock);
        let mut datagrams = 0;
        for i in 0..n {
            let buffer = self.inbox.buffer(i);
            if buffer.truncated {
                log::debug!(
                    "{}: a receive was cut short (MSG_TRUNC/MSG_CTRUNC)",
                    self.conn.peer
                );
            }
            // The kernel's receive time, as the books' clock would have read it.
            let at = match self.inbox.rx_time_ns(i) {
                Some(kernel) => {
                    self.kernel_timed += 1;
                    offload::kernel_at(now, realtime_now, kernel)
                }
                None => {
                    self.user_timed += 1;
                    now
                }
            };
            let from = buffer.source.unwrap_or(self.conn.peer);
            for k in 0..buffer.datagrams() {
                let data = buffer.datagram(k);
                datagrams += 1;
                let Some(answer) = self.books.reply(data, at) else {
                    continue;
                };
                if answer.measured() && self.shared.is_some() {
                    self.batch_rtts.push(answer.rtt_ns);
                }
                on_event(Event::Reply {
                    seq: answer.seq,
                    bytes: data.len(),
                    from,
                    rtt_ns: answer.rtt_ns,
                    check: answer.check,
                    duplicate: answer.duplicate,
                    late: answer.late,
                });
            }
        }
        self.flush_shared();
        Ok(datagrams)
    }

    /// Counts probes whose timeout passed as lost and frees their slots.
    fn expire(&mut self, now: u64, on_event: &mut dyn FnMut(Event)) {
        self.books
            .expire(now, &mut |seq| on_event(Event::Timeout { seq }));
        self.flush_shared();
    }

    /// Hands the batch's figures to the interval reporter (one lock per batch).
    fn flush_shared(&mut self) {
        let Some(shared) = &self.shared else { return };
        let counts = *self.books.counts();
        let delta = counts.since(&self.flushed);
        if delta == Counts::default() && self.batch_rtts.is_empty() {
            return;
        }
        let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
        s.counts.merge(&delta);
        for &rtt in &self.batch_rtts {
            s.latency.record(rtt);
        }
        drop(s);
        self.flushed = counts;
        self.batch_rtts.clear();
    }
}

fn until(clock: &Clock, deadline_ns: u64) -> Duration {
    Duration::from_nanos(deadline_ns.saturating_sub(clock.now_ns()))
}

/// Runs ping mode on one flow; `on_event` sees every reply and timeout.
fn ping(
    flow: &mut Flow,
    count: Option<u64>,
    interval: Duration,
    stop: &Stop,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let interval_ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    let mut next_send = flow.clock.now_ns();
    loop {
        if stop.is_requested() {
            return Ok(());
        }
        let all_sent = count.is_some_and(|c| flow.books.counts().sent >= c);
        let now = flow.clock.now_ns();
        // Like ping, the run lasts count × interval: after the last probe is
        // settled, duplicates and strays still have until the next tick.
        if all_sent && flow.books.outstanding() == 0 && now >= next_send {
            return Ok(());
        }
        let due = if interval_ns == 0 {
            flow.books.outstanding() == 0
        } else {
            now >= next_send
        };
        if !all_sent && due {
            flow.send(1);
            next_send = next_send.saturating_add(interval_ns).max(now);
        }
        flow.expire(flow.clock.now_ns(), on_event);
        let mut wait_until = flow.books.next_deadline().unwrap_or(u64::MAX);
        if interval_ns > 0 {
            wait_until = wait_until.min(next_send);
        }
        let wait = until(&flow.clock, wait_until).min(shutdown::WAIT_STEP);
        flow.receive(Some(wait), on_event)?;
    }
}

/// Runs a flood or rate flow until `end_ns`, then waits up to the timeout for
/// the replies still in flight (unless stopped).
fn run_flow(flow: &mut Flow, mode: Mode, flows: usize, end_ns: u64, stop: &Stop) -> Result<()> {
    let mut ignore = |_: Event| {};
    let start = flow.clock.now_ns();
    let gap_ns = match mode {
        Mode::Rate { pps } => (1e9 * flows as f64 / pps).max(1.0),
        _ => 0.0,
    };
    let mut scheduled: u64 = 0;
    while !stop.is_requested() {
        let now = flow.clock.now_ns();
        if now >= end_ns {
            break;
        }
        match mode {
            Mode::Flood { window } => {
                let room = (window as u64).saturating_sub(flow.books.outstanding()) as usize;
                flow.send(room);
                flow.receive(None, &mut ignore)?;
            }
            Mode::Rate { .. } => {
                // Probes due by now: only what the schedule needs, never more.
                let due_total = ((now - start) as f64 / gap_ns) as u64 + 1;
                let due = due_total.saturating_sub(scheduled) as usize;
                if due > 0 {
                    // A probe the kernel refuses is skipped, not retried: the
                    // schedule stays the schedule.
                    let n = due.min(BATCH);
                    flow.send(n);
                    scheduled += n as u64;
                }
                let next_ns = start + (scheduled as f64 * gap_ns) as u64;
                let wait_until = next_ns
                    .min(flow.books.next_deadline().unwrap_or(u64::MAX))
                    .min(end_ns);
                flow.receive(
                    Some(until(&flow.clock, wait_until).min(TICK * 10)),
                    &mut ignore,
                )?;
            }
            Mode::Ping { .. } => unreachable!("ping runs in `ping`"),
        }
        flow.expire(flow.clock.now_ns(), &mut ignore);
        let c = flow.books.counts();
        if c.refused > 0 && c.received == 0 && c.sent > 0 {
            return Err(Error::Refused {
                addr: flow.conn.peer,
            });
        }
    }
    // Drain: the probes in flight get their full timeout.
    while !stop.is_requested() && flow.books.outstanding() > 0 {
        // Outstanding probes are in the FIFO; should the books ever disagree,
        // end rather than poll a socket with a zero timeout forever.
        let Some(deadline) = flow.books.next_deadline() else {
            debug_assert!(false, "outstanding probes but no deadline");
            break;
        };
        flow.receive(
            Some(until(&flow.clock, deadline).min(shutdown::WAIT_STEP)),
            &mut ignore,
        )?;
        flow.expire(flow.clock.now_ns(), &mut ignore);
    }
    Ok(())
}

/// Runs a measured mode against `target` and returns the summary.
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
    let flows = match config.mode {
        Mode::Ping { .. } => 1,
        _ => config.flows.max(1),
    };
    let in_flight_max = match config.mode {
        Mode::Ping { .. } => 1024,
        Mode::Flood { window } => window,
        Mode::Rate { pps } => {
            (pps / flows as f64 * config.timeout.as_secs_f64() * 1.5) as usize + BATCH
        }
    };
    let clock = Clock::new();
    let offloads = Offloads::from_env();
    let mut conns = Vec::with_capacity(flows);
    for _ in 0..flows {
        let conn = super::connect(target)?;
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
    on_event(Event::Start { peer });
    let interval_lines = !matches!(config.mode, Mode::Ping { .. });
    let mut flow_list: Vec<Flow> = conns
        .into_iter()
        .map(|c| Flow::new(c, config, clock, in_flight_max, interval_lines, offloads))
        .collect();
    let start_ns = clock.now_ns();
    let end_ns = start_ns + u64::try_from(config.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut send_end_ns = end_ns;
    match config.mode {
        Mode::Ping { count, interval } => {
            ping(&mut flow_list[0], count, interval, stop, on_event)?;
            send_end_ns = clock.now_ns();
        }
        mode => {
            let shared: Vec<Arc<Mutex<Shared>>> =
                flow_list.iter().filter_map(|f| f.shared.clone()).collect();
            let results = thread::scope(|scope| {
                let handles: Vec<_> = flow_list
                    .iter_mut()
                    .map(|flow| scope.spawn(move || run_flow(flow, mode, flows, end_ns, stop)))
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
    let mut counts = Counts::default();
    let mut latency = Latency::new();
    let mut in_flight = 0;
    let mut longest_silence = Duration::ZERO;
    let (mut kernel_timed, mut user_timed) = (0, 0);
    let end = clock.now_ns();
    for flow in &flow_list {
        kernel_timed += flow.kernel_timed;
        user_timed += flow.user_timed;
        counts.merge(flow.books.counts());
        latency.merge(flow.books.latency());
        in_flight += flow.books.outstanding();
        longest_silence = longest_silence.max(flow.books.longest_silence(end));
    }
    let duration_s = (send_end_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    Ok(RunSummary {
        target: peer.to_string(),
        mode: config.mode.kind(),
        size: config.size,
        window: match config.mode {
            Mode::Flood { window } => Some(window),
            _ => None,
        },
        rate_pps: match config.mode {
            Mode::Rate { pps } => Some(pps),
            _ => None,
        },
        flows,
        in_flight,
        duration_s,
        send_rate_pps: counts.sent as f64 / duration_s,
        rtt_per_s: counts.received as f64 / duration_s,
        mbit_per_s: counts.bytes_received as f64 * 8.0 / duration_s / 1e6,
        loss_percent: counts.loss_percent(in_flight),
        rtt_us: latency.summary(),
        counts,
        client_drops,
        timeout_ms: config.timeout.as_secs_f64() * 1e3,
        longest_silence_ms: longest_silence.as_secs_f64() * 1e3,
        rtt_clock: RttClock::of(kernel_timed, user_timed),
    })
}
