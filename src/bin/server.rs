//! `udp-echo-server`: command line → [`ServerConfig`] → [`service::run`] → exit code.

use std::process::ExitCode;

use clap::Parser;
use udp_echo::cli::generate::{self, Program};
use udp_echo::cli::server::{Args, PROGRAM};
use udp_echo::logging;
use udp_echo::server::ServerConfig;
use udp_echo::server::service;
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
    // With a key directory, SIGHUP reloads it instead of stopping.
    let stop = match Stop::on_signals_reloading(args.stamp_key_dir.is_some()) {
        Ok(stop) => stop,
        Err(e) => {
            logging::report_error(PROGRAM, &format!("cannot install signal handlers: {e}"));
            return ExitCode::from(1);
        }
    };
    match service::run(&ServerConfig::from(&args), args.metrics, &stop) {
        Ok(_summary) => ExitCode::SUCCESS,
        Err(e) => {
            logging::report_error(PROGRAM, &e);
            ExitCode::from(1)
        }
    }
}
