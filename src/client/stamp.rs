//! The STAMP session-sender (RFC 8762), ping mode: one test packet per
//! interval to a session-reflector (ours with `--stamp`, a router's, or any
//! other), the replies matched by the sender sequence number they copy.
//!
//! Besides what the echo ping reports (round trips, loss, duplicates, late
//! and reordered replies), each reply's time stamps give the one-way delay
//! each way — meaningful only when both clocks are synchronised, which the
//! reflector's S bit claims or not — and, when the reflector numbers its
//! replies per session (stateful, RFC 8762 §4.2), the loss of each direction.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Target;
use super::measure::Event;
use crate::error::{Error, Result};
use crate::probe::Check;
use crate::shutdown::{self, Stop};
use crate::stamp::{Key, Mode, ReflectedPacket, S_BIT, SenderPacket, StampOptions, TimeFormat};
use crate::stats::{Counts, Latency, RttSummary, RunMode, RunSummary};

/// One-way delays kept at most (a sample per reply); past this a run still
/// counts, but its one-way figures describe the first ones.
const OWD_SAMPLES_MAX: usize = 1 << 20;

/// A STAMP ping run, free of command-line types.
#[derive(Debug, Clone)]
pub struct StampPing {
    /// Test packets to send; `None` until stopped.
    pub count: Option<u64>,
    /// Time between test packets.
    pub interval: Duration,
    /// How long a reply may take before its packet counts as lost.
    pub timeout: Duration,
    /// Key file, time stamp format.
    pub options: StampOptions,
    /// The RFC 8972 session-sender identifier carried by every packet.
    pub ssid: u16,
    /// The TOS / traffic-class byte to send with (`--tos`); `None` keeps the default.
    pub tos: Option<u8>,
}

/// One-way delay figures in µs (negative when the clocks disagree by more
/// than the delay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OwdSummary {
    /// Replies the figures come from.
    pub samples: u64,
    /// Smallest, µs.
    pub min: f64,
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Largest, µs.
    pub max: f64,
}

impl OwdSummary {
    /// The figures of `samples_ns` (sorted here).
    pub fn of(samples_ns: &mut [i64]) -> OwdSummary {
        if samples_ns.is_empty() {
            return OwdSummary::default();
        }
        samples_ns.sort_unstable();
        let n = samples_ns.len();
        let at = |q: f64| samples_ns[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        OwdSummary {
            samples: n as u64,
            min: samples_ns[0] as f64 / 1e3,
            p50: at(0.50),
            p99: at(0.99),
            max: samples_ns[n - 1] as f64 / 1e3,
        }
    }
}

/// What a STAMP run found: the echo modes' summary plus STAMP's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct StampSummary {
    /// Everything an echo ping reports.
    #[serde(flatten)]
    pub run: RunSummary,
    /// `"unauthenticated"` or `"authenticated"`.
    pub stamp_mode: &'static str,
    /// Sender → reflector delay: reflector's receive time − our send time, µs.
    pub owd_forward_us: OwdSummary,
    /// Reflector → sender delay: our receive time − reflector's send time, µs.
    pub owd_reverse_us: OwdSummary,
    /// The reflector's S bit (in its last reply): it claims a clock
    /// synchronised to UTC. One-way delays need both clocks synchronised;
    /// this sender does not claim it (its S bit is clear).
    pub reflector_clock_synchronized: bool,
    /// Whether the reflector numbers replies per session (its sequence
    /// numbers differ from ours): only then can loss be split by direction.
    pub reflector_stateful: bool,
    /// Test packets that never reached the reflector (stateful reflectors only).
    pub lost_forward: Option<u64>,
    /// Replies the reflector sent that never came back (stateful reflectors only).
    pub lost_reverse: Option<u64>,
    /// Lost packets sent after the last answered one: their direction is unknown.
    pub lost_unattributed: Option<u64>,
    /// The DSCP the packets were sent with (0-63).
    pub dscp_sent: u8,
    /// Replies per DSCP they arrived with (`None` where the TOS cannot be read).
    pub dscp_seen: Option<BTreeMap<u8, u64>>,
    /// Replies per ECN codepoint they arrived with (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn_seen: Option<BTreeMap<u8, u64>>,
    /// Replies whose DSCP differs from the one sent: re-marked somewhere on
    /// the way out, at the reflector or on the way back.
    pub dscp_changed: Option<u64>,
}

