//! `udp-echo-client`: command line → [`Target`] → one probe → exit code.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use udp_echo::Error;
use udp_echo::client::measure::{Event, MeasureConfig, Mode};
use udp_echo::client::{self, Target};
use udp_echo::logging;
use udp_echo::net::{self, Family};
use udp_echo::report;
use udp_echo::shutdown::Stop;
use udp_echo::units::{
    parse_buffer_size, parse_percent, parse_positive_seconds, parse_rate, parse_seconds,
};

const PROGRAM: &str = "udp-echo-client";

/// Exit codes, as documented in README: 0 the probe came back intact; 1 no reply,
/// a wrong reply or connection refused; 2 usage error or a local problem.
const PROBE_FAILED: u8 = 1;
const LOCAL_PROBLEM: u8 = 2;

/// Probes a UDP echo server: one datagram checked byte for byte, or ping, flood
/// and rate measurements of loss, reordering and latency.
///
/// Results go to stdout (the reply, the report or --json); logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
struct Args {
    /// Server address or name.
    #[arg(short = 'H', long, default_value = "localhost")]
    host: String,

    /// Server UDP port.
    #[arg(short, long, default_value_t = 9999)]
    port: u16,

    /// Resolve the host to IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Resolve the host to IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// Payload to send; `-` reads raw bytes from stdin and writes the reply raw (no newline).
    #[arg(short, long, value_name = "TEXT", default_value = "data")]
    data: String,

    /// Seconds to wait for the reply (fractions allowed).
    #[arg(short, long, value_name = "SECS", default_value = "1", allow_hyphen_values = true, value_parser = parse_positive_seconds)]
    timeout: Duration,

    /// Local address to send from: IP, IP:PORT or \[IPv6\]:PORT.
    #[arg(short, long, value_name = "ADDR", value_parser = net::parse_bind_addr)]
    bind: Option<std::net::SocketAddr>,

    /// Request SO_RCVBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    recv_buf: Option<usize>,

    /// Request SO_SNDBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    send_buf: Option<usize>,

    /// Send an empty datagram, which asks the server to stop.
    #[arg(long, conflicts_with_all = ["data", "count", "flood", "rate"])]
    stop: bool,

    /// Ping mode: send N probes, one per --interval, and report like ping (0 = until Ctrl-C).
    #[arg(short, long, value_name = "N", group = "mode", conflicts_with = "data")]
    count: Option<u64>,

    /// Ping mode: seconds between probes [default: 1]; 0 sends the next as soon as the reply or its timeout comes.
    #[arg(short, long, value_name = "SECS", requires = "count", value_parser = parse_seconds)]
    interval: Option<Duration>,

    /// Probe size in bytes in ping, flood and rate modes (16 ..= 65507).
    #[arg(short, long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=65507))]
    size: u32,

    /// Flood mode: keep --window probes in flight per flow for --duration (closed loop).
    #[arg(short, long, group = "mode", conflicts_with = "data")]
    flood: bool,

    /// Flood mode: probes in flight per flow.
    #[arg(short, long, value_name = "N", default_value_t = 32, requires = "flood", value_parser = clap::value_parser!(u32).range(1..=65536))]
    window: u32,

    /// Rate mode: send PPS probes per second (all flows together) for --duration (open loop).
    #[arg(short, long, value_name = "PPS", group = "mode", conflicts_with = "data", value_parser = parse_rate)]
    rate: Option<f64>,

    /// Length of a flood or rate run, in seconds [default: 5; --find-rate: 1 per step].
    #[arg(short = 'D', long, value_name = "SECS", value_parser = parse_positive_seconds)]
    duration: Option<Duration>,

    /// Search the highest open-loop rate whose loss stays within --max-loss.
    #[arg(long, group = "mode", conflicts_with = "data")]
    find_rate: bool,

    /// Find the largest payload (from --size up) that echoes intact with don't-fragment set.
    #[arg(long, group = "mode", conflicts_with = "data")]
    pmtu: bool,

