//! `udp-echo-client`: command line → [`Command`] and [`Target`] → the library →
//! exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;
use udp_echo::cli::client::{Args, Command, PROGRAM, Payload};
use udp_echo::cli::exit::{self, ExitVerdict};
use udp_echo::cli::generate::{self, Program};
use udp_echo::client::report;
use udp_echo::client::session::{self, Outputs};
use udp_echo::client::{self, Target, doctor::Severity};
use udp_echo::shutdown::{Stop, StopCause};
use udp_echo::{Error, Result, logging};

fn main() -> ExitCode {
    let args = Args::from_command_line();
    if let Some(kind) = args.common.generate {
        return match generate::to_stdout(Program::Client, kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                logging::report_error(PROGRAM, &format!("cannot write to stdout: {e}"));
                ExitCode::from(exit::LOCAL_PROBLEM)
            }
        };
    }
    let (command, target) = (Command::from(&args), Target::from(&args));
    logging::init(PROGRAM, args.common.verbosity());
    if let Command::ListTargets(source) = &command {
        return match client::fleet::list(source) {
            Ok(text) => {
                let _ = io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                logging::report_error(PROGRAM, &e);
                ExitCode::from(exit::LOCAL_PROBLEM)
            }
        };
    }
    match run(command, &target, &Outputs::from(&args)) {
        Ok(verdict) => verdict.into(),
        Err(e) => exit::client_error_code(&e).map_or(ExitCode::SUCCESS, |code| {
            logging::report_error(PROGRAM, &e);
            code
        }),
    }
}

/// Runs one command; its verdict decides the exit code. The long runs get a
/// Ctrl-C flag (a second Ctrl-C exits at once).
fn run(command: Command, target: &Target, outputs: &Outputs) -> Result<ExitVerdict> {
    let json = outputs.json;
    let on_signals =
        || Stop::on_signals().map_err(|source| io_error("install signal handlers", source));
    // The address probed, resolved once for the whole command, and how the
    // report names it (with the name given, if one was).
    let pin = || {
        client::pinned(target).map(|(pinned, peer)| {
            let label = client::target_label(&target.host, peer);
            (pinned, peer, label)
        })
    };
    match command {
        Command::OneShot(payload) => one_shot(target, &payload).map(|()| ExitVerdict::Passed),
        Command::Stop => {
            client::stop_server(&client::connect(target)?).map(|()| ExitVerdict::Passed)
        }
        Command::Measure(config) => {
            // `--probes -` takes stdout: the report goes to stderr then.
            let mut out: Box<dyn Write> = if outputs.probes_on_stdout() {
                Box::new(io::stderr())
            } else {
                Box::new(io::stdout())
            };
            session::run(target, &config, outputs, &on_signals()?, &mut out).map(ExitVerdict::from)
        }
        Command::FindRate { config, max_loss } => {
            let (target, _, label) = pin()?;
            let target = &target;
            let stop = on_signals()?;
            if !json {
                line(&report::find_rate_start(&label, &config, max_loss));
            }
            let summary =
                client::find_rate::find_rate(target, &config, max_loss, &stop, &mut |i, step| {
                    if !json && !line(&report::find_rate_step(i, step)) {
                        stop.request();
                    }
                })?;
            print_result(json, &summary, || report::find_rate_summary(&summary))?;
            // A stop because stdout closed is the reader's choice, not an interruption.
            if matches!(stop.cause(), Some(StopCause::Signal(_))) {
                return Ok(ExitVerdict::Interrupted);
            }
            Ok(summary.answer_pps.is_some().into())
        }
        Command::Pmtu { min_size } => {
            let (target, _, label) = pin()?;
            let target = &target;
            if !json {
                line(&report::pmtu_start(&label, min_size, target.timeout));
            }
            let summary = client::pmtu::find_pmtu(target, min_size, &mut |step| {
                if !json {
                    line(&report::pmtu_step(step));
                }
            })?;
            print_result(json, &summary, || report::pmtu_summary(&summary))?;
            Ok(summary.largest_payload.is_some().into())
        }
        // Handled in `main`: its failure is the source's, not an `Error`.
        Command::ListTargets(_) => Ok(ExitVerdict::Passed),
        Command::Exporter(listen, allow) => {
            client::fleet::exporter::serve_at(listen, &allow, &on_signals()?, &mut io::stdout())
                .map(|()| ExitVerdict::Passed)
        }
        Command::Fleet(config) => {
            let stop = Stop::on_signals_reloading(true)
                .map_err(|source| io_error("install signal handlers", source))?;
            client::fleet::run(&config, &stop).map(|()| ExitVerdict::Passed)
        }
        Command::Doctor => {
            let (target, peer, label) = pin()?;
            let findings = client::doctor::diagnose(&target, &on_signals()?)?;
            let result = report::doctor_json(&peer.to_string(), &findings);
            print_result(json, &result, || report::doctor(&label, &findings))?;
            Ok(findings
                .iter()
                .all(|f| f.severity != Severity::Action)
                .into())
        }
    }
}

/// Writes one line of a human report to stdout; false when stdout is closed.
fn line(text: &str) -> bool {
    writeln!(io::stdout(), "{text}").is_ok()
}

/// Writes a mode's result to stdout, ending in one newline: with `--json` the
/// JSON object, else the human report.
fn print_result(json: bool, result: &impl Serialize, human: impl FnOnce() -> String) -> Result<()> {
    let text = if json { report::json(result) } else { human() };
    writeln!(io::stdout(), "{}", text.trim_end())
        .map_err(|source| io_error("write the result to stdout", source))
}

/// Sends the one-shot probe and writes the reply to stdout.
fn one_shot(target: &Target, payload: &Payload) -> Result<()> {
    let bytes = payload.bytes(io::stdin().lock())?;
    let reply = client::one_shot(&client::connect(target)?, &bytes)?;
    let stdio = |source| io_error("write the reply to stdout", source);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&reply.bytes).map_err(stdio)?;
    if let Payload::Text(_) = payload {
        stdout.write_all(b"\n").map_err(stdio)?;
    }
    stdout.flush().map_err(stdio)
}

/// A local I/O step that failed.
fn io_error(what: &'static str, source: io::Error) -> Error {
    Error::Io { what, source }
}