/// Unix time in ns of a 64-bit STAMP time stamp (NTP: era 0, until 2036).
fn unix_ns(format: TimeFormat, t: u64) -> i128 {
    let (secs, low) = (i128::from(t >> 32), i128::from(t as u32));
    match format {
        TimeFormat::Ntp => (secs - 2_208_988_800) * 1_000_000_000 + ((low * 1_000_000_000) >> 32),
        TimeFormat::Ptp => secs * 1_000_000_000 + low,
    }
}

fn now_unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A packet sent and not yet settled.
struct Pending {
    sent: Instant,
}

/// The books of one run.
struct Books {
    pending: BTreeMap<u32, Pending>,
    counts: Counts,
    latency: Latency,
    forward: Vec<i64>,
    reverse: Vec<i64>,
    highest_answered: Option<u32>,
    /// (reflector seq, sender seq) of the reply with the highest reflector seq.
    furthest: Option<(u32, u32)>,
    stateful: bool,
    synchronized: bool,
    answered_up_to_furthest: u64,
    answered: std::collections::HashSet<u32>,
    dscp_seen: BTreeMap<u8, u64>,
    ecn_seen: BTreeMap<u8, u64>,
    /// Whether any reply's TOS could be read.
    tos_read: bool,
}

/// Runs STAMP ping against `target`; `on_event` sees every reply and timeout.
pub fn ping(
    target: &Target,
    config: &StampPing,
    stop: &Stop,
    on_event: &mut dyn FnMut(Event),
) -> Result<StampSummary> {
    let key: Option<Key> = config.options.key()?;
    let mode = if key.is_some() {
        Mode::Authenticated
    } else {
        Mode::Open
    };
    let format = config.options.format();
    let conn = super::connect(target)?;
    let peer = conn.peer;
    on_event(Event::Start { peer });
    let mut books = Books {
        pending: BTreeMap::new(),
        counts: Counts::default(),
        latency: Latency::new(),
        forward: Vec::new(),
        reverse: Vec::new(),
        highest_answered: None,
        furthest: None,
        stateful: false,
        synchronized: false,
        answered_up_to_furthest: 0,
        answered: std::collections::HashSet::new(),
        dscp_seen: BTreeMap::new(),
        ecn_seen: BTreeMap::new(),
        tos_read: false,
    };
    mark(&conn, config.tos)?;
    let mut packet = vec![0u8; mode.base_len()];
    let mut buf = vec![0u8; crate::net::RECV_BUFFER_LEN];
    let started = Instant::now();
    let mut next_send = started;
    let mut seq: u32 = 0;
    loop {
        if stop.is_requested() {
            break;
        }
        let all_sent = config.count.is_some_and(|c| books.counts.sent >= c);
        let now = Instant::now();
        if all_sent && books.pending.is_empty() && now >= next_send {
            break;
        }
        if !all_sent && now >= next_send {
            // The round trip starts where the time stamp is taken, so the
            // one-way delays add up to it (give or take the clocks).
            let sent = Instant::now();
            SenderPacket {
                seq,
                timestamp: format.encode(SystemTime::now()),
                error_estimate: format.error_estimate(),
                ssid: config.ssid,
            }
            .encode(mode, &mut packet);
            if let Some(key) = &key {
                key.sign(&mut packet);
            }
            match conn.send(&packet) {
                Ok(()) => {
                    books.counts.sent += 1;
                    books.pending.insert(seq, Pending { sent });
                }
                Err(Error::Refused { .. }) => {
                    books.counts.refused += 1;
                    on_event(Event::Refused);
                }
                Err(Error::Send { .. }) => books.counts.send_errors += 1,
                Err(e) => return Err(e),
            }
            seq = seq.wrapping_add(1);
            next_send = (next_send + config.interval).max(now);
        }
        // Expire what waited past the timeout.
        let now = Instant::now();
        let expired: Vec<u32> = books
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) >= config.timeout)
            .map(|(&s, _)| s)
            .collect();
        for s in expired {
            books.pending.remove(&s);
            books.counts.lost += 1;
            on_event(Event::Timeout { seq: u64::from(s) });
        }
        let deadline = books
            .pending
            .values()
            .map(|p| p.sent + config.timeout)
            .min()
            .unwrap_or(next_send);
        let wake = if all_sent {
            deadline
        } else {
            deadline.min(next_send)
        };
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(shutdown::WAIT_STEP)
            .max(Duration::from_millis(1));
        match recv_with_tos(&conn, &mut buf, wait) {
            Ok((n, tos)) => {
                if let Some(tos) = tos {
                    books.tos_read = true;
                    *books.dscp_seen.entry(tos >> 2).or_default() += 1;
                    *books.ecn_seen.entry(tos & 3).or_default() += 1;
                }
                books.reply(
                    &buf[..n],
                    mode,
                    key.as_ref(),
                    format,
                    config,
                    peer,
                    on_event,
                )
            }
            Err(Error::Timeout { .. }) => {}
            Err(Error::Refused { .. }) => {
                books.counts.refused += 1;
                on_event(Event::Refused);
            }
            Err(Error::Recv { source, .. }) if source.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(books.summary(peer, mode, config, started.elapsed()))
}

