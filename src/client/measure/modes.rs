//! How each measured mode drives a flow: ping's one probe per interval,
//! flood's window kept full, rate's schedule anchored on the run's start.

use std::time::Duration;

use super::flow::Flow;
use super::{BATCH, Event, MeasureMode, TICK};
use crate::client::probe::Clock;
use crate::client::stats::Counts;
use crate::error::{Error, Result};
use crate::shutdown::{self, Stop};

/// How long a rate flow's probe may wait for the ones due after it, so
/// they leave in one send (see `run_flow`): 16 µs.
const COALESCE_NS: f64 = 16_000.0;

/// How long from now until `deadline_ns` on `clock` (0 when past).
pub(super) fn until(clock: &Clock, deadline_ns: u64) -> Duration {
    Duration::from_nanos(deadline_ns.saturating_sub(clock.now_ns()))
}

/// Runs ping mode on one flow; `on_event` sees every reply and timeout.
pub(super) fn ping(
    flow: &mut Flow,
    count: Option<u64>,
    interval: Duration,
    stop: &Stop,
    on_event: &mut dyn FnMut(Event),
    mut on_counts: Option<&mut dyn FnMut(&Counts)>,
) -> Result<()> {
    let mut told = Counts::default();
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
        if let Some(tell) = on_counts.as_mut().filter(|_| *flow.books.counts() != told) {
            told = *flow.books.counts();
            tell(&told);
        }
    }
}

/// Runs a flood or rate flow until `end_ns`, then waits up to the timeout for
/// the replies still in flight (unless stopped).
///
/// A rate flow's schedule is anchored on the run's clock, not on when its
/// thread first ran: flow `index` of `flows` sends its k-th probe at
/// `start_ns + (k + index / flows) × gap`, so the flows interleave evenly and
/// a thread the scheduler started late catches up instead of shortening the
/// run (a 0.1 s run on a busy host once sent nothing).
pub(super) fn run_flow(
    flow: &mut Flow,
    mode: MeasureMode,
    (index, flows): (usize, usize),
    (start_ns, end_ns): (u64, u64),
    stop: &Stop,
) -> Result<()> {
    let mut ignore = |_: Event| {};
    let gap_ns = match mode {
        MeasureMode::Rate { pps } => (1e9 * flows as f64 / pps).max(1.0),
        _ => 0.0,
    };
    let start = start_ns + (gap_ns * index as f64 / flows as f64) as u64;
    // Probes a rate flow sends at once: as many as fall due in
    // `COALESCE_NS` (1 below 62,500/s a flow). Each send is one datagram
    // train (GSO) that the server's socket queues as one buffer, so fewer,
    // fuller sends let its default receive buffer hold several times the
    // probes: at 1,000,000/s, sends of 1–3 probes overflowed it (0.4% lost
    // to `udp-echo-server`'s kernel drops), sends of 16 did not.
    let coalesce = ((COALESCE_NS / gap_ns.max(1.0)) as usize).clamp(1, BATCH);
    let mut scheduled: u64 = 0;
    while !stop.is_requested() {
        let now = flow.clock.now_ns();
        if now >= end_ns {
            break;
        }
        match mode {
            MeasureMode::Flood { window } => {
                // The whole window back in flight before the next wait, a
                // batch per send (as the C load generator refills): sending
                // one batch per receive left a deep window half empty.
                let mut room = (window as u64).saturating_sub(flow.books.outstanding()) as usize;
                while room > 0 {
                    let sent = flow.send(room);
                    if sent < room.min(BATCH) {
                        break;
                    }
                    room -= sent;
                }
                flow.receive(None, &mut ignore)?;
            }
            MeasureMode::Rate { .. } => {
                // Probes due by now: only what the schedule needs, never more.
                let due_total = match now.checked_sub(start) {
                    Some(elapsed) => (elapsed as f64 / gap_ns) as u64 + 1,
                    None => 0,
                };
                let due = due_total.saturating_sub(scheduled) as usize;
                // When the batch is full, or the run ends before it fills.
                let full_ns = start + ((scheduled + coalesce as u64 - 1) as f64 * gap_ns) as u64;
                if due >= coalesce || (due > 0 && full_ns >= end_ns) {
                    // A probe the kernel refuses is skipped, not retried: the
                    // schedule stays the schedule.
                    let n = due.min(BATCH);
                    flow.send(n);
                    scheduled += n as u64;
                }
                let next_ns = start + ((scheduled + coalesce as u64 - 1) as f64 * gap_ns) as u64;
                let wait_until = next_ns
                    .min(flow.books.next_deadline().unwrap_or(u64::MAX))
                    .min(end_ns);
                flow.receive(
                    Some(until(&flow.clock, wait_until).min(TICK * 10)),
                    &mut ignore,
                )?;
            }
            MeasureMode::Ping { .. } => unreachable!("ping runs in `ping`"),
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
