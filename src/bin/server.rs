//! `udp-echo-server`: command line → [`ServerConfig`] → [`Server`] → exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use udp_echo::cli::server::{Args, PROGRAM};
use udp_echo::logging;
use udp_echo::server::{Server, ServerConfig};
use udp_echo::shutdown::Stop;

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(PROGRAM, args.common.verbosity());
    let stop = match Stop::on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            logging::report_error(PROGRAM, &format!("cannot install signal handlers: {e}"));
            return ExitCode::from(1);
        }
    };
    let server = match Server::bind(&ServerConfig::from(&args)) {
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
    // The one line on stdout; a closed stdout must not stop a server.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.local_addr());
    let server = match metrics {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                let _ = writeln!(stdout, "{}", udp_echo::metrics::server::announce(addr));
            }
            server.with_metrics(listener)
        }
        None => server,
    };
    let _ = stdout.flush();
    drop(stdout);
    let summary = server.run(&stop);
    log::info!("{summary}");
    ExitCode::SUCCESS
}
