//! How the loops keep a flood of events from becoming a flood of log lines.

use std::time::{Duration, Instant};

/// At most one warning per kind of error per this interval; the rest are counted.
pub(super) const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// At most one debug line about dropped datagrams per this interval: a flood of
/// hostile traffic must not become a flood of log lines.
pub(super) const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// At most one warning about a new loop (or a datagram from the server's own
/// socket) per this interval: forged loops with many peers must not flood the log.
pub(super) const LOOP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps a flood of identical events from flooding the log (and costing throughput).
#[derive(Debug)]
pub(super) struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    pub(super) suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::every(ERROR_LOG_INTERVAL)
    }
}

impl Throttle {
    pub(super) fn every(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns `Some(suppressed since the last one)` when a line may be logged now.
    pub(super) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

pub(super) fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more since the last report)")
    }
}