    /// Diagnose UDP on this host and the path to the target; exit 1 when a finding needs action.
    #[arg(long, group = "mode", conflicts_with = "data")]
    doctor: bool,

    /// --find-rate: the loss allowed, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, requires = "find_rate", value_parser = parse_percent)]
    max_loss: f64,

    /// Sockets (source ports) in flood and rate mode, to spread over server threads.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    flows: u32,

    /// Print the summary as one JSON object on stdout instead of the human report.
    #[arg(long, requires = "mode")]
    json: bool,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less logging: -q hides the sent/recv lines, -qq also warnings.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
}

impl From<&Args> for Target {
    fn from(args: &Args) -> Self {
        Target {
            host: args.host.clone(),
            port: args.port,
            family: Family::from_flags(args.ipv4, args.ipv6),
            bind: args.bind,
            recv_buf: args.recv_buf,
            send_buf: args.send_buf,
            timeout: args.timeout,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(PROGRAM, logging::verbosity(args.verbose, args.quiet));
    let result = match measured_mode(&args) {
        _ if args.find_rate => run_find_rate(&args),
        _ if args.pmtu => run_pmtu(&args),
        _ if args.doctor => run_doctor(&args),
        Some(mode) => run_measured(&args, mode),
        None => run_one_shot(&args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(PROBE_FAILED),
        // A closed stdout (`| head`) is the reader's choice, not a failure.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            logging::report_error(PROGRAM, &e);
            ExitCode::from(if e.is_probe_failure() {
                PROBE_FAILED
            } else {
                LOCAL_PROBLEM
            })
        }
    }
}

/// Runs `--find-rate`; Ok(found a rate) decides the exit code.
fn run_find_rate(args: &Args) -> udp_echo::Result<bool> {
    let stop = stop_on_signals()?;
    let config = MeasureConfig {
        mode: Mode::Rate { pps: 1.0 }, // each step sets its own rate
        size: args.size as usize,
        timeout: args.timeout,
        duration: args.duration.unwrap_or(Duration::from_secs(1)),
        flows: args.flows as usize,
    };
    let human = !args.json;
    if human {
        let _ = writeln!(
            io::stdout(),
            "{}",
            report::find_rate_start(
                &format!("{}:{}", args.host, args.port),
                &config,
                args.max_loss
            )
        );
    }
    let summary = client::find_rate::find_rate(
        &Target::from(args),
        &config,
        args.max_loss,
        &stop,
        &mut |i, step| {
            if human && writeln!(io::stdout(), "{}", report::find_rate_step(i, step)).is_err() {
                stop.request();
            }
        },
    )?;
    let text = if human {
        report::find_rate_summary(&summary)
    } else {
        report::json(&summary)
    };
    print_result(&text)?;
    Ok(summary.answer_pps.is_some())
}

/// The Ctrl-C flag of the long-running modes (a second Ctrl-C exits at once).
fn stop_on_signals() -> udp_echo::Result<Stop> {
    Stop::on_signals().map_err(|source| Error::Io {
        what: "install signal handlers",
        source,
    })
}

/// Writes a mode's final result (human text or JSON) to stdout.
fn print_result(text: &str) -> udp_echo::Result<()> {
    writeln!(io::stdout(), "{text}").map_err(|source| Error::Io {
        what: "write the result to stdout",
        source,
    })
}

/// Runs `--doctor`; Ok(nothing needs action) decides the exit code.
fn run_doctor(args: &Args) -> udp_echo::Result<bool> {
    let stop = stop_on_signals()?;
    let findings = client::doctor::diagnose(&Target::from(args), &stop)?;
    let target = format!("{}:{}", args.host, args.port);
    let text = if args.json {
        report::json(&report::doctor_json(&target, &findings))
    } else {
        report::doctor(&target, &findings)
    };
    print_result(&text)?;
    Ok(findings
        .iter()
        .all(|f| f.severity != client::doctor::Severity::Action))
}

/// Runs `--pmtu`; Ok(some size fits) decides the exit code.
fn run_pmtu(args: &Args) -> udp_echo::Result<bool> {
    let human = !args.json;
    let target = Target::from(args);
    if human {
        let _ = writeln!(
            io::stdout(),
            "{}",
            report::pmtu_start(
                &format!("{}:{}", args.host, args.port),
                args.size as usize,
                args.timeout
            )
        );
    }
    let summary = client::pmtu::find_pmtu(&target, args.size as usize, &mut |step| {
        if human {
            let _ = writeln!(io::stdout(), "{}", report::pmtu_step(step));
        }
    })?;
    let text = if human {
        report::pmtu_summary(&summary)
    } else {
        report::json(&summary)
    };
    print_result(&text)?;
    Ok(summary.largest_payload.is_some())
}

/// The measured mode the arguments ask for, if any.
fn measured_mode(args: &Args) -> Option<Mode> {
    if let Some(count) = args.count {
        return Some(Mode::Ping {
            count: (count > 0).then_some(count),
            interval: args.interval.unwrap_or(Duration::from_secs(1)),
        });
    }
    if args.flood {
        return Some(Mode::Flood {
            window: args.window as usize,
        });
    }
    args.rate.map(|pps| Mode::Rate { pps })
}

/// Runs ping, flood or rate mode; Ok(passed) decides the exit code.
fn run_measured(args: &Args, mode: Mode) -> udp_echo::Result<bool> {
    let stop = stop_on_signals()?;
    let config = MeasureConfig {
        mode,
        size: args.size as usize,
        timeout: args.timeout,
        duration: args.duration.unwrap_or(Duration::from_secs(5)),
        flows: args.flows as usize,
    };
    let human = !args.json;
    // A closed stdout ends the run like Ctrl-C: nobody is reading any more.
    let print = |line: &str| {
        if human && writeln!(io::stdout(), "{line}").is_err() {
            stop.request();
        }
    };
    let target = Target::from(args);
    let mut peer = String::new();
    let summary = client::measure::measure(
        &target,
        &config,
        &stop,
        &mut |event| {
            if let Event::Start { peer: addr } = event {
                peer = addr.to_string();
                print(&report::start_line(&peer, &config));
            } else {
                print(&report::ping_event(&event, &peer));
            }
        },
        &mut |interval| print(&report::interval_line(interval)),
    )?;
    if human {
        print(report::summary(&summary).trim_end());
    } else {
        print_result(&report::json(&summary))?;
    }
    Ok(summary.passed())
}

/// Runs the one-shot probe (or `--stop`) and writes the reply to stdout.
fn run_one_shot(args: &Args) -> udp_echo::Result<()> {
    let raw = args.data == "-";
    let payload = if raw {
        read_stdin()?
    } else {
        args.data.clone().into_bytes()
    };
    let conn = client::connect(&Target::from(args))?;
    if args.stop {
        return client::stop_server(&conn);
    }
    let reply = client::one_shot(&conn, &payload)?;
    let stdio = |source| Error::Io {
        what: "write the reply to stdout",
        source,
    };
    let mut stdout = io::stdout().lock();
    stdout.write_all(&reply.bytes).map_err(stdio)?;
    if !raw {
        stdout.write_all(b"\n").map_err(stdio)?;
    }
    stdout.flush().map_err(stdio)
}

/// Reads the payload from stdin, never more than one datagram can carry (+1 to
/// tell "too large" apart from "exactly the maximum").
fn read_stdin() -> udp_echo::Result<Vec<u8>> {
    let limit = net::MAX_UDP_PAYLOAD_V6;
    let mut payload = Vec::new();
    io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|source| Error::Io {
            what: "read the payload from stdin",
            source,
        })?;
    if payload.len() > limit {
        return Err(Error::PayloadTooLarge {
            len: payload.len(),
            max: limit,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_valid() {
        Args::command().debug_assert();
    }
}
