//! The stop flag shared by the echo loop, its threads and the signal handlers.
//!
//! Signal handlers only store the signal number in an atomic (async-signal-safe);
//! the loop notices it on its next wake-up. SIGHUP (the terminal went away) stops
//! like SIGTERM, with the summary, instead of killing the process without one —
//! unless it was ignored at start (`nohup`), which is kept — or the server
//! reloads on it (`--stamp-key-dir`, [`Stop::on_signals_reloading`]): then it
//! only sets a flag the reloader takes ([`Stop::take_hangup`]).
//! A second signal while the first is being handled exits at once with 130, so
//! a stuck stop can't trap a user.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A signal arrived (SIGINT, SIGTERM or SIGHUP).
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
    /// Set by SIGHUP when it asks for a reload rather than a stop.
    hangup: Arc<AtomicBool>,
}

impl Stop {
    /// A flag nobody has raised yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A flag raised by SIGINT, SIGTERM and SIGHUP; a second one exits the process with 130.
    pub fn on_signals() -> io::Result<Stop> {
        Stop::on_signals_reloading(false)
    }

    /// As [`on_signals`](Self::on_signals), but with `reload` SIGHUP asks
    /// for a reload ([`take_hangup`](Self::take_hangup)) instead of a stop.
    pub fn on_signals_reloading(reload: bool) -> io::Result<Stop> {
        let stop = Stop::new();
        let armed = Arc::new(AtomicBool::new(false));
        if reload {
            signal_hook::flag::register(SIGHUP, Arc::clone(&stop.hangup))?;
        }
        // Installing a handler would undo `nohup`'s SIG_IGN: keep what the user chose.
        let hangup = (!reload && !ignored_at_start(SIGHUP)).then_some(SIGHUP);
        for signal in [SIGINT, SIGTERM].into_iter().chain(hangup) {
            // Registration order matters: the exit must see the flag from the
            // previous signal, before this one sets it.
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&armed))?;
            signal_hook::flag::register(signal, Arc::clone(&armed))?;
            let value = usize::try_from(signal).expect("signal numbers are positive");
            signal_hook::flag::register_usize(signal, Arc::clone(&stop.cause), value)?;
        }
        Ok(stop)
    }

    /// Whether a SIGHUP asked for a reload since the last call (see
    /// [`on_signals_reloading`](Self::on_signals_reloading)).
    pub fn take_hangup(&self) -> bool {
        self.hangup.swap(false, Ordering::AcqRel)
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

/// Whether `signal` was ignored when the process started (`nohup` ignores
/// SIGHUP), from the `SigIgn` mask of `/proc/self/status`; false where that
/// file cannot be read.
fn ignored_at_start(signal: i32) -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| is_ignored(&status, signal))
}

/// Parses the `SigIgn:` hex mask of a `/proc/PID/status` text: bit N-1 is signal N.
fn is_ignored(status: &str, signal: i32) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0)
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
        SIGHUP => "SIGHUP",
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
    fn the_ignored_mask_is_read_per_signal() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000001\n";
        assert!(is_ignored(status, SIGHUP));
        assert!(!is_ignored(status, SIGINT));
        assert!(!is_ignored("SigIgn:\tzz\n", SIGHUP));
        assert!(!is_ignored("", SIGHUP));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        assert_eq!(signal_name(SIGHUP), "SIGHUP");
    }
}
