//! `udp-echo-client`'s command line and its conversion to a [`Command`] and a
//! [`Target`]; the one-shot [`Payload`] and how its bytes are read.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use super::Common;
use crate::client::Target;
use crate::client::measure::{MeasureConfig, Mode};
use crate::client::session::Outputs;
use crate::client::stamp::StampConfig;
use crate::error::{Error, Result};
use crate::net;
use crate::stamp::StampOptions;
use crate::units::{parse_percent, parse_positive_seconds, parse_rate, parse_seconds};

/// The client binary's name, in `--help` and in every log line.
pub const PROGRAM: &str = "udp-echo-client";

/// Probes a UDP echo server: one datagram checked byte for byte, or ping, flood
/// and rate measurements of loss, reordering and latency (with --stamp, of a
/// STAMP session-reflector: also one-way delays and loss by direction).
///
/// Results go to stdout (the reply, the report or --json); logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
#[command(
    mut_arg("host", |a| a.help("Server address or name")),
    mut_arg("port", |a| a.help("Server UDP port (1-65535); 862 with --stamp").value_parser(parse_peer_port)
        .default_value_if("stamp", "true", Some("862"))),
    mut_arg("recv_buf", |a| a.help("Request SO_RCVBUF, e.g. 256K, 4M")),
    mut_arg("send_buf", |a| a.help("Request SO_SNDBUF, e.g. 256K, 4M")),
    mut_arg("verbose", |a| a.help("More logging (-v debug, -vv trace). RUST_LOG overrides")),
    mut_arg("quiet", |a| a.help("Less logging: -q hides the sent/recv lines, -qq also warnings")),
)]
// Which options each mode takes, as clap rules: an option given outside its
// modes is a usage error naming both, never silently ignored (defaults do not
// count: clap checks only options given on the command line). One-shot is the
// absence of a mode, so "one-shot only" reads "conflicts with every mode".
// `sized`: the modes that send probes of --size; `timed`: those that run for --duration.
#[command(group(ArgGroup::new("sized").multiple(true).args(["count", "flood", "rate", "find_rate", "pmtu"])))]
#[command(group(ArgGroup::new("measured").multiple(true).args(["count", "flood", "rate"])))]
#[command(group(ArgGroup::new("timed").multiple(true).args(["flood", "rate", "find_rate"])))]
pub struct Args {
    /// Address, family, buffers and log level, shared with the server.
    #[command(flatten)]
    pub common: Common,

    /// Payload to send (not empty: --stop sends that); `-` reads raw bytes from stdin and writes the reply raw (no newline).
    #[arg(short, long, value_name = "TEXT", default_value = "data", value_parser = parse_data)]
    pub data: String,

    /// Seconds to wait for the reply (fractions allowed).
    #[arg(short, long, value_name = "SECS", default_value = "1", allow_hyphen_values = true, value_parser = parse_positive_seconds)]
    pub timeout: Duration,

    /// Local address to send from: IP, IP:PORT or [IPv6]:PORT.
    // Written for `--help`, where a markdown escape (`\[`) would show; rustdoc
    // prints the unresolved "link" as the same plain text.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(short, long, value_name = "ADDR", value_parser = net::parse_bind_addr)]
    pub bind: Option<SocketAddr>,

    /// Send an empty datagram, which asks the server to stop.
    #[arg(long, conflicts_with_all = ["data", "count", "flood", "rate", "find_rate", "pmtu", "doctor"])]
    pub stop: bool,

    /// Ping mode: send N probes, one per --interval, and report like ping (0 = until Ctrl-C).
    #[arg(short, long, value_name = "N", group = "mode", conflicts_with = "data")]
    pub count: Option<u64>,