/// Marks the connection's packets with `tos` (when given) and asks for each
/// reply's TOS (best effort: without it, no DSCP figures).
fn mark(conn: &super::Connection, tos: Option<u8>) -> Result<()> {
    let sock = socket2::SockRef::from(&conn.socket);
    if let Some(tos) = tos {
        let set = match conn.peer {
            SocketAddr::V4(_) => sock.set_tos_v4(u32::from(tos)),
            SocketAddr::V6(_) => sock.set_tclass_v6(u32::from(tos)),
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

/// [`super::Connection::recv`] that also returns the reply's TOS byte.
fn recv_with_tos(
    conn: &super::Connection,
    buf: &mut [u8],
    wait: Duration,
) -> Result<(usize, Option<u8>)> {
    let fail = |source: io::Error| match source.kind() {
        io::ErrorKind::ConnectionRefused => Error::Refused { addr: conn.peer },
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
            addr: conn.peer,
            waited: wait,
        },
        _ => Error::Recv {
            addr: conn.peer,
            source,
        },
    };
    conn.socket.set_read_timeout(Some(wait)).map_err(fail)?;
    loop {
        match crate::sys::recv_from_tos(&conn.socket, buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e)),
            Ok((n, _, tos)) => return Ok((n, tos)),
        }
    }
}

