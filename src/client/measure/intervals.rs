//! The main thread of a flood or rate run: the interval lines, read from
//! the flows' shared books while the flows run on their own threads.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::{IntervalReport, Shared, until};
use crate::probe::Clock;
use crate::shutdown::Stop;
use crate::stats::{Counts, Latency};

/// The main thread of a flood or rate run: one interval report per second
/// while the flows run, taken from their shared books.
pub(super) fn report_intervals<T>(
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