    /// Ping mode: seconds between probes [default: 1]; 0 sends the next as soon as the reply or its timeout comes.
    #[arg(short, long, value_name = "SECS", requires = "count", allow_hyphen_values = true, value_parser = parse_seconds,
          conflicts_with_all = ["flood", "rate", "find_rate", "pmtu", "doctor", "stop", "data"])]
    pub interval: Option<Duration>,

    /// Probe size in bytes in ping, flood, rate and --find-rate; where --pmtu starts (16 ..= 65507). Not with --stamp (its packets are 44 or 112 bytes, +8 with --tos).
    #[arg(short, long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=65507),
          requires = "sized", conflicts_with_all = ["doctor", "stop", "data", "stamp"])]
    pub size: u32,

    /// Flood mode: keep --window probes in flight per flow for --duration (closed loop).
    #[arg(short, long, group = "mode", conflicts_with = "data")]
    pub flood: bool,

    /// Flood mode: probes in flight per flow.
    #[arg(short, long, value_name = "N", default_value_t = 32, requires = "flood", value_parser = clap::value_parser!(u32).range(1..=65536),
          conflicts_with_all = ["count", "rate", "find_rate", "pmtu", "doctor", "stop", "data"])]
    pub window: u32,

    /// Rate mode: send PPS probes per second (all flows together) for --duration (open loop).
    #[arg(short, long, value_name = "PPS", group = "mode", conflicts_with = "data", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Length of a flood or rate run, in seconds [default: 5; --find-rate: 1 per step].
    #[arg(short = 'D', long, value_name = "SECS", allow_hyphen_values = true, value_parser = parse_positive_seconds,
          requires = "timed", conflicts_with_all = ["count", "pmtu", "doctor", "stop", "data"])]
    pub duration: Option<Duration>,

    /// Search the highest open-loop rate whose loss stays within --max-loss.
    #[arg(long, group = "mode", conflicts_with = "data")]
    pub find_rate: bool,

    /// Find the largest payload (from --size up) that echoes intact with don't-fragment set.
    #[arg(long, group = "mode", conflicts_with = "data")]
    pub pmtu: bool,

    /// Diagnose UDP on this host and the path to the target; exit 1 when a finding needs action.
    #[arg(long, group = "mode", conflicts_with = "data")]
    pub doctor: bool,

    /// --find-rate: the loss allowed, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, requires = "find_rate", value_parser = parse_percent,
          conflicts_with_all = ["count", "flood", "rate", "pmtu", "doctor", "stop", "data"])]
    pub max_loss: f64,

    /// Sockets (source ports) in flood and rate mode, to spread over server threads.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256),
          requires = "timed", conflicts_with_all = ["count", "pmtu", "doctor", "stop", "data"])]
    pub flows: u32,

    /// Ping, flood or rate mode as a STAMP session-sender (RFC 8762/8972), one session per flow: also one-way delays and, with a stateful reflector, loss by direction.
    #[arg(long, requires = "measured", conflicts_with_all = ["find_rate", "pmtu", "doctor", "stop", "data"])]
    pub stamp: bool,

    /// STAMP authenticated mode (HMAC-SHA-256) with the shared key in FILE: hex text or raw bytes, 16 bytes or more.
    #[arg(long, value_name = "FILE", requires = "stamp")]
    pub stamp_key: Option<PathBuf>,

    /// STAMP: PTP time stamps (Z bit set) instead of NTP.
    #[arg(long, requires = "stamp")]
    pub stamp_ptp: bool,

    /// STAMP: the session-sender identifier (RFC 8972 SSID) in every packet [default: from the process id].
    #[arg(long, value_name = "N", requires = "stamp", value_parser = clap::value_parser!(u16).range(1..))]
    pub stamp_ssid: Option<u16>,

    /// Ping, flood and rate: mark the probes with this TOS byte (0-255, 0x..) or DSCP name (EF, AF41, CS1, ...); the report says which DSCP came back. With --stamp, a Class of Service TLV also asks the reflector which way a re-mark happened.
    #[arg(long, value_name = "VALUE", requires = "measured", value_parser = crate::net::dscp::parse_tos)]
    pub tos: Option<u8>,

    /// Print the summary as one JSON object on stdout instead of the human report.
    #[arg(long, requires = "mode", conflicts_with_all = ["stop", "data"])]
    pub json: bool,

    /// Ping mode as a continuous probe: serve Prometheus metrics at http://ADDR:PORT/metrics (port 0 picks one; the URL goes to stderr).
    #[arg(long, value_name = "ADDR:PORT", requires = "count", conflicts_with_all = ["flood", "rate"], value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<SocketAddr>,

    /// Write one record per probe as it settles: NDJSON, or CSV if FILE ends in .csv; - is stdout (the report then goes to stderr).
    #[arg(long, value_name = "FILE", requires = "measured")]
    pub probes: Option<PathBuf>,

    /// After the summary, draw the RTT distribution (buckets doubling in width, p50/p99 marked), COLUMNS wide.
    #[arg(long, requires = "measured")]
    pub histogram: bool,

    /// Draw RTT over time above the RTT distribution as an SVG file.
    #[arg(long, value_name = "FILE.svg", requires = "measured")]
    pub plot: Option<PathBuf>,
}

