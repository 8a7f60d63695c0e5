//! What runs beside the echo loops without the server knowing what it is:
//! an [`Observer`] thread (the `--metrics` endpoint) and a status sink (the
//! service manager's `STATUS=`), both wired in by `server::service`.

use std::fmt;

use super::StartupReport;
use super::counters::Counters;
use crate::shutdown::Stop;

/// A receiver of the `--stats-interval` lines (see [`Server::with_status`](super::Server::with_status)).
pub(super) struct StatusSink(pub(super) Box<dyn Fn(&str) + Send + Sync>);

impl fmt::Debug for StatusSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusSink")
    }
}

/// A thread beside the echo loops (see [`Server::with_observer`](super::Server::with_observer)).
pub struct Observer(pub(super) Box<dyn for<'a> FnOnce(Running<'a>) + Send>);

impl Observer {
    /// `run` is called once, on its own thread, when the loops start.
    pub fn new(run: impl for<'a> FnOnce(Running<'a>) + Send + 'static) -> Observer {
        Observer(Box::new(run))
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

/// What an [`Observer`] sees of a running server.
pub struct Running<'a> {
    /// What the start found.
    pub report: &'a StartupReport,
    /// The sockets' inodes, to find them in the kernel's socket table.
    pub inodes: &'a [u64],
    /// The loops' totals so far, merged from what they last published.
    pub totals: &'a dyn Fn() -> Counters,
    /// Raised when the run ends; the observer returns then.
    pub stop: &'a Stop,
}
