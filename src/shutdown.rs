//! The stop flag shared by the echo loop, its threads and the signal handlers.
//!
//! Signal handlers only store the signal number in an atomic (async-signal-safe);
//! the loop notices it on its next wake-up. A second SIGINT or SIGTERM while the
//! first is being handled exits at once with 130, so a stuck stop can't trap a user.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A signal arrived (SIGINT or SIGTERM).
    Signal(i32),
    /// Code asked for it (a test, or another thread that saw the stop datagram).
    Requested,
}

const RUNNING: usize = 0;
const REQUESTED: usize = usize::MAX;

/// A cheap, cloneable stop flag; checking it is one relaxed atomic load.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    cause: Arc<AtomicUsize>,
}

impl Stop {
    /// A flag nobody has raised yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A flag raised by SIGINT and SIGTERM; a second one exits the process with 130.
    pub fn on_signals() -> io::Result<Stop> {
        let stop = Stop::new();
        let armed = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registration order matters: the exit must see the flag from the
            // previous signal, before this one sets it.
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&armed))?;
            signal_hook::flag::register(signal, Arc::clone(&armed))?;
            let value = usize::try_from(signal).expect("signal numbers are positive");
            signal_hook::flag::register_usize(signal, Arc::clone(&stop.cause), value)?;
        }
        Ok(stop)
    }

    /// Asks every holder of this flag to stop.
    pub fn request(&self) {
        let _ = self
            .cause
            .compare_exchange(RUNNING, REQUESTED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether a stop was asked, and why.
    pub fn cause(&self) -> Option<StopCause> {
        match self.cause.load(Ordering::Relaxed) {
            RUNNING => None,
            REQUESTED => Some(StopCause::Requested),
            signal => Some(StopCause::Signal(signal as i32)),
        }
    }

    /// True once a stop was asked.
    pub fn is_requested(&self) -> bool {
        self.cause.load(Ordering::Relaxed) != RUNNING
    }

    /// Sleeps until `deadline` in steps of at most [`SLEEP_STEP`], so a stop is
    /// seen promptly. True when the deadline came, false when a stop came first.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.is_requested() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(SLEEP_STEP));
        }
    }
}

/// The longest a [`Stop::sleep_until`] sleeps before looking at the flag again.
pub const SLEEP_STEP: Duration = Duration::from_millis(50);

/// The longest a blocking wait (a receive, a poll) lasts before its loop looks
/// at the stop flag again: a stop is seen within this long, at the cost of
/// that many idle wake-ups a second.
pub const WAIT_STEP: Duration = Duration::from_millis(100);

/// The conventional name of the signals the tools handle, for the summary.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_starts_lowered_and_remembers_why_it_was_raised() {
        let stop = Stop::new();
        assert_eq!(stop.cause(), None);
        assert!(!stop.is_requested());
        let other = stop.clone();
        other.request();
        assert!(stop.is_requested());
        assert_eq!(stop.cause(), Some(StopCause::Requested));
    }

    #[test]
    fn sleep_until_returns_at_the_deadline_or_on_a_stop() {
        let stop = Stop::new();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(stop.sleep_until(deadline));
        assert!(Instant::now() >= deadline);
        let other = stop.clone();
        let waker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            other.request();
        });
        let asked = Instant::now();
        assert!(!stop.sleep_until(asked + Duration::from_secs(10)));
        assert!(asked.elapsed() < Duration::from_secs(1));
        waker.join().unwrap();
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
    }
}