/// Everything a measured run writes besides its summary.
impl From<&Args> for Outputs {
    fn from(args: &Args) -> Self {
        Outputs {
            json: args.json,
            metrics: args.metrics,
            probes: args.probes.clone(),
            histogram: args.histogram,
            plot: args.plot.clone(),
        }
    }
}

/// Parses `--port` for the client: a port to send to, so not 0 (the server's
/// `-p 0` means "pick a free port"; there is no such thing to send to).
fn parse_peer_port(text: &str) -> std::result::Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err("port 0 cannot be sent to: expected the server's port, 1 to 65535".to_owned()),
        Ok(port) => Ok(port),
        Err(_) => Err("expected a port number from 1 to 65535".to_owned()),
    }
}

/// Parses `--data`: any text but the empty one, which is the stop datagram —
/// a script whose variable came out empty must not stop the server by accident.
fn parse_data(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err(
            "an empty payload is the datagram that stops the server; to stop it, use --stop"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// What the client was asked to do, free of clap types.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send one payload, wait for its echo and write the echo to stdout.
    OneShot(Payload),
    /// `--stop`: send the empty datagram that asks the server to stop.
    Stop,
    /// Ping (`--count`), flood (`--flood`) or rate (`--rate`) mode.
    Measure(MeasureConfig),
    /// `--find-rate`: rate-mode steps like `config` (each step sets its own
    /// rate), searching the highest rate whose loss stays within `max_loss` percent.
    FindRate {
        /// Each step's run; its rate is a placeholder.
        config: MeasureConfig,
        /// The loss allowed, in percent.
        max_loss: f64,
    },
    /// `--pmtu`: the largest payload, from `min_size` up, that echoes intact
    /// with don't-fragment set.
    Pmtu {
        /// The smallest payload tried, in bytes (`--size`).
        min_size: usize,
    },
    /// `--doctor`: diagnose UDP on this host and the path to the target.
    Doctor,
}

/// The payload of a one-shot probe (`--data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// This text; its echo is written with a newline after it.
    Text(String),
    /// `-`: raw bytes from stdin; the echo is written raw, without a newline.
    Stdin,
}

impl Payload {
    /// The bytes to send: the text, or what `stdin` holds — refused when it is
    /// more than one UDP datagram can carry.
    pub fn bytes(&self, stdin: impl Read) -> Result<Vec<u8>> {
        match self {
            Payload::Text(text) => Ok(text.clone().into_bytes()),
            Payload::Stdin => read_at_most(stdin, net::MAX_UDP_PAYLOAD_V6),
        }
    }
}

/// How far a too-large stdin payload is counted, to report its real size: past
/// this (a pipe from `/dev/zero`), the message says "more than".
const COUNT_LIMIT: u64 = 1 << 30;

