//! `udp-echo-server`: command line → [`ServerConfig`] → [`Server`] → exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use udp_echo::cli::generate::{self, Program};
use udp_echo::cli::server::{Args, PROGRAM};
use udp_echo::logging;
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
    let server = match Server::bind(&ServerConfig::from(&args)) {
        Ok(server) => server,
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
    let _ = stdout.flush();
    drop(stdout);
    let summary = server.run(&stop);
    log::info!("{summary}");
    ExitCode::SUCCESS
}
