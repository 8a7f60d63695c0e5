//! One-way delays of one direction, kept in HDR histograms so a flood of
//! millions of replies costs fixed memory and no allocation per reply.
//!
//! A one-way delay is a difference of two hosts' clocks, so it is negative
//! when they disagree by more than the delay: the non-negative delays and the
//! magnitudes of the negative ones have a histogram each (3 significant
//! digits, finer than the ≈ 1 ms error estimate the time stamps claim), and
//! the quantiles are read across both.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest magnitude kept, ns (larger ones are clamped to it).
const MAX_NS: u64 = 600_000_000_000;

/// One-way delay figures in µs (negative when the clocks disagree by more
/// than the delay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OwdSummary {
    /// Replies the figures come from.
    pub samples: u64,
    /// Smallest, µs (exact).
    pub min: f64,
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Largest, µs (exact).
    pub max: f64,
}

/// The one-way delays of one direction.
#[derive(Debug, Clone)]
pub(crate) struct Owd {
    /// `None` in a sums-only record ([`Owd::sums_only`]): no quantiles.
    non_negative: Option<Histogram<u64>>,
    /// Taken on the first negative delay: with synchronised clocks there is none.
    negative: Option<Histogram<u64>>,
    min_ns: i64,
    max_ns: i64,
    /// Delays recorded and their sum, ns (exact, whatever the histograms).
    count: u64,
    sum_ns: i128,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid bounds")
}

impl Owd {
    pub(crate) fn new() -> Owd {
        Owd {
            non_negative: Some(histogram()),
            ..Owd::sums_only()
        }
    }

    /// A record of the count, sum, min and max only (the fleet prober's
    /// targets: two histograms of ≈ 200 KiB each per target would not fit).
    pub(crate) fn sums_only() -> Owd {
        Owd {
            non_negative: None,
            negative: None,
            min_ns: i64::MAX,
            max_ns: i64::MIN,
            count: 0,
            sum_ns: 0,
        }
    }

    fn count(&self) -> u64 {
        self.count
    }

    /// Delays recorded, and their sum in seconds.
    pub(crate) fn count_and_sum_seconds(&self) -> (u64, f64) {
        (self.count, self.sum_ns as f64 / 1e9)
    }

    /// Records one delay, ns.
    pub(crate) fn record(&mut self, ns: i64) {
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.sum_ns += i128::from(ns);
        let Some(non_negative) = &mut self.non_negative else {
            return;
        };
        let magnitude = ns.unsigned_abs().clamp(1, MAX_NS);
        if ns >= 0 {
            non_negative.saturating_record(magnitude);
        } else {
            self.negative
                .get_or_insert_with(histogram)
                .saturating_record(magnitude);
        }
    }

    /// Adds another flow's delays.
    pub(crate) fn merge(&mut self, o: &Owd) {
        self.count += o.count;
        self.sum_ns += o.sum_ns;
        match (&mut self.non_negative, &o.non_negative) {
            (Some(mine), Some(theirs)) => mine.add(theirs).expect("same bounds"),
            _ => {
                self.non_negative = None;
                self.negative = None;
            }
        }
        if let (Some(theirs), Some(_)) = (&o.negative, &self.non_negative) {
            self.negative
                .get_or_insert_with(histogram)
                .add(theirs)
                .expect("same bounds");
        }
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
    }

    /// The `q` quantile, ns: the ⌈q·n⌉-th smallest delay, from the negative
    /// ones (largest magnitude first) or the non-negative ones.
    fn quantile_ns(&self, q: f64) -> i64 {
        let n = self.count();
        let rank = ((n as f64 * q).ceil() as u64).clamp(1, n);
        let below = self.negative.as_ref().map_or(0, Histogram::len);
        let value = match &self.negative {
            Some(neg) if rank <= below => {
                let from_top = below - rank + 1;
                -(neg.value_at_quantile(from_top as f64 / below as f64) as i64)
            }
            _ => match &self.non_negative {
                Some(pos) => {
                    let k = rank - below;
                    pos.value_at_quantile(k as f64 / pos.len() as f64) as i64
                }
                // Sums only: no quantiles; the mean stands in (in [min, max]).
                None => (self.sum_ns / i128::from(n.max(1))) as i64,
            },
        };
        value.clamp(self.min_ns, self.max_ns)
    }

    /// The figures a report shows, in µs.
    pub(crate) fn summary(&self) -> OwdSummary {
        let samples = self.count();
        if samples == 0 {
            return OwdSummary::default();
        }
        let us = |ns: i64| ns as f64 / 1e3;
        OwdSummary {
            samples,
            min: us(self.min_ns),
            p50: us(self.quantile_ns(0.50)),
            p99: us(self.quantile_ns(0.99)),
            max: us(self.max_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want.abs() * 1e-3 + 1e-9
    }

    #[test]
    fn one_way_figures_are_quantiles_of_the_samples() {
        let mut owd = Owd::new();
        for i in 1..=100 {
            owd.record(i * 1000);
        }
        let s = owd.summary();
        assert_eq!((s.samples, s.min, s.max), (100, 1.0, 100.0));
        assert!(close(s.p50, 50.0) && close(s.p99, 99.0), "{s:?}");
        assert_eq!(Owd::new().summary(), OwdSummary::default());
    }

    #[test]
    fn negative_delays_sort_below_the_others() {
        let mut owd = Owd::new();
        for i in -50..50 {
            owd.record(i * 1000 + 500);
        }
        let s = owd.summary();
        assert_eq!((s.samples, s.min, s.max), (100, -49.5, 49.5));
        // The 50th smallest is -0.5 µs, the 99th 48.5 µs.
        assert!(close(s.p50, -0.5) && close(s.p99, 48.5), "{s:?}");
        let mut merged = Owd::new();
        merged.merge(&owd);
        merged.merge(&Owd::new());
        assert_eq!(merged.summary(), s);
    }
}
