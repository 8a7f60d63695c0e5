//! `--find-rate`: the highest open-loop rate whose loss stays within
//! `--max-loss`, found by exponential growth, then bisection.
//!
//! [`RateSearch`] is the pure search (unit-tested against simulated paths);
//! [`find_rate`] runs one short rate-mode step per proposal with a settle pause
//! between steps, so queues and rate limiters drain before the next one.

use std::time::Duration;

use serde::Serialize;

use super::Target;
use super::measure::{self, MeasureConfig, MeasureMode};
use crate::error::Result;
use crate::shutdown::Stop;

/// The first rate tried, probes/s.
pub const START_PPS: f64 = 1000.0;
/// The search stops when the bracket [good, bad] is this tight (5%).
pub const PRECISION: f64 = 1.05;
/// At most this many steps, whatever happens: the run stays bounded in time.
pub const MAX_STEPS: usize = 24;
/// Rates above this are not tried (beyond any one-host UDP path).
pub const MAX_PPS: f64 = 20_000_000.0;
/// Pause between steps so the previous step's queues drain.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A step whose achieved send rate is below this share of the requested rate
/// failed: the client itself could not send that fast.
pub const MIN_ACHIEVED: f64 = 0.95;

/// The search state: the best rate that passed and the lowest that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSearch {
    max_loss_percent: f64,
    good: Option<f64>,
    bad: Option<f64>,
    next: Option<f64>,
    steps: usize,
}

impl RateSearch {
    /// A search from `start` probes/s for loss ≤ `max_loss_percent`.
    pub fn new(start: f64, max_loss_percent: f64) -> RateSearch {
        RateSearch {
            max_loss_percent,
            good: None,
            bad: None,
            next: Some(start.clamp(1.0, MAX_PPS)),
            steps: 0,
        }
    }

    /// The rate to try next; `None` when the answer is known (or the budget spent).
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// Whether a step passed: loss within bounds and the rate really sent.
    pub fn passes(&self, requested: f64, achieved: f64, loss_percent: f64) -> bool {
        loss_percent <= self.max_loss_percent && achieved >= requested * MIN_ACHIEVED
    }

    /// Books the outcome of trying `rate` and picks the next one.
    pub fn record(&mut self, rate: f64, passed: bool) {
        self.steps += 1;
        if passed {
            self.good = Some(self.good.map_or(rate, |g| g.max(rate)));
        } else {
            self.bad = Some(self.bad.map_or(rate, |b| b.min(rate)));
        }
        self.next = match (self.good, self.bad) {
            _ if self.steps >= MAX_STEPS => None,
            (Some(g), None) if g >= MAX_PPS => None,
            (Some(g), None) => Some((g * 2.0).min(MAX_PPS)),
            (None, Some(b)) if b <= 1.0 => None,
            (None, Some(b)) => Some((b / 2.0).max(1.0)),
            (Some(g), Some(b)) if b / g <= PRECISION => None,
            // Geometric midpoint: rates span orders of magnitude.
            (Some(g), Some(b)) => Some((g * b).sqrt().round().max(g + 1.0)),
            (None, None) => unreachable!("a step was just recorded"),
        };
    }

    /// The highest rate that passed, if any.
    pub fn answer(&self) -> Option<f64> {
        self.good
    }

    /// The lowest rate that failed, if any.
    pub fn limit(&self) -> Option<f64> {
        self.bad
    }
}

/// One step of the search, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Requested rate, probes/s.
    pub rate_pps: f64,
    /// Achieved send rate, probes/s.
    pub send_rate_pps: f64,
    /// Probes sent.
    pub sent: u64,
    /// Probes lost.
    pub lost: u64,
    /// Loss, percent of settled probes.
    pub loss_percent: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// Datagrams this client's own receive buffers dropped (any kind).
    pub client_drops: Option<u64>,
    /// Of the lost, how many the evidence puts in this client's own
    /// receive buffers (`RunSummary::lost_in_client`).
    pub lost_in_client: Option<u64>,
    /// Whether the step passed.
    pub ok: bool,
}

/// The whole search, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct FindRateSummary {
    /// The server probed.
    pub target: String,
    /// Always `find-rate`.
    pub mode: &'static str,
    /// Probe size, bytes.
    pub size: usize,
    /// The loss allowed, percent.
    pub max_loss_percent: f64,
    /// Length of each step, seconds.
    pub step_s: f64,
    /// Every step in order.
    pub steps: Vec<Step>,
    /// The highest rate that passed, probes/s (`null`: not even the lowest).
    pub answer_pps: Option<f64>,
    /// The lowest rate that failed, probes/s (`null`: none failed).
    pub limit_pps: Option<f64>,
    /// True when a stop (Ctrl-C, a signal) cut the search short: the figures
    /// above are what was found so far, not the answer.
    pub interrupted: bool,
}

