//! The threads of a running server, their names, and how a stop reaches
//! them.
//!
//! `Server::run` spawns in one `thread::scope`:
//!
//! - the echo loops, `echo-0` to `echo-N` (`--threads`);
//! - `stats`, with `--stats-interval`;
//! - `observer`, where `service` wires the `--metrics` endpoint: one `poll`
//!   over the listener and at most 64 connections, the stop flag seen every
//!   50 ms;
//! - `port-watch`, the port-sharing watch (`watch_port`), if `/proc/net/udp`
//!   was readable at start: every 250 ms, stretched to 50× its last read's
//!   cost;
//! - `key-reload`, with `--stamp-key-dir`: rereads the STAMP keys after each
//!   SIGHUP.
//!
//! The service layer (`service::run`) adds the sd_notify watchdog thread
//! when `WATCHDOG_USEC` asks for one.
//!
//! SIGINT, SIGTERM and SIGHUP (unless ignored at start, as by `nohup`, or
//! taken for a key reload) store the signal number in `Stop`'s atomic; a
//! second one exits with 130. signal-hook's handlers have `SA_RESTART`, so
//! a blocked receive is restarted: a loop sees the flag when its read
//! timeout fires, within `STOP_POLL` (10 idle wake-ups a second). An allowed
//! stop datagram raises the flag in `inspect`; the datagrams before it in
//! its batch are echoed, those after it booked as taken after the stop; the
//! other loops end within 100 ms (no wake-up datagram: `SO_REUSEPORT` would
//! hash it to one socket). Stats, watch and watchdog wait in
//! `Stop::sleep_until` (50 ms steps); `run` raises the flag after the
//! loops, ending them all.
//!
//! # Names
//!
//! Each thread has its name, so that `top -H`, `ps -L`, `perf` and
//! `/proc/PID/task/*/comm` tell the echo loops from the rest.
//!
//! All are ordinary threads. The port watch's `/proc/net/udp` read takes
//! 0.3–0.8 ms of its CPU every 250 ms (the kernel walks its whole UDP hash
//! table), which looked like a reason to run it in the background
//! (`SCHED_IDLE`) beside an echo loop pinned to the same CPU. Measured
//! (`perf sched timehist` on that CPU, a 1,000,000/s client, 2026-12-04):
//! the loop waited at most 0.05 ms to run after a wake-up, watch or not,
//! and the receive-buffer losses of that load did not move; it was left as
//! it is.

use std::thread::{self, Scope, ScopedJoinHandle};

/// Spawns `work` in `scope` as a thread named `name` (15 bytes at most, the
/// kernel's limit).
///
/// # Panics
///
/// When the thread cannot be created, as [`Scope::spawn`] does.
pub(super) fn spawn<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: String,
    work: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    debug_assert!(name.len() <= 15, "thread name {name:?} is cut short");
    let spawned = thread::Builder::new().name(name).spawn_scoped(scope, work);
    spawned.unwrap_or_else(|e| panic!("failed to spawn a server thread: {e}"))
}