/// Reads all of `input`, keeping at most `limit` bytes (+1, to tell "too large"
/// apart from "exactly the maximum"). Too large: the rest is counted, not kept,
/// so the error gives the real size. Empty: refused, since an empty datagram
/// is the stop signal (`--stop` sends it on purpose).
fn read_at_most(mut input: impl Read, limit: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        what: "read the payload from stdin",
        source,
    };
    let mut payload = Vec::new();
    (&mut input)
        .take(limit as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(io)?;
    if payload.is_empty() {
        return Err(Error::EmptyPayload);
    }
    if payload.len() > limit {
        let rest = std::io::copy(&mut input.take(COUNT_LIMIT), &mut std::io::sink()).map_err(io)?;
        let len = payload.len() as u64 + rest;
        return Err(Error::PayloadTooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: limit,
            at_least: rest == COUNT_LIMIT,
        });
    }
    Ok(payload)
}

/// The one place a [`Command`] is built from the arguments. It cannot fail
/// (clap has already refused every conflicting combination), so
/// `Command::try_from(&args)` comes with it, with `Infallible` as its error.
///
/// The modes are one clap group and `--stop` conflicts with each, so at most
/// one of them is set; every option outside its modes was refused by clap.
impl From<&Args> for Command {
    fn from(args: &Args) -> Self {
        let stamp = args.stamp.then(|| StampConfig {
            options: StampOptions {
                key_file: args.stamp_key.clone(),
                stateful: false,
                ptp: args.stamp_ptp,
            },
            // Non-zero: some reflectors treat SSID 0 as "none".
            ssid: args
                .stamp_ssid
                .unwrap_or((std::process::id() as u16).max(1)),
        });
        // The one MeasureConfig literal; `default_secs` is `--duration`'s default.
        let measure = |mode, default_secs| MeasureConfig {
            mode,
            size: stamp
                .as_ref()
                .map_or(args.size as usize, |s| s.packet_len(args.tos)),
            timeout: args.timeout,
            duration: args.duration.unwrap_or(Duration::from_secs(default_secs)),
            flows: args.flows as usize,
            stamp: stamp.clone(),
            tos: args.tos,
        };
        let ping = args.count.map(|count| Mode::Ping {
            count: (count > 0).then_some(count),
            interval: args.interval.unwrap_or(Duration::from_secs(1)),
        });
        let flood = args.flood.then_some(Mode::Flood {
            window: args.window as usize,
        });
        let rate = args.rate.map(|pps| Mode::Rate { pps });
        if args.find_rate {
            Command::FindRate {
                config: measure(Mode::Rate { pps: 1.0 }, 1),
                max_loss: args.max_loss,
            }
        } else if args.pmtu {
            Command::Pmtu {
                min_size: args.size as usize,
            }
        } else if args.doctor {
            Command::Doctor
        } else if let Some(mode) = ping.or(flood).or(rate) {
            Command::Measure(measure(mode, 5))
        } else if args.stop {
            Command::Stop
        } else if args.data == "-" {
            Command::OneShot(Payload::Stdin)
        } else {
            Command::OneShot(Payload::Text(args.data.clone()))
        }
    }
}

