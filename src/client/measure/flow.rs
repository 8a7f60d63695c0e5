//! One flow of a measured run: a connected socket and the socket work
//! around its [`Books`]: probes sent in batches (flood and rate: several
//! probes per UDP GSO send where the kernel has it, else `sendmmsg`), replies
//! received in batches (`recvmmsg`; flood and rate with UDP GRO, each buffer
//! split into its datagrams) and timed with the kernel's receive time stamp
//! where there is one (`offload.rs`), in ping and rate mode the kernel's
//! transmit stamps (read from the error queue in the same loop, before the
//! replies, so a round trip starts at its probe's stamp), expiry, and the
//! hand-over of figures to the interval reporter and of per-probe records to
//! the `--probes` writer.

use std::io;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::books::Books;
use super::codec::{Codec, book_reply};
use super::offload::{self, GsoSender, GsoSent, Offloads, TxKeys};
use super::{BATCH, Event, MeasureConfig, MeasureMode};
use crate::client::Connection;
use crate::client::probe::Clock;
use crate::client::probes::ProbeBatch;
use crate::client::stamp::StampBooks;
use crate::client::stats::{Counts, Latency, TosTally};
use crate::error::{Error, Result};
use crate::sys::{GroBatch, SendBatch, wait_readable};

/// Records a flow hands over at once in flood and rate mode (ping: each step).
const RECORDS_PER_BATCH: usize = 512;

/// Receive buffers (64 KiB each, touched as data arrives) per `recvmmsg` of a
/// flood or rate flow; with GRO each may hold many replies.
const GRO_SLOTS: usize = 16;

/// Receive buffers of a ping flow (one reply at a time, plus strays).
const PING_SLOTS: usize = 2;

/// The part of a flow's books the interval reporter reads, behind a lock taken
/// once per batch of replies.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) counts: Counts,
    pub(super) latency: Latency,
}

/// One socket's probes: the socket work around its [`Books`].
pub(super) struct Flow {
    pub(super) conn: Connection,
    pub(super) clock: Clock,
    pub(super) books: Books,
    /// Per-interval copy for flood/rate interval lines.
    pub(super) shared: Option<Arc<Mutex<Shared>>>,
    pub(super) batch_rtts: Vec<u64>,
    /// The books' counts as last handed to `shared`: the next hand-over is the difference.
    pub(super) flushed: Counts,
    pub(super) out: SendBatch,
    /// Probes per UDP GSO send (flood and rate, until the kernel refuses).
    gso: Option<GsoSender>,
    pub(super) inbox: GroBatch,
    /// UDP GRO is on: the kernel may queue (and drop) several replies as
    /// one receive buffer, so its drop counter counts buffers.
    pub(super) gro: bool,
    /// Receive buffers that carried the kernel's receive time, and those that did not.
    pub(super) kernel_timed: u64,
    pub(super) user_timed: u64,
    /// `--probes`: the writer's channel, the clock's origin and the last hand-over.
    pub(super) probes: Option<(SyncSender<ProbeBatch>, u64, u64)>,
    /// Ping mode hands every record over at once.
    pub(super) ping: bool,
    /// The TOS of every reply the books matched, where the kernel reports it.
    pub(super) tos: TosTally,
    /// A STAMP session's own figures, beside the books.
    pub(super) stamp: Option<StampBooks>,
    /// Ping and rate: which probes each send carried, for the kernel's
    /// transmit stamps (`None`: not asked for, or the kernel has none).
    tx: Option<TxKeys>,
    /// Probes a refusal settled while sending (where no event can be told),
    /// told by the next receive or expiry. Pushed only on refusals.
    refusals: Vec<Option<u64>>,
}

impl Flow {
    pub(super) fn new(
        conn: Connection,
        config: &MeasureConfig,
        codec: Codec,
        clock: Clock,
        in_flight_max: usize,
        shared: bool,
        offloads: Offloads,
    ) -> Flow {
        let bulk = !matches!(config.mode, MeasureMode::Ping { .. });
        let (gso, gro) = offload::set_up(&conn, config.size, bulk, offloads);
        // Flood's sends are batches sharing one time anyway: no stamps.
        let tx_wanted = offloads.tx_time && !matches!(config.mode, MeasureMode::Flood { .. });
        let tx = tx_wanted.then(|| TxKeys::enable(&conn)).flatten();
        let stamp = StampBooks::for_codec(&codec);
        let mut books = Books::with_codec(codec, config.size, config.timeout, in_flight_max);
        if tx.is_some() {
            books.ask_tx_stamps();
        }
        Flow {
            clock,
            stamp,
            books,
            tx,
            tos: TosTally::default(),
            shared: shared.then(|| Arc::new(Mutex::new(Shared::default()))),
            batch_rtts: Vec::with_capacity(BATCH),
            flushed: Counts::default(),
            out: SendBatch::new(BATCH, config.size),
            gso,
            inbox: GroBatch::new(if bulk { GRO_SLOTS } else { PING_SLOTS }),
            gro,
            kernel_timed: 0,
            user_timed: 0,
            conn,
            probes: None,
            ping: matches!(config.mode, MeasureMode::Ping { .. }),
            refusals: Vec::new(),
        }
    }

