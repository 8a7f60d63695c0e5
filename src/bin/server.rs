//! `udp-echo-server`: command line → [`ServerConfig`] → [`Server`] → exit code.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use udp_echo::guard::{self, Cidr, GuardConfig};
use udp_echo::logging;
use udp_echo::net::Family;
use udp_echo::server::{DEFAULT_BATCH, Server, ServerConfig, StopPolicy};
use udp_echo::shutdown::Stop;
use udp_echo::units::{parse_buffer_size, parse_positive_seconds};

const PROGRAM: &str = "udp-echo-server";

/// A UDP echo server (RFC 862): every datagram goes back, byte for byte, to its sender.
///
/// Prints `listening on ADDR:PORT` on stdout once bound; logs go to stderr.
/// Stops on SIGINT, SIGTERM or an empty datagram (see --stop-on-empty).
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
struct Args {
    /// Address or name to bind; 0.0.0.0 or :: for all interfaces.
    #[arg(short = 'H', long, default_value = "localhost")]
    host: String,

    /// UDP port; 0 picks a free one (read it from the `listening on` line).
    #[arg(short, long, default_value_t = 9999)]
    port: u16,

    /// Resolve the host to IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Resolve the host to IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// Request SO_RCVBUF, e.g. 4096, 256K, 4M (K/M/G are powers of 1024); capped by net.core.rmem_max.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    recv_buf: Option<usize>,

    /// Request SO_SNDBUF, like --recv-buf; capped by net.core.wmem_max.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    send_buf: Option<usize>,

    /// Answer only sources in this network (repeatable), e.g. 192.0.2.0/24, 2001:db8::/32.
    #[arg(long, value_name = "CIDR", value_parser = guard::parse_cidr)]
    allow: Vec<Cidr>,

    /// Per-source-address budget in datagrams/s (burst: one second's worth); excess is dropped.
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: Option<u32>,

    /// Turn the loop guard off: also answer source ports 0-1023, 1900, 5353 and 11211.
    #[arg(long)]
    allow_service_ports: bool,

    /// Bind without SO_REUSEADDR, so no other socket can share the port later.
    #[arg(long)]
    exclusive: bool,

    /// Who may stop the server with an empty datagram; others get it echoed.
    #[arg(long, value_name = "WHO", value_enum, default_value_t = StopOnEmpty::Loopback)]
    stop_on_empty: StopOnEmpty,

    /// Datagrams per syscall: 1 = one recv_from/send_to each; more = recvmmsg/sendmmsg batches.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,

    /// Sockets on the same address with SO_REUSEPORT, one blocking thread each.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,

    /// Log a counter line (datagrams/s, bytes/s, errors, kernel drops) every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_positive_seconds)]
    stats_interval: Option<Duration>,

    /// More logging: -v shows every datagram (debug), -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less logging: -q warnings only, -qq errors only.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StopOnEmpty {
    /// From a loopback address (someone on this host).
    Loopback,
    /// From anyone (the original's behaviour; trusted networks only).
    Any,
    /// Never: empty datagrams are echoed.
    Never,
}

impl From<&Args> for ServerConfig {
    fn from(args: &Args) -> Self {
        ServerConfig {
            host: args.host.clone(),
            port: args.port,
            family: Family::from_flags(args.ipv4, args.ipv6),
            recv_buf: args.recv_buf,
            send_buf: args.send_buf,
            stop_on_empty: match args.stop_on_empty {
                StopOnEmpty::Loopback => StopPolicy::Loopback,
                StopOnEmpty::Any => StopPolicy::Any,
                StopOnEmpty::Never => StopPolicy::Never,
            },
            batch: args.batch as usize,
            threads: args.threads as usize,
            stats_interval: args.stats_interval,
            guard: GuardConfig {
                allow_service_ports: args.allow_service_ports,
                allow: args.allow.clone(),
                rate_limit: args.rate_limit,
            },
            exclusive: args.exclusive,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(PROGRAM, logging::verbosity(args.verbose, args.quiet));
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_valid() {
        Args::command().debug_assert();
    }
}
