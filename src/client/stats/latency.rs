//! Round-trip times: the HDR histogram, exact running sums, the RFC 3550
//! jitter, and the buckets `--histogram` draws.

use hdrhistogram::Histogram;

use super::{MAX_RTT_NS, RttSummary};

/// Round-trip times of intact replies: exact min/mean/max/stddev from running
/// sums, percentiles from an HDR histogram (3 significant digits, ns units, so
/// far finer than the microseconds it reports), and the RFC 3550 jitter.
///
/// A [`sums_only`](Latency::sums_only) record keeps no histogram (≈ 200 KiB
/// each): the fleet prober books thousands of targets and exports only its
/// own Prometheus buckets, the count and the sum.
#[derive(Debug, Clone)]
pub struct Latency {
    /// `None` in a sums-only record: no quantiles, no buckets.
    histogram: Option<Histogram<u64>>,
    count: u64,
    sum_ns: f64,
    sum_sq_ns: f64,
    min_ns: u64,
    max_ns: u64,
    jitter_ns: f64,
    last_ns: Option<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty record; allocates the histogram once, so recording never does.
    pub fn new() -> Latency {
        Latency {
            histogram: Some(Histogram::new_with_bounds(1, MAX_RTT_NS, 3).expect("valid bounds")),
            ..Latency::sums_only()
        }
    }

    /// A record of the exact running figures only (count, sum, min, max,
    /// jitter), without the histogram: its quantiles are 0 and it has no
    /// buckets. A merge with one (either way) keeps only the sums.
    pub fn sums_only() -> Latency {
        Latency {
            histogram: None,
            count: 0,
            sum_ns: 0.0,
            sum_sq_ns: 0.0,
            min_ns: u64::MAX,
            max_ns: 0,
            jitter_ns: 0.0,
            last_ns: None,
        }
    }

    /// Records one round trip, in arrival order (the jitter depends on it).
    pub fn record(&mut self, rtt_ns: u64) {
        let v = rtt_ns.clamp(1, MAX_RTT_NS);
        if let Some(h) = &mut self.histogram {
            h.saturating_record(v);
        }
        self.count += 1;
        self.sum_ns += v as f64;
        self.sum_sq_ns += (v as f64) * (v as f64);
        self.min_ns = self.min_ns.min(v);
        self.max_ns = self.max_ns.max(v);
        if let Some(last) = self.last_ns {
            let d = (v as f64 - last as f64).abs();
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_ns = Some(v);
    }

    /// How many round trips were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds another flow's record. Jitter is per flow, so the merged value is
    /// the count-weighted mean of the flows' jitters.
    pub fn merge(&mut self, o: &Latency) {
        if o.count == 0 {
            return;
        }
        match (&mut self.histogram, &o.histogram) {
            (Some(mine), Some(theirs)) => mine.add(theirs).expect("same bounds"),
            // Sums only on either side: the sums below are still exact.
            _ => self.histogram = None,
        }
        let total = (self.count + o.count) as f64;
        self.jitter_ns =
            (self.jitter_ns * self.count as f64 + o.jitter_ns * o.count as f64) / total;
        self.count += o.count;
        self.sum_ns += o.sum_ns;
        self.sum_sq_ns += o.sum_sq_ns;
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
    }

    /// Forgets everything (the interval record, after each interval line),
    /// keeping the histogram's allocation.
    pub fn reset(&mut self) {
        if let Some(h) = &mut self.histogram {
            h.reset();
        }
        self.count = 0;
        self.sum_ns = 0.0;
        self.sum_sq_ns = 0.0;
        self.min_ns = u64::MAX;
        self.max_ns = 0;
        self.jitter_ns = 0.0;
        self.last_ns = None;
    }

    /// The `q` quantile (0..=1) in ns; 0 when empty. Always within the
    /// exact [min, max]: the histogram answers with the highest value its
    /// bucket stands for, which can lie above every value recorded.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        match &self.histogram {
            Some(h) if self.count > 0 => h.value_at_quantile(q).clamp(self.min_ns, self.max_ns),
            _ => 0,
        }
    }

    /// The figures a report shows, in µs.
    pub fn summary(&self) -> RttSummary {
        if self.count == 0 {
            return RttSummary::default();
        }
        let n = self.count as f64;
        let mean = self.sum_ns / n;
        let variance = (self.sum_sq_ns / n - mean * mean).max(0.0);
        let us = |ns: f64| ns / 1e3;
        RttSummary {
            samples: self.count,
            min: us(self.min_ns as f64),
            mean: us(mean),
            max: us(self.max_ns as f64),
            stddev: us(variance.sqrt()),
            p50: us(self.quantile_ns(0.50) as f64),
            p90: us(self.quantile_ns(0.90) as f64),
            p99: us(self.quantile_ns(0.99) as f64),
            p999: us(self.quantile_ns(0.999) as f64),
            // A jitter needs two round trips to differ.
            jitter: (self.count > 1).then(|| us(self.jitter_ns)),
        }
    }
}