    /// Sends the books' per-probe records to `sink` from now on.
    pub(super) fn keep_records(
        &mut self,
        id: u32,
        sink: SyncSender<ProbeBatch>,
        origin_unix_ns: u64,
    ) {
        self.books.keep_records(id, RECORDS_PER_BATCH);
        self.probes = Some((sink, origin_unix_ns, 0));
    }

    /// Hands the books' records to the writer: a full buffer, or whatever
    /// waits when `force`, in ping mode, or 100 ms after the last hand-over.
    pub(super) fn flush_records(&mut self, force: bool) {
        let Some((sink, origin_unix_ns, last_ns)) = &mut self.probes else {
            return;
        };
        let (waiting, now) = (self.books.records_waiting(), self.clock.now_ns());
        let due = force || self.ping || now.saturating_sub(*last_ns) > 100_000_000;
        if waiting == 0 || (waiting < RECORDS_PER_BATCH && !due) {
            return;
        }
        let mut records = Vec::with_capacity(RECORDS_PER_BATCH);
        self.books.take_records(&mut records);
        *last_ns = now;
        let batch = ProbeBatch {
            origin_unix_ns: *origin_unix_ns,
            records,
        };
        if sink.send(batch).is_err() {
            log::warn!("the probe records' writer has stopped: no more records");
            self.probes = None;
        }
    }

