//! `udp-echo-client`: command line → [`Target`] → one probe → exit code.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use udp_echo::Error;
use udp_echo::client::{self, Target};
use udp_echo::logging;
use udp_echo::net::{self, Family};
use udp_echo::units::{parse_buffer_size, parse_positive_seconds};

const PROGRAM: &str = "udp-echo-client";

/// Exit codes, as documented in README: 0 the probe came back intact; 1 no reply,
/// a wrong reply or connection refused; 2 usage error or a local problem.
const PROBE_FAILED: u8 = 1;
const LOCAL_PROBLEM: u8 = 2;

/// Sends a datagram to a UDP echo server and checks that it comes back intact.
///
/// The reply is written to stdout; `sent` / `recv` lines go to stderr.
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

    /// Local address to send from: IP, IP:PORT or [IPv6]:PORT.
    #[arg(short, long, value_name = "ADDR", value_parser = net::parse_bind_addr)]
    bind: Option<std::net::SocketAddr>,

    /// Request SO_RCVBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    recv_buf: Option<usize>,

    /// Request SO_SNDBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    send_buf: Option<usize>,

    /// Send an empty datagram, which asks the server to stop.
    #[arg(long, conflicts_with = "data")]
    stop: bool,

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
            family: match (args.ipv4, args.ipv6) {
                (true, _) => Family::V4,
                (_, true) => Family::V6,
                _ => Family::Any,
            },
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
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`| head`) is the reader's choice, not a failure.
        Err(Error::Stdio { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
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

fn run(args: &Args) -> udp_echo::Result<()> {
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
    let stdio = |source| Error::Stdio {
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
        .map_err(|source| Error::Stdio {
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