/// The server and how to reach it, for every command.
impl From<&Args> for Target {
    fn from(args: &Args) -> Self {
        Target {
            host: args.common.host.clone(),
            port: args.common.port,
            family: args.common.family(),
            bind: args.bind,
            recv_buf: args.common.recv_buf,
            send_buf: args.common.send_buf,
            timeout: args.timeout,
            interface: args.common.interface.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn command(args: &[&str]) -> Command {
        let args = Args::try_parse_from([PROGRAM].iter().chain(args)).unwrap();
        Command::from(&args)
    }

    #[test]
    fn cli_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn help_shows_the_ipv6_brackets_plainly() {
        let help = Args::command().render_help().to_string();
        assert!(help.contains("IP, IP:PORT or [IPv6]:PORT"), "{help}");
    }

    #[test]
    fn without_a_mode_it_is_one_shot() {
        assert!(matches!(command(&[]), Command::OneShot(Payload::Text(t)) if t == "data"));
        assert!(matches!(
            command(&["-d", "-"]),
            Command::OneShot(Payload::Stdin)
        ));
        assert!(matches!(command(&["--stop"]), Command::Stop));
    }

    #[test]
    fn stdin_payloads_stop_at_one_datagram() {
        let max = net::MAX_UDP_PAYLOAD_V6;
        let bytes = Payload::Stdin.bytes(&vec![7u8; max][..]).unwrap();
        assert_eq!(bytes.len(), max);
        let too_large = Payload::Stdin.bytes(&vec![7u8; 70_000][..]);
        assert!(
            matches!(too_large, Err(Error::PayloadTooLarge { len, at_least: false, .. }) if len == 70_000)
        );
        let empty = Payload::Stdin.bytes(&b""[..]);
        assert!(matches!(empty, Err(Error::EmptyPayload)), "{empty:?}");
        let text = Payload::Text("hi".into()).bytes(&b"ignored"[..]).unwrap();
        assert_eq!(text, b"hi");
    }

    #[test]
    fn measured_modes_get_their_defaults() {
        let Command::Measure(ping) = command(&["-c", "0"]) else {
            panic!("not measured")
        };
        let every_second = Duration::from_secs(1);
        assert_eq!(
            ping.mode,
            Mode::Ping {
                count: None,
                interval: every_second
            }
        );
        assert_eq!((ping.size, ping.timeout, ping.flows), (64, every_second, 1));
        assert_eq!(ping.duration, Duration::from_secs(5));
        let Command::Measure(flood) = command(&["-f", "-w", "8", "--flows", "2"]) else {
            panic!("not measured")
        };
        assert_eq!((flood.mode, flood.flows), (Mode::Flood { window: 8 }, 2));
        let Command::Measure(rate) = command(&["-r", "100", "-D", "2", "-s", "100"]) else {
            panic!("not measured")
        };
        assert_eq!(rate.mode, Mode::Rate { pps: 100.0 });
        assert_eq!((rate.size, rate.duration), (100, Duration::from_secs(2)));
    }

    #[test]
    fn stamp_runs_in_every_measured_mode_with_its_packet_length() {
        let Command::Measure(flood) = command(&["--stamp", "-f", "--flows", "2", "--tos", "EF"])
        else {
            panic!("not measured")
        };
        assert_eq!((flood.mode, flood.flows), (Mode::Flood { window: 32 }, 2));
        assert_eq!((flood.size, flood.tos), (52, Some(0xb8)));
        let stamp = flood.stamp.expect("a STAMP session");
        assert_ne!(stamp.ssid, 0);
        let Command::Measure(rate) = command(&[
            "--stamp",
            "-r",
            "10",
            "--stamp-key",
            "k",
            "--stamp-ssid",
            "7",
        ]) else {
            panic!("not measured")
        };
        assert_eq!((rate.size, rate.tos), (112, None));
        assert_eq!(rate.stamp.map(|s| s.ssid), Some(7));
        let Command::Measure(ping) = command(&["-c", "1", "--tos", "AF41"]) else {
            panic!("not measured")
        };
        assert_eq!((ping.size, ping.tos, ping.stamp), (64, Some(34 << 2), None));
        // The packet length is STAMP's: --size is refused with it.
        assert!(Args::try_parse_from([PROGRAM, "--stamp", "-c", "1", "-s", "100"]).is_err());
    }

    #[test]
    fn find_rate_steps_last_one_second_unless_told() {
        let Command::FindRate { config, max_loss } = command(&["--find-rate", "--max-loss", "1%"])
        else {
            panic!("not find-rate")
        };
        assert_eq!((config.duration, max_loss), (Duration::from_secs(1), 1.0));
        let Command::FindRate { config, .. } = command(&["--find-rate", "-D", "3"]) else {
            panic!("not find-rate")
        };
        assert_eq!(config.duration, Duration::from_secs(3));
    }

    #[test]
    fn the_target_takes_the_shared_flags() {
        let args = Args::parse_from([PROGRAM, "-H", "::1", "-p", "7", "-6", "-b", "[::1]:0"]);
        let target = Target::from(&args);
        assert_eq!((target.host.as_str(), target.port), ("::1", 7));
        assert_eq!(target.family, net::Family::V6);
        assert_eq!(target.bind, Some("[::1]:0".parse().unwrap()));
    }
}

#[cfg(test)]
mod applicability {
    use super::*;

    /// Each mode's flags, and each option given explicitly.
    const MODES: [(&str, &[&str]); 8] = [
        ("one-shot", &[]),
        ("stop", &["--stop"]),
        ("ping", &["-c", "3"]),
        ("flood", &["-f"]),
        ("rate", &["-r", "100"]),
        ("find-rate", &["--find-rate"]),
        ("pmtu", &["--pmtu"]),
        ("doctor", &["--doctor"]),
    ];
    const OPTIONS: [(&str, &[&str], &str); 12] = [
        ("-d", &["-d", "x"], "one-shot"),
        ("-i", &["-i", "0.5"], "ping"),
        ("-s", &["-s", "100"], "ping flood rate find-rate pmtu"),
        ("-w", &["-w", "8"], "flood"),
        ("-D", &["-D", "2"], "flood rate find-rate"),
        ("--flows", &["--flows", "2"], "flood rate find-rate"),
        ("--max-loss", &["--max-loss", "1"], "find-rate"),
        ("--tos", &["--tos", "EF"], "ping flood rate"),
        ("--stamp", &["--stamp"], "ping flood rate"),
        (
            "--json",
            &["--json"],
            "ping flood rate find-rate pmtu doctor",
        ),
        (
            "-t",
            &["-t", "2"],
            "one-shot stop ping flood rate find-rate pmtu doctor",
        ),
        (
            "-b",
            &["-b", "127.0.0.1"],
            "one-shot stop ping flood rate find-rate pmtu doctor",
        ),
    ];

    /// Every option is accepted in exactly the modes that use it, and refused
    /// with a usage error (exit 2) everywhere else.
    #[test]
    fn options_are_accepted_only_in_the_modes_that_use_them() {
        let mut wrong = Vec::new();
        for (option, flags, used_in) in OPTIONS {
            for (mode, mode_flags) in MODES {
                let argv = [PROGRAM].iter().chain(mode_flags).chain(flags);
                let parsed = Args::try_parse_from(argv);
                let expected = used_in.split(' ').any(|m| m == mode);
                if parsed.is_ok() != expected {
                    wrong.push(format!("{option} in {mode}: accepted = {}", parsed.is_ok()));
                }
                if let Err(e) = parsed {
                    assert_eq!(e.exit_code(), 2, "{option} in {mode}: {e}");
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// Modes exclude each other, and a conflict names both options.
    #[test]
    fn two_modes_are_refused_naming_both() {
        for (i, (a, a_flags)) in MODES.iter().enumerate().skip(1) {
            for (b, b_flags) in MODES.iter().skip(i + 1) {
                let argv = [PROGRAM].iter().chain(*a_flags).chain(*b_flags);
                let e = Args::try_parse_from(argv).expect_err(&format!("{a} + {b}"));
                assert_eq!(
                    e.kind(),
                    clap::error::ErrorKind::ArgumentConflict,
                    "{a} + {b}: {e}"
                );
            }
        }
        let e = Args::try_parse_from([PROGRAM, "--data", "x", "--size", "100"]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--data") && text.contains("--size"), "{text}");
    }

    #[test]
    fn an_empty_payload_and_port_0_are_usage_errors() {
        let e = Args::try_parse_from([PROGRAM, "--data", ""]).unwrap_err();
        assert!(e.to_string().contains("--stop"), "{e}");
        let e = Args::try_parse_from([PROGRAM, "-p", "0"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
        assert!(Args::try_parse_from([PROGRAM, "-p", "1"]).is_ok());
        // -i 0 is documented: the next probe as soon as the reply comes.
        assert!(Args::try_parse_from([PROGRAM, "-c", "3", "-i", "0"]).is_ok());
    }
}