/// One bucket of a log-scaled view of the round trips: `low_ns < rtt <= high_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttBucket {
    /// Lower bound, ns (exclusive).
    pub low_ns: u64,
    /// Upper bound, ns (inclusive): twice the lower in [`Latency::log_buckets`].
    pub high_ns: u64,
    /// Round trips in the bucket.
    pub count: u64,
}

impl Latency {
    /// The round trips in buckets doubling in width (bounds are powers of two
    /// of ns), from the first non-empty bucket to the last; the empty ones
    /// between are kept with count 0. Empty when nothing was recorded.
    pub fn log_buckets(&self) -> Vec<RttBucket> {
        let bucket_of = |v: u64| 64 - v.saturating_sub(1).leading_zeros();
        let mut buckets: Vec<RttBucket> = Vec::new();
        let Some(histogram) = &self.histogram else {
            return Vec::new();
        };
        for v in histogram.iter_recorded() {
            // Every value the histogram holds stands for an interval; its
            // highest equivalent value names the bucket.
            let value = v.value_iterated_to().max(1);
            let k = bucket_of(value);
            let first = buckets.first().map_or(k, |b| bucket_of(b.high_ns));
            while buckets.is_empty() || bucket_of(buckets[buckets.len() - 1].high_ns) < k {
                let next = if buckets.is_empty() {
                    first
                } else {
                    bucket_of(buckets[buckets.len() - 1].high_ns) + 1
                };
                let high_ns = 1u64 << next;
                buckets.push(RttBucket {
                    low_ns: high_ns / 2,
                    high_ns,
                    count: 0,
                });
            }
            let last = buckets.len() - 1;
            buckets[last].count += v.count_at_value();
        }
        buckets
    }
}

impl Latency {
    /// The round trips in `per_doubling` buckets per doubling of the RTT
    /// (bounds 2^(k/per_doubling) ns, rounded), from the first non-empty
    /// bucket to the last, the empty ones between kept with count 0. Finer
    /// than [`Latency::log_buckets`]: a loopback run keeps most of its round
    /// trips within one doubling. The histogram's 3 significant digits are far
    /// finer than 8 buckets per doubling (9% wide).
    pub fn buckets(&self, per_doubling: u32) -> Vec<RttBucket> {
        let per = f64::from(per_doubling.clamp(1, 8));
        let bound = |k: i64| 2f64.powf(k as f64 / per).round() as u64;
        let mut buckets: Vec<(i64, u64)> = Vec::new();
        let Some(histogram) = &self.histogram else {
            return Vec::new();
        };
        for v in histogram.iter_recorded() {
            // Every value the histogram holds stands for an interval; its
            // highest equivalent value names the bucket.
            let value = v.value_iterated_to().max(1) as f64;
            let k = (value.log2() * per - 1e-9).ceil() as i64;
            match buckets.last_mut() {
                Some(last) if last.0 == k => last.1 += v.count_at_value(),
                Some(last) => {
                    for empty in last.0 + 1..k {
                        buckets.push((empty, 0));
                    }
                    buckets.push((k, v.count_at_value()));
                }
                None => buckets.push((k, v.count_at_value())),
            }
        }
        buckets
            .into_iter()
            .map(|(k, count)| RttBucket {
                low_ns: bound(k - 1),
                high_ns: bound(k),
                count,
            })
            .collect()
    }
}
