//! The server as a service: the lifecycle `udp-echo-server` runs, and what a
//! service manager (systemd or compatible) hands it and wants from it.
//!
//! - [`activation`]: socket activation (`LISTEN_FDS`): the inherited sockets,
//!   checked to be UDP.
//! - [`notify`]: readiness, status and watchdog for the manager (`NOTIFY_SOCKET`).
//! - [`metrics`]: the server's counters on the `--metrics` endpoint.
//!
//! [`Server`] knows none of them: [`run`] wires each to it (the metrics as an
//! [`Observer`](crate::server::Observer), the status as a line sink).

pub mod activation;
pub mod metrics;
pub mod notify;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use crate::server::{Server, ServerConfig, ServerSummary};
use crate::shutdown::Stop;
use notify::Notifier;

/// The server's whole life as `udp-echo-server` lives it: bind (or adopt the
/// sockets a service manager passed), bind the metrics endpoint (`metrics`),
/// log the start-up report, print `listening on` (and `metrics on`), tell the
/// manager it is ready, echo until `stop`, tell it the server is stopping, and
/// log the summary. An error is a failed start; once serving, it ends with
/// the summary.
pub fn run(
    config: &ServerConfig,
    metrics: Option<SocketAddr>,
    stop: &Stop,
) -> Result<ServerSummary, Box<dyn std::error::Error>> {
    let server = start(config)?;
    // Bound before `listening on`, so a taken metrics port fails the start.
    let metrics = metrics.map(crate::metrics::bind).transpose()?;
    // The library hands its start-up report over as data; logging it is ours.
    for (level, line) in server.startup().lines() {
        log::log!(level, "{line}");
    }
    let notifier = match Notifier::from_env() {
        Ok(notifier) => notifier.map(Arc::new),
        Err(e) => {
            log::warn!("NOTIFY_SOCKET is set, but no socket to notify it: {e}");
            None
        }
    };
    let server = match &notifier {
        Some(notifier) => {
            let notifier = Arc::clone(notifier);
            server.with_status(move |line| {
                if let Err(e) = notifier.status(line) {
                    log::debug!("cannot send STATUS to the service manager: {e}");
                }
            })
        }
        None => server,
    };
    // The one line on stdout; a closed stdout must not stop a server.
    let local = server.local_addr();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}");
    let server = match metrics {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                let _ = writeln!(stdout, "{}", metrics::announce(addr));
            }
            server.with_observer(metrics::observer(listener))
        }
        None => server,
    };
    let _ = stdout.flush();
    drop(stdout);
    tell(&notifier, |n| n.ready(&format!("serving on {local}")));
    let summary = thread::scope(|scope| {
        if let (Some(notifier), Some(every)) = (&notifier, notify::watchdog_from_env()) {
            scope.spawn(move || notifier.watchdog(every, stop));
        }
        // `run` raises the stop flag as it ends, which ends the watchdog too.
        server.run(stop)
    });
    tell(&notifier, |n| n.stopping(&summary.to_string()));
    log::info!("{summary}");
    Ok(summary)
}

/// Binds, or serves the sockets a service manager passed (socket activation).
fn start(config: &ServerConfig) -> Result<Server, Box<dyn std::error::Error>> {
    let inherited = activation::inherited()?;
    if inherited.is_empty() {
        return Ok(Server::bind(config)?);
    }
    for socket in &inherited {
        log::info!("{socket}");
    }
    if let Some(note) = activation::threads_note(config.threads, inherited.len()) {
        log::warn!("{note}");
    }
    let sockets = inherited.into_iter().map(|i| i.socket).collect();
    Ok(Server::adopt(sockets, config)?)
}

/// Sends a message to the service manager, if there is one; a failure is
/// worth a warning, never a stop.
fn tell(notifier: &Option<Arc<Notifier>>, send: impl FnOnce(&Notifier) -> std::io::Result<()>) {
    if let Some(notifier) = notifier {
        if let Err(e) = send(notifier) {
            log::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
        }
    }
}
