//! `udp-echo-server`: command line → [`ServerConfig`] → [`Server`] → exit code.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use clap::Parser;
use udp_echo::cli::generate::{self, Program};
use udp_echo::cli::server::{Args, PROGRAM};
use udp_echo::logging;
use udp_echo::server::service::activation;
use udp_echo::server::service::notify::{self, Notifier};
use udp_echo::server::{Server, ServerConfig};
use udp_echo::shutdown::Stop;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(kind) = args.common.generate {
        return match generate::to_stdout(Program::Server, kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                logging::report_error(PROGRAM, &format!("cannot write to stdout: {e}"));
                ExitCode::from(1)
            }
        };
    }
    logging::init(PROGRAM, args.common.verbosity());
    let stop = match Stop::on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            logging::report_error(PROGRAM, &format!("cannot install signal handlers: {e}"));
            return ExitCode::from(1);
        }
    };
    let server = match start(&ServerConfig::from(&args)) {
        Ok(server) => server,
        Err(e) => {
            logging::report_error(PROGRAM, &e);
            return ExitCode::from(1);
        }
    };
    // Bound before `listening on`, so a taken metrics port fails the start.
    let metrics = match args.metrics.map(udp_echo::metrics::bind).transpose() {
        Ok(metrics) => metrics,
        Err(e) => {
            logging::report_error(PROGRAM, &e);
            return ExitCode::from(1);
        }
    };
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
        Some(notifier) => server.notifying(Arc::clone(notifier)),
        None => server,
    };
    // The one line on stdout; a closed stdout must not stop a server.
    let local = server.local_addr();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}");
    let server = match metrics {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                let _ = writeln!(stdout, "{}", udp_echo::server::metrics::announce(addr));
            }
            server.with_metrics(listener)
        }
        None => server,
    };
    let _ = stdout.flush();
    drop(stdout);
    tell(&notifier, |n| n.ready(&format!("serving on {local}")));
    let summary = thread::scope(|scope| {
        if let (Some(notifier), Some(every)) = (&notifier, notify::watchdog_from_env()) {
            let stop = &stop;
            scope.spawn(move || notifier.watchdog(every, stop));
        }
        // `run` raises the stop flag as it ends, which ends the watchdog too.
        server.run(&stop)
    });
    tell(&notifier, |n| n.stopping(&summary.to_string()));
    log::info!("{summary}");
    ExitCode::SUCCESS
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