impl Books {
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        data: &[u8],
        mode: Mode,
        key: Option<&Key>,
        format: TimeFormat,
        config: &StampPing,
        peer: SocketAddr,
        on_event: &mut dyn FnMut(Event),
    ) {
        let received_unix = now_unix_ns();
        let Some(reply) = ReflectedPacket::decode(mode, data) else {
            self.counts.foreign += 1;
            return;
        };
        if key.is_some_and(|k| !k.verify(data)) || reply.ssid != config.ssid {
            self.counts.corrupt += 1;
            on_event(Event::Reply {
                seq: u64::from(reply.sender_seq),
                bytes: data.len(),
                from: peer,
                rtt_ns: 0,
                check: Check::Corrupt {
                    seq: u64::from(reply.sender_seq),
                },
                duplicate: false,
                late: false,
            });
            return;
        }
        let sender_seq = reply.sender_seq;
        let duplicate = self.answered.contains(&sender_seq);
        let Some(pending) = self.pending.remove(&sender_seq) else {
            if duplicate {
                self.counts.duplicates += 1;
            } else {
                self.counts.late += 1;
            }
            on_event(Event::Reply {
                seq: u64::from(sender_seq),
                bytes: data.len(),
                from: peer,
                rtt_ns: 0,
                check: Check::Intact {
                    seq: u64::from(sender_seq),
                    sent_ns: 0,
                },
                duplicate,
                late: !duplicate,
            });
            return;
        };
        self.answered.insert(sender_seq);
        let rtt_ns = u64::try_from(pending.sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counts.received += 1;
        self.counts.bytes_received += data.len() as u64;
        if self.highest_answered.is_some_and(|h| sender_seq < h) {
            self.counts.reordered += 1;
        }
        self.highest_answered = Some(
            self.highest_answered
                .map_or(sender_seq, |h| h.max(sender_seq)),
        );
        self.latency.record(rtt_ns);
        let theirs = TimeFormat::of_error_estimate(reply.error_estimate);
        self.synchronized = reply.error_estimate & S_BIT != 0;
        if reply.seq != reply.sender_seq {
            self.stateful = true;
        }
        if self.furthest.is_none_or(|(r, _)| reply.seq >= r) {
            self.furthest = Some((reply.seq, sender_seq));
        }
        if self.forward.len() < OWD_SAMPLES_MAX {
            let sent = unix_ns(format, reply.sender_timestamp);
            let forward = unix_ns(theirs, reply.receive_timestamp) - sent;
            let reverse = received_unix - unix_ns(theirs, reply.timestamp);
            self.forward
                .push(forward.clamp(i64::MIN.into(), i64::MAX.into()) as i64);
            self.reverse
                .push(reverse.clamp(i64::MIN.into(), i64::MAX.into()) as i64);
        }
        on_event(Event::Reply {
            seq: u64::from(sender_seq),
            bytes: data.len(),
            from: peer,
            rtt_ns,
            check: Check::Intact {
                seq: u64::from(sender_seq),
                sent_ns: 0,
            },
            duplicate: false,
            late: false,
        });
    }

    fn summary(
        mut self,
        peer: SocketAddr,
        mode: Mode,
        config: &StampPing,
        elapsed: Duration,
    ) -> StampSummary {
        let in_flight = self.pending.len() as u64;
        let counts = self.counts;
        let duration_s = elapsed.as_secs_f64().max(1e-9);
        // Stateful: the reply with the highest reflector number r, to our
        // packet s, says the reflector got r + 1 of our first s + 1 packets.
        let split = match (self.stateful, self.furthest) {
            (true, Some((r, s))) => {
                self.answered_up_to_furthest =
                    self.answered.iter().filter(|&&a| a <= s).count() as u64;
                let reached = u64::from(r) + 1;
                let forward = (u64::from(s) + 1).saturating_sub(reached);
                let reverse = reached.saturating_sub(self.answered_up_to_furthest);
                let unattributed = counts.lost.saturating_sub(forward + reverse);
                (Some(forward), Some(reverse), Some(unattributed))
            }
            // No loss at all: none either way, whatever the reflector.
            _ if counts.lost == 0 && in_flight == 0 => (Some(0), Some(0), Some(0)),
            _ => (None, None, None),
        };
        let rtt_us: RttSummary = self.latency.summary();
        StampSummary {
            run: RunSummary {
                target: peer.to_string(),
                mode: RunMode::Ping,
                size: mode.base_len(),
                window: None,
                rate_pps: None,
                flows: 1,
                counts,
                in_flight,
                duration_s,
                send_rate_pps: counts.sent as f64 / duration_s,
                rtt_per_s: counts.received as f64 / duration_s,
                mbit_per_s: counts.bytes_received as f64 * 8.0 / duration_s / 1e6,
                loss_percent: counts.loss_percent(in_flight),
                rtt_us,
                client_drops: None,
                timeout_ms: config.timeout.as_secs_f64() * 1e3,
                longest_silence_ms: 0.0,
                rtt_clock: crate::stats::RttClock::User,
            },
            stamp_mode: match mode {
                Mode::Open => "unauthenticated",
                Mode::Authenticated => "authenticated",
            },
            owd_forward_us: OwdSummary::of(&mut self.forward),
            owd_reverse_us: OwdSummary::of(&mut self.reverse),
            reflector_clock_synchronized: self.synchronized,
            reflector_stateful: self.stateful,
            lost_forward: split.0,
            lost_reverse: split.1,
            lost_unattributed: split.2,
            dscp_sent: config.tos.unwrap_or(0) >> 2,
            dscp_changed: self.tos_read.then(|| {
                let sent = config.tos.unwrap_or(0) >> 2;
                self.dscp_seen
                    .iter()
                    .filter(|&(&d, _)| d != sent)
                    .map(|(_, n)| n)
                    .sum()
            }),
            dscp_seen: self.tos_read.then_some(self.dscp_seen),
            ecn_seen: self.tos_read.then_some(self.ecn_seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_figures_are_quantiles_of_the_samples() {
        let mut samples: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let s = OwdSummary::of(&mut samples);
        assert_eq!(
            (s.samples, s.min, s.p50, s.p99, s.max),
            (100, 1.0, 50.0, 99.0, 100.0)
        );
        assert_eq!(OwdSummary::of(&mut []), OwdSummary::default());
    }

    #[test]
    fn time_stamps_read_back_as_unix_time() {
        let t = UNIX_EPOCH + Duration::new(1_790_000_000, 250_000_000);
        let want = 1_790_000_000_250_000_000i128;
        for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
            assert!(
                (unix_ns(format, format.encode(t)) - want).abs() <= 1,
                "{format:?}"
            );
        }
    }
}
