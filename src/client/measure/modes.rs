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
/// they leave in one send (see `Schedule`): 16 µs.
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
    let mut schedule = Schedule::new(start, gap_ns, end_ns);
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
                // A probe the kernel refuses is skipped, not retried: the
                // schedule stays the schedule.
                let n = schedule.take(now);
                if n > 0 {
                    flow.send(n);
                }
                let wait_until = schedule
                    .next_ns()
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

/// A rate flow's schedule: probe `k` (from 0) falls due at
/// `start + k × gap`. Probes leave only once due, never before, and in
/// sends of as many as fall due in `COALESCE_NS` (1 below 125,000/s a flow,
/// where the gap is over 8 µs). Each send is one datagram train (GSO) that
/// the server's socket queues as one buffer, so fewer, fuller sends let its
/// default receive buffer hold several times the probes: at 1,000,000/s,
/// sends of 1–3 probes overflowed it (0.4% lost to `udp-echo-server`'s
/// kernel drops), sends of 16 did not.
#[derive(Debug, Clone)]
struct Schedule {
    start: u64,
    gap_ns: f64,
    /// Probes per send while the run lasts long enough to fill one.
    coalesce: u64,
    end_ns: u64,
    /// Probes taken so far.
    scheduled: u64,
}

impl Schedule {
    fn new(start: u64, gap_ns: f64, end_ns: u64) -> Schedule {
        let coalesce = ((COALESCE_NS / gap_ns.max(1.0)) as u64).clamp(1, BATCH as u64);
        Schedule {
            start,
            gap_ns,
            coalesce,
            end_ns,
            scheduled: 0,
        }
    }

    /// When probe `k` falls due.
    fn due_at(&self, k: u64) -> u64 {
        self.start + (k as f64 * self.gap_ns) as u64
    }

    /// How many probes to send at `now` (at most a batch), taken from the
    /// schedule: those due, once a send's worth is, or the run ends before
    /// it would be.
    fn take(&mut self, now: u64) -> usize {
        let due_total = match now.checked_sub(self.start) {
            Some(elapsed) => (elapsed as f64 / self.gap_ns) as u64 + 1,
            None => 0,
        };
        let due = due_total.saturating_sub(self.scheduled);
        let full_ns = self.due_at(self.scheduled + self.coalesce - 1);
        if due >= self.coalesce || (due > 0 && full_ns >= self.end_ns) {
            let n = due.min(BATCH as u64);
            self.scheduled += n;
            n as usize
        } else {
            0
        }
    }

    /// When [`take`](Self::take) next has something to send: when a send's
    /// worth is due, or, when the run ends before that, when the next probe
    /// is (waiting for the end instead would leave the last few unsent:
    /// up to `coalesce − 1` a flow once no reply woke it).
    fn next_ns(&self) -> u64 {
        let full_ns = self.due_at(self.scheduled + self.coalesce - 1);
        if full_ns >= self.end_ns {
            self.due_at(self.scheduled)
        } else {
            full_ns
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `schedule` to its end on a clock that jumps to each wake-up
    /// (a silent server: no reply wakes the flow early), at least 1 ns a
    /// step; returns the probes sent and the largest send.
    fn run(mut schedule: Schedule) -> (u64, usize) {
        let (mut now, mut sent, mut largest) = (0, 0, 0);
        while now < schedule.end_ns {
            let n = schedule.take(now);
            sent += n as u64;
            largest = largest.max(n);
            now = schedule.next_ns().min(schedule.end_ns).max(now + 1);
        }
        (sent, largest)
    }

    /// Probes whose due time is before the end: what a run must send.
    fn due_before_end(s: &Schedule) -> u64 {
        (0..).take_while(|&k| s.due_at(k) < s.end_ns).count() as u64
    }

    #[test]
    fn every_probe_due_before_the_end_is_sent_whatever_the_coalescing() {
        // (gap ns, start, end): 1 M/s, just past the 125,000/s a flow where
        // two probes share a send, 4 M/s (a full batch), and no coalescing.
        for (gap, start, end) in [
            (1_000.0, 0, 1_000_000),
            (1_000.0, 500, 1_000_000),
            (7_999.0, 0, 1_000_000),
            (7_999.0, 3_000, 10_000_000),
            (250.0, 0, 100_000),
            (250.0, 0, 100_100),
            (20_000.0, 0, 1_000_000),
            (1_003.7, 17, 3_333_333),
        ] {
            let s = Schedule::new(start, gap, end);
            let (sent, largest) = run(s.clone());
            assert_eq!(
                sent,
                due_before_end(&s),
                "gap {gap} start {start} end {end}"
            );
            assert!(
                largest as u64 <= s.coalesce.max(1),
                "gap {gap}: a send of {largest}"
            );
        }
    }

    #[test]
    fn a_probe_never_leaves_before_it_is_due() {
        let mut s = Schedule::new(0, 1_000.0, 1_000_000);
        for now in (0..1_000_000).step_by(333) {
            s.take(now);
            assert!(
                s.scheduled == 0 || s.due_at(s.scheduled - 1) <= now,
                "at {now}"
            );
        }
    }
}