    /// Sends up to `n` probes now (at most one batch); returns how many left.
    pub(super) fn send(&mut self, n: usize) -> usize {
        let n = n.min(BATCH);
        if n == 0 {
            return 0;
        }
        let now = self.clock.now_ns();
        let (first, stamp) = (self.books.next_seq(), self.books.stamp(now));
        let mut sent = 0;
        if let Some(gso) = &mut self.gso {
            let per_send = gso.per_send();
            let outcome = gso.send(&self.conn.socket, self.books.codec(), first, stamp, n);
            let k = match &outcome {
                GsoSent::All => n,
                GsoSent::Refused { sent } | GsoSent::Failed { sent, .. } => *sent,
            };
            if let Some(tx) = &mut self.tx {
                // One counter value per GSO send that left.
                for from in (0..k).step_by(per_send.max(1)) {
                    tx.sent(first + from as u64, (k - from).min(per_send) as u32);
                }
            }
            match outcome {
                GsoSent::All => sent = n,
                GsoSent::Refused { sent: k } => {
                    sent = k;
                    self.gso = None;
                }
                GsoSent::Failed { sent: k, error } => {
                    self.books.sent(k, now);
                    if error.kind() == io::ErrorKind::ConnectionRefused {
                        let seq = self.refused();
                        self.refusals.push(seq);
                    } else {
                        self.books.send_error();
                        log::debug!("send to {} failed: {error}", self.conn.peer);
                    }
                    return k;
                }
            }
        }
        let codec = self.books.codec();
        for i in sent..n {
            codec.fill(self.out.slot_mut(i), first + i as u64, stamp + i as u64);
        }
        while sent < n {
            match self.out.send(&self.conn.socket, sent, n) {
                Ok(k) => {
                    if let Some(tx) = &mut self.tx {
                        // One counter value per datagram sent plainly.
                        for i in sent..sent + k {
                            tx.sent(first + i as u64, 1);
                        }
                    }
                    sent += k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    // The report of an earlier probe; this one did not leave.
                    let seq = self.refused();
                    self.refusals.push(seq);
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

    /// Marks the flow's probes with `tos` (`--tos`), when given, and asks
    /// for every reply's TOS (best effort: without it, no DSCP figures).
    pub(super) fn mark(conn: &Connection, tos: Option<u8>) -> Result<()> {
        let sock = socket2::SockRef::from(&conn.socket);
        if let Some(tos) = tos {
            let set = match conn.peer {
                std::net::SocketAddr::V4(_) => sock.set_tos_v4(u32::from(tos)),
                std::net::SocketAddr::V6(_) => sock.set_tclass_v6(u32::from(tos)),
            };
            set.map_err(|source| Error::Socket {
                what: "set the TOS / traffic class (--tos)",
                addr: conn.peer,
                source,
            })?;
        }
        if let Err(e) = crate::sys::enable_recv_tos(&conn.socket) {
            log::debug!("cannot read the replies' TOS here: {e}");
        }
        Ok(())
    }

    /// Books an ICMP port unreachable; returns the probe it settled.
    pub(super) fn refused(&mut self) -> Option<u64> {
        log::debug!(
            "{}: connection refused (ICMP port unreachable)",
            self.conn.peer
        );
        self.books.refused()
    }

    /// Tells the refusals booked while sending.
    fn tell_refusals(&mut self, on_event: &mut dyn FnMut(Event)) {
        for seq in self.refusals.drain(..) {
            on_event(Event::Refused { seq });
        }
    }

    /// Receives what is queued; if nothing is, waits up to `wait` (`None`:
    /// one blocking receive bounded by the socket's 1 ms read timeout).
    /// Returns how many datagrams it took.
    pub(super) fn receive(
        &mut self,
        wait: Option<Duration>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<usize> {
        self.tell_refusals(on_event);
        let first = match wait {
            None => self.inbox.recv(&self.conn.socket),
            Some(_) => self.inbox.recv_queued(&self.conn.socket),
        };
        let result = match (first, wait) {
            (Err(e), Some(d)) if e.kind() == io::ErrorKind::WouldBlock && !d.is_zero() => {
                match wait_readable(&self.conn.socket, d) {
                    Ok(true) => match self.inbox.recv_queued(&self.conn.socket) {
                        // A queued transmit stamp wakes the wait too
                        // (POLLERR): taken here, in the same loop, so the
                        // next wait sleeps.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.take_tx_stamps(true);
                            return Ok(0);
                        }
                        other => other,
                    },
                    Ok(false) => return Ok(0),
                    Err(source) => {
                        return Err(Error::Recv {
                            addr: self.conn.peer,
                            source,
                        });
                    }
                }
            }
            (Err(e), Some(_)) if e.kind() == io::ErrorKind::WouldBlock => {
                // No wait (a rate flow behind its schedule): the stamps are
                // still taken, or they would fill the receive buffer they
                // are charged to while no reply comes to take them.
                self.take_tx_stamps(false);
                return Ok(0);
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
                        let seq = self.refused();
                        on_event(Event::Refused { seq });
                        Ok(0)
                    }
                    _ => Err(Error::Recv {
                        addr: self.conn.peer,
                        source: e,
                    }),
                };
            }
        };
        // The transmit stamps before the replies: a stamp is queued during
        // its send, so every reply in hand finds its probe's stamp booked.
        self.take_tx_stamps(false);
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
            // A GRO buffer's datagrams share it; without it, every datagram
            // of this receive call shares the one user-space time.
            let (at, shared) = match self.inbox.rx_time_ns(i) {
                Some(kernel) => {
                    self.kernel_timed += 1;
                    (
                        offload::kernel_at(now, realtime_now, kernel),
                        buffer.datagrams() > 1,
                    )
                }
                None => {
                    self.user_timed += 1;
                    (now, n > 1 || buffer.datagrams() > 1)
                }
            };
            let from = buffer.source.unwrap_or(self.conn.peer);
            // One TOS for the buffer: GRO merges only datagrams that share it.
            let tos = self.inbox.tos(i);
            for k in 0..buffer.datagrams() {
                let data = buffer.datagram(k);
                datagrams += 1;
                let stamp = self.stamp.as_mut();
                let Some(answer) = book_reply(&mut self.books, stamp, data, (at, shared), tos)
                else {
                    continue;
                };
                if let Some(tos) = tos {
                    self.tos.count(tos, 1);
                }
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
                    tos,
                });
            }
        }
        self.flush_shared();
        self.flush_records(false);
        Ok(datagrams)
    }

    /// Takes the kernel's transmit stamps waiting on the error queue (none
    /// without blocking) and books each for the probes of its send; unless
    /// `always`, only when a send still waits for its stamp (no syscall
    /// otherwise).
    fn take_tx_stamps(&mut self, always: bool) {
        let Some(tx) = &mut self.tx else { return };
        if !always && !tx.awaiting() {
            return;
        }
        let (books, clock) = (&mut self.books, &self.clock);
        let mut pair = None;
        let read = crate::sys::read_tx_timestamps(&self.conn.socket, &mut |key, kernel_ns| {
            let Some((first, count)) = tx.probes(key) else {
                return;
            };
            let (now, realtime_now) = *pair.get_or_insert_with(|| offload::clock_pair(clock));
            books.tx_stamp(
                first,
                count,
                offload::kernel_at(now, realtime_now, kernel_ns),
            );
        });
        match read {
            Ok(n) => tx.read(n),
            Err(e) => log::debug!("{}: reading transmit stamps failed: {e}", self.conn.peer),
        }
    }

    /// Counts probes whose timeout passed as lost and frees their slots.
    pub(super) fn expire(&mut self, now: u64, on_event: &mut dyn FnMut(Event)) {
        self.tell_refusals(on_event);
        self.books
            .expire(now, &mut |seq| on_event(Event::Timeout { seq }));
        self.flush_shared();
        self.flush_records(false);
    }

    /// Hands the batch's figures to the interval reporter (one lock per batch).
    pub(super) fn flush_shared(&mut self) {
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