/// Runs the search; `on_step` sees each step as it ends.
pub fn find_rate(
    target: &Target,
    base: &MeasureConfig,
    max_loss_percent: f64,
    stop: &Stop,
    on_step: &mut dyn FnMut(usize, &Step),
) -> Result<FindRateSummary> {
    let mut search = RateSearch::new(START_PPS, max_loss_percent);
    let mut steps = Vec::new();
    let mut peer = String::new();
    while let Some(rate) = search.next_rate() {
        if stop.is_requested() {
            break;
        }
        if !steps.is_empty() && !stop.sleep_until(std::time::Instant::now() + SETTLE) {
            break;
        }
        let config = MeasureConfig {
            mode: MeasureMode::Rate { pps: rate },
            ..base.clone()
        };
        let run = measure::measure(target, &config, stop, &mut |_| {}, &mut |_| {})?;
        if stop.is_requested() {
            break; // a cut-short step proves nothing
        }
        peer = run.target.clone();
        let ok = search.passes(rate, run.send_rate_pps, run.loss_percent);
        search.record(rate, ok);
        let step = Step {
            rate_pps: rate,
            send_rate_pps: run.send_rate_pps,
            sent: run.counts.sent,
            lost: run.counts.lost,
            loss_percent: run.loss_percent,
            p99_us: run.rtt_us.p99,
            client_drops: run.client_drops,
            lost_in_client: run.lost_in_client,
            ok,
        };
        on_step(steps.len() + 1, &step);
        steps.push(step);
    }
    Ok(FindRateSummary {
        target: peer,
        mode: "find-rate",
        size: base.size,
        max_loss_percent,
        step_s: base.duration.as_secs_f64(),
        steps,
        answer_pps: search.answer(),
        limit_pps: search.limit(),
        interrupted: stop.is_requested(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a simulated path that loses nothing up to
    /// `capacity` probes/s and `excess` percent of what goes beyond.
    fn simulate(capacity: f64, max_loss: f64) -> (RateSearch, usize) {
        let mut search = RateSearch::new(START_PPS, max_loss);
        let mut steps = 0;
        while let Some(rate) = search.next_rate() {
            let loss = if rate <= capacity {
                0.0
            } else {
                100.0 * (rate - capacity) / rate
            };
            let passed = search.passes(rate, rate, loss);
            search.record(rate, passed);
            steps += 1;
        }
        (search, steps)
    }

    #[test]
    fn finds_a_capacity_above_the_start_within_five_percent() {
        for capacity in [1500.0, 31_250.0, 123_456.0, 2_000_000.0] {
            let (search, steps) = simulate(capacity, 0.0);
            let answer = search.answer().unwrap();
            assert!(
                answer <= capacity && answer * PRECISION >= capacity,
                "{capacity}: {answer}"
            );
            assert!(steps <= MAX_STEPS, "{capacity}: {steps} steps");
        }
    }

    #[test]
    fn finds_a_capacity_below_the_start_by_halving() {
        let (search, _) = simulate(130.0, 0.0);
        let answer = search.answer().unwrap();
        assert!(answer <= 130.0 && answer * PRECISION >= 130.0, "{answer}");
    }

    #[test]
    fn a_loss_allowance_raises_the_answer() {
        // 10% allowed: rates up to capacity / 0.9 pass.
        let (search, _) = simulate(10_000.0, 10.0);
        let answer = search.answer().unwrap();
        assert!(answer > 10_000.0 && answer <= 10_000.0 / 0.9, "{answer}");
    }

    #[test]
    fn a_dead_path_ends_with_no_answer_and_a_ceiling_ends_at_the_max() {
        let (dead, steps) = simulate(0.0, 0.0);
        assert_eq!(dead.answer(), None);
        assert!(steps <= MAX_STEPS);
        let (open, _) = simulate(f64::INFINITY, 0.0);
        assert_eq!(open.answer(), Some(MAX_PPS));
        assert_eq!(open.limit(), None);
    }

    #[test]
    fn a_client_that_cannot_send_fast_enough_fails_the_step() {
        let search = RateSearch::new(1000.0, 0.0);
        assert!(search.passes(1000.0, 990.0, 0.0));
        assert!(!search.passes(1000.0, 900.0, 0.0));
        assert!(!search.passes(1000.0, 1000.0, 0.1));
    }
}
