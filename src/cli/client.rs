//! `udp-echo-client`'s command line: the clap [`Args`] and `--help`'s mode
//! table. `parse.rs` reads and checks it; `command.rs` converts it to a
//! [`Command`] and a [`Target`](crate::client::Target) (the one-shot
//! [`Payload`] and how its bytes are read).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use super::Common;
use crate::net;
use crate::units::{parse_percent, parse_positive_seconds, parse_rate, parse_seconds};

/// The client binary's name, in `--help` and in every log line.
pub const PROGRAM: &str = "udp-echo-client";

/// The `--help` headings, in the order they appear.
const TARGET: &str = "Target";
const MODE: &str = "Mode";
const PROBE: &str = "Probe";
const TIMING: &str = "Timing and load";
const OUTPUT: &str = "Output";
const STAMP: &str = "STAMP";
const LOGGING: &str = "Logging";

/// Checks a UDP echo server with one datagram, or measures the path to it.
///
/// One datagram checked byte for byte, or ping, flood and rate measurements of
/// loss, reordering and latency. With --stamp, the target is a STAMP session-reflector, and the report adds
/// one-way delays and loss by direction. Results go to stdout (the reply, the
/// report or --json); logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, max_term_width = 100, after_long_help = long_help_tail())]
#[command(
    mut_arg("host", |a| a.help_heading(TARGET).display_order(1).help("Server address or name, or HOST:PORT")
        .long_help("Server address or name; HOST:PORT or [IPv6]:PORT sets the port too (as TARGET does)")),
    mut_arg("port", |a| a.help_heading(TARGET).display_order(2)
        .help("Server UDP port; 862 with --stamp")
        .long_help("Server UDP port (1-65535); 862 with --stamp. A port in TARGET or -H must not differ from it.")
        .value_parser(parse_peer_port)
        .default_value_if("stamp", "true", Some("862"))),
    mut_arg("ipv4", |a| a.help_heading(TARGET).display_order(3)),
    mut_arg("ipv6", |a| a.help_heading(TARGET).display_order(4)),
    mut_arg("interface", |a| a.help_heading(TARGET).display_order(7)),
    mut_arg("recv_buf", |a| a.help_heading(TARGET).display_order(5).help("Request SO_RCVBUF, e.g. 256K, 4M")),
    mut_arg("send_buf", |a| a.help_heading(TARGET).display_order(6).help("Request SO_SNDBUF, e.g. 256K, 4M")),
    mut_arg("verbose", |a| a.help_heading(LOGGING).help("More logging (-v debug, -vv trace). RUST_LOG overrides")),
    mut_arg("quiet", |a| a.help_heading(LOGGING).help("Less logging: -q hides the sent/recv lines, -qq also warnings")),
)]
// Which options each mode takes, as clap rules: an option given outside its
// modes is a usage error naming both, never silently ignored (defaults do not
// count: clap checks only options given on the command line). One-shot is the
// absence of a mode, so "one-shot only" reads "conflicts with every mode".
// `sized`: the modes that send probes of --size; `timed`: those that run for --duration.
// `--help` shows the same rules as a table (TAKEN_BY), checked against these.
#[command(group(ArgGroup::new("sized").multiple(true).args(["count", "flood", "rate", "find_rate", "pmtu", "targets"])))]
#[command(group(ArgGroup::new("probing").multiple(true).args(["count", "flood", "rate", "targets"])))]
#[command(group(ArgGroup::new("paced").multiple(true).args(["count", "targets"])))]
#[command(group(ArgGroup::new("measured").multiple(true).args(["count", "flood", "rate"])))]
#[command(group(ArgGroup::new("timed").multiple(true).args(["flood", "rate", "find_rate"])))]
pub struct Args {
    /// Address, family, buffers and log level, shared with the server.
    #[command(flatten)]
    pub common: Common,

    /// The server, as ping and nc take it: HOST, HOST:PORT or [IPv6]:PORT.
    ///
    /// The same as -H HOST (and -p PORT); a bare IPv6 address such as ::1 is
    /// a host. Not together with -H; a port here and a different -p is a
    /// usage error.
    // `[IPv6]` is written for `--help` (see `bind` below).
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(value_name = "TARGET", conflicts_with = "host", help_heading = TARGET, display_order = 0)]
    pub target: Option<String>,

    /// Local address to send from: IP, IP:PORT or [IPv6]:PORT.
    // Written for `--help`, where a markdown escape (`\[`) would show; rustdoc
    // prints the unresolved "link" as the same plain text.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(short, long, value_name = "ADDR", value_parser = net::parse_bind_addr, help_heading = TARGET)]
    pub bind: Option<SocketAddr>,

    /// Send an empty datagram, which asks the server to stop.
    #[arg(long, help_heading = MODE, conflicts_with_all = ["data", "count", "flood", "rate", "find_rate", "pmtu", "doctor", "targets"])]
    pub stop: bool,

    /// Ping: send N probes, one per --interval (0 = until Ctrl-C).
    ///
    /// Ping mode: one line per reply and ping's summary (loss, duplicates,
    /// reordering, corruption, RTT min/avg/max/mdev and percentiles).
    #[arg(short, long, value_name = "N", group = "mode", conflicts_with = "data", help_heading = MODE)]
    pub count: Option<u64>,

    /// Flood: keep --window probes in flight per flow (closed loop).
    ///
    /// For --duration: the round trips per second the path and server sustain.
    #[arg(short, long, group = "mode", conflicts_with = "data", help_heading = MODE)]
    pub flood: bool,

    /// Rate: send PPS probes per second for --duration (open loop).
    ///
    /// All flows together, paced; the summary compares the achieved send rate
    /// with the requested one.
    #[arg(short, long, value_name = "PPS", group = "mode", conflicts_with = "data", value_parser = parse_rate, help_heading = MODE)]
    pub rate: Option<f64>,

    /// Search the highest open-loop rate whose loss stays within --max-loss.
    #[arg(long, group = "mode", conflicts_with = "data", help_heading = MODE)]
    pub find_rate: bool,

    /// Find the largest payload that echoes intact with don't-fragment set.
    ///
    /// Starts at --size and searches up to 65507 bytes.
    #[arg(long, group = "mode", conflicts_with = "data", help_heading = MODE)]
    pub pmtu: bool,

    /// Fleet: probe every target of a file_sd FILE or a DNS name, for Prometheus.
    ///
    /// SOURCE is a Prometheus file_sd file (JSON, or YAML by .yml/.yaml),
    /// dns+srv:NAME or dns+a:NAME:PORT; needs --metrics. Each target is probed
    /// every -i (1 s) until stopped; labels __param_mode, __param_interval,
    /// __param_size, __param_tos and __param_timeout override the command
    /// line per group. The file is re-read when it changes and on SIGHUP.
    /// docs/fleet.md has the format and the metrics.
    #[arg(long, value_name = "SOURCE", group = "mode", requires = "metrics", value_parser = parse_targets,
          conflicts_with_all = ["data", "target", "host", "port", "bind", "interface"], help_heading = MODE)]
    pub targets: Option<crate::client::fleet::TargetSource>,

    /// Fleet: probe each target N times, then keep serving the final counts.
    ///
    /// For a sweep of the fleet, or a test: once every probe is answered or
    /// past its timeout, /metrics holds each target's final figures until
    /// the prober is stopped. Without it, targets are probed until stopped.
    #[arg(long, value_name = "N", requires = "targets", conflicts_with_all = ["stop", "count", "flood", "rate", "find_rate", "pmtu", "doctor", "list_targets"], value_parser = clap::value_parser!(u64).range(1..),
          help_heading = MODE)]
    pub rounds: Option<u64>,

    /// Fleet: a label every series carries, e.g. source_node=$(NODE_NAME).
    ///
    /// Repeatable. A group of --targets may not set the same label.
    #[arg(long, value_name = "NAME=VALUE", requires = "targets", conflicts_with_all = ["stop", "count", "flood", "rate", "find_rate", "pmtu", "doctor", "list_targets"], value_parser = crate::client::fleet::spec::parse_constant_label,
          help_heading = OUTPUT)]
    pub label: Vec<(String, String)>,

    /// Fleet: seconds between re-reads of --targets and its names' lookups.
    #[arg(long, value_name = "SECS", default_value = "30", requires = "targets", conflicts_with_all = ["stop", "count", "flood", "rate", "find_rate", "pmtu", "doctor", "list_targets"], value_parser = parse_positive_seconds,
          help_heading = TIMING)]
    pub refresh: Duration,

    /// Diagnose UDP on this host and the path to the target.
    ///
    /// Each finding comes with a fix; exit 1 when one needs action.
    #[arg(long, group = "mode", conflicts_with = "data", help_heading = MODE)]
    pub doctor: bool,

    /// Print the targets SOURCE gives, one per line, and exit.
    ///
    /// SOURCE as --targets takes it: dns+srv:NAME (every SRV record, as
    /// HOST:PORT), dns+a:NAME:PORT (every A and AAAA address) or a file_sd
    /// file. Exit 2 when the source gives nothing (no such name, no answer).
    #[arg(long, value_name = "SOURCE", group = "mode", conflicts_with_all = ["data", "metrics", "target", "host"],
          value_parser = crate::client::fleet::TargetSource::parse, help_heading = MODE)]
    pub list_targets: Option<crate::client::fleet::TargetSource>,

    /// One-shot payload; - reads it from stdin.
    ///
    /// Sent when no mode is given; not empty (--stop sends that). With -, the
    /// reply is written raw (no newline).
    #[arg(short, long, value_name = "TEXT", default_value = "data", value_parser = parse_data, help_heading = PROBE)]
    pub data: String,

    /// Probe size in bytes (16-65507).
    ///
    /// In ping, flood, rate and --find-rate; where --pmtu starts. With
    /// --stamp the packets (44 or 112 bytes, +8 with --tos, +20 more
    /// authenticated) grow to BYTES with an Extra Padding TLV.
    #[arg(short, long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=65507),
          requires = "sized", conflicts_with_all = ["doctor", "stop", "data"], help_heading = PROBE)]
    pub size: u32,

    /// `--size` as given with `--stamp` (checked against the STAMP packet's
    /// own length); `None`: the STAMP packet's own length.
    #[arg(skip)]
    pub stamp_size: Option<u32>,

    /// Whether `--size` was on the command line (the fleet's default for
    /// every target; else each target's mode picks its own).
    #[arg(skip)]
    pub size_given: bool,

    /// Mark the probes with this TOS byte or DSCP name (EF, AF41, CS1, ...).
    ///
    /// Ping, flood and rate; a TOS byte is 0-255 or 0x... The report says which
    /// DSCP came back. With --stamp, a Class of Service TLV also asks the reflector
    /// which way a re-mark happened.
    #[arg(long, value_name = "VALUE", requires = "probing", value_parser = crate::net::dscp::parse_tos, help_heading = PROBE)]
    pub tos: Option<u8>,

    /// Seconds to wait for a reply (fractions allowed).
    ///
    /// In the measured modes, a probe unanswered this long is lost.
    #[arg(short, long, value_name = "SECS", default_value = "1", allow_hyphen_values = true, value_parser = parse_positive_seconds,
          help_heading = TIMING)]
    pub timeout: Duration,

    /// Ping and fleet: seconds between probes [default: 1].
    ///
    /// 0 sends the next as soon as the reply or its timeout comes (ping; the
    /// fleet's shortest is 0.01).
    #[arg(short, long, value_name = "SECS", requires = "paced", allow_hyphen_values = true, value_parser = parse_seconds,
          conflicts_with_all = ["flood", "rate", "find_rate", "pmtu", "doctor", "stop", "data"], help_heading = TIMING)]
    pub interval: Option<Duration>,

    /// Length of a flood or rate run in seconds [default: 5].
    ///
    /// A --find-rate step lasts 1 s unless told.
    #[arg(short = 'D', long, value_name = "SECS", allow_hyphen_values = true, value_parser = parse_positive_seconds,
          requires = "timed", conflicts_with_all = ["count", "pmtu", "doctor", "stop", "data"], help_heading = TIMING)]
    pub duration: Option<Duration>,

    /// Flood: probes in flight per flow.
    #[arg(short, long, value_name = "N", default_value_t = 32, requires = "flood", value_parser = clap::value_parser!(u32).range(1..=65536),
          conflicts_with_all = ["count", "rate", "find_rate", "pmtu", "doctor", "stop", "data", "targets"], help_heading = TIMING)]
    pub window: u32,

    /// Sockets (source ports) in flood and rate mode.
    ///
    /// One thread each, to spread the load over the threads of a --threads
    /// server.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256),
          requires = "timed", conflicts_with_all = ["count", "pmtu", "doctor", "stop", "data"], help_heading = TIMING)]
    pub flows: u32,

    /// --find-rate: the loss allowed, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, requires = "find_rate", value_parser = parse_percent,
          conflicts_with_all = ["count", "flood", "rate", "pmtu", "doctor", "stop", "data", "targets"], help_heading = TIMING)]
    pub max_loss: f64,

    /// Print the summary as one JSON object on stdout.
    ///
    /// Instead of the human report; docs/json.md describes its fields.
    #[arg(long, requires = "mode", conflicts_with_all = ["stop", "data", "targets"], help_heading = OUTPUT)]
    pub json: bool,

    /// Write one record per probe to FILE (.csv: CSV, else NDJSON; -: stdout).
    ///
    /// Records are written as probes settle; with -, the report goes to stderr.
    /// A record is ~56 bytes (CSV) or ~135 (NDJSON): a flood writes hundreds
    /// of MB in seconds, and a warning at the start says how much to expect.
    #[arg(long, value_name = "FILE", requires = "measured", help_heading = OUTPUT)]
    pub probes: Option<PathBuf>,

    /// After the summary, draw the RTT distribution in the terminal.
    ///
    /// Bars on a log scale with their counts, p50 and p99 marked, COLUMNS
    /// wide; after --json, on stderr.
    #[arg(long, requires = "measured", help_heading = OUTPUT)]
    pub histogram: bool,

    /// Draw RTT over time and the RTT distribution as an SVG file.
    #[arg(long, value_name = "FILE.svg", requires = "measured", value_parser = parse_svg_path, help_heading = OUTPUT)]
    pub plot: Option<PathBuf>,

    /// Ping and fleet: serve Prometheus metrics at http://ADDR:PORT/metrics.
    ///
    /// Ping mode as a continuous probe, or the fleet's (--targets); port 0
    /// picks one, and the URL goes to stderr. With no TARGET and no mode: an
    /// exporter answering /probe?target=HOST:PORT with one burst each, as
    /// blackbox_exporter does.
    // Without -c or --targets, only the exporter (no TARGET, -H or -p):
    // checked after parsing (`check_exporter`).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with_all = ["flood", "rate", "find_rate", "pmtu", "doctor", "stop", "data"],
          value_parser = crate::metrics::parse_addr, help_heading = OUTPUT)]
    pub metrics: Option<SocketAddr>,

    /// The /probe exporter: probe only targets inside CIDR (repeatable).
    ///
    /// Whoever reaches the exporter can make it send UDP to any address it
    /// names; with this, a target outside every CIDR (a name: its resolved
    /// address) is refused with 403 and nothing is sent. Default: any.
    #[arg(long, value_name = "CIDR", value_parser = crate::net::cidr::parse_cidr,
          requires = "metrics", conflicts_with = "count", help_heading = OUTPUT)]
    pub probe_allow: Vec<crate::net::cidr::Cidr>,

    /// Run ping, flood or rate as a STAMP session-sender (RFC 8762/8972).
    ///
    /// One session per flow: also one-way delays and, with a stateful reflector,
    /// loss by direction. The port defaults to 862.
    #[arg(long, requires = "probing", conflicts_with_all = ["find_rate", "pmtu", "doctor", "stop", "data"], help_heading = STAMP)]
    pub stamp: bool,

    /// Authenticated mode (HMAC-SHA-256) with the shared key in FILE.
    ///
    /// The key is hex text or raw bytes, 16 bytes or more.
    #[arg(long, value_name = "FILE", requires = "stamp", help_heading = STAMP)]
    pub stamp_key: Option<PathBuf>,

    /// PTP time stamps (Z bit set) instead of NTP.
    #[arg(long, requires = "stamp", help_heading = STAMP)]
    pub stamp_ptp: bool,

    /// The RFC 8972 session-sender identifier [default: from the process id].
    ///
    /// 1-65535, in every packet; all flows share it.
    #[arg(long, value_name = "N", requires = "stamp", value_parser = clap::value_parser!(u16).range(1..), help_heading = STAMP)]
    pub stamp_ssid: Option<u16>,

    /// Ask for each previous reply's transmit time (Follow-Up Telemetry TLV).
    ///
    /// RFC 8972 §4.7: a stateful reflector reports in each reply when it sent
    /// the one before (ours: the kernel's transmit stamp). The summary then
    /// has the reflector's residence times and reverse delays without them.
    ///
    /// Not with --targets: the fleet exports no residence times.
    #[arg(long, requires = "stamp", conflicts_with_all = ["targets"], help_heading = STAMP)]
    pub stamp_follow_up: bool,

    /// Send these TLVs with every packet and report their answers.
    ///
    /// dm (Direct Measurement: the reflector's counters against ours),
    /// location (the addresses and ports the reflector saw: a NAT shows),
    /// access (an Access Report, acknowledged or not), all (those three),
    /// dna (RFC 9503 Destination Node Address: the target, recognised or
    /// not), return-path=ADDR (RFC 9503 Return Path: give our own address;
    /// honoured, or U and replied to the source); comma-separated.
    /// A reflector that does not answer one flags it U: reported, not an
    /// error. Not with --targets: the fleet exports no TLV answers.
    #[arg(long, value_name = "LIST", value_parser = crate::client::stamp::SenderTlvs::parse, requires = "stamp",
          conflicts_with_all = ["targets"], help_heading = STAMP)]
    pub stamp_tlv: Option<crate::client::stamp::SenderTlvs>,
}

/// The modes, in the order of the columns of `--help`'s table.
const MODE_NAMES: [&str; 9] = [
    "one-shot",
    "stop",
    "ping",
    "flood",
    "rate",
    "find-rate",
    "pmtu",
    "doctor",
    "fleet",
];

/// Which options each mode takes, as `--help` shows them (docs/client.md has
/// the same table); a test checks clap's rules against it.
const TAKEN_BY: [(&str, &str); 12] = [
    ("-d, --data", "one-shot"),
    ("-i, --interval", "ping fleet"),
    ("-s, --size", "ping flood rate find-rate pmtu fleet"),
    ("-w, --window", "flood"),
    ("-D, --duration, --flows", "flood rate find-rate"),
    ("--max-loss", "find-rate"),
    ("--json", "ping flood rate find-rate pmtu doctor"),
    ("--metrics", "ping fleet"),
    ("--refresh", "fleet"),
    ("--tos, --stamp, --stamp-*", "ping flood rate fleet"),
    ("--stamp-tlv, --stamp-follow-up", "ping flood rate"),
    ("--probes, --histogram, --plot", "ping flood rate"),
];

/// What `--help` prints after the options: the modes and which options
/// each takes, the exit status and a few examples (`-h` leaves it out).
fn long_help_tail() -> String {
    let mut text = mode_table();
    text.push_str(
        "
Exit status: 0 every probe came back intact; 1 no reply, a wrong reply or
refused (--doctor: a finding needs action); 2 usage error or local problem
(cannot resolve, bind or create a file); 130 interrupted (--find-rate).

Examples:
  udp-echo-client 192.0.2.7:7 --data hello        one probe to port 7
  udp-echo-client example.net -c 5 -i 0.2         ping: five probes, 0.2 s apart
  udp-echo-client [::1]:9999 -f -D 3 --histogram  flood for 3 s, then the distribution
  udp-echo-client -r 20000 -D 2 --flows 2 --json  open loop, the summary as JSON",
    );
    text
}

/// The modes and which options each takes, as a plain-text table (for
/// `--help` and the man page's MODES).
pub(crate) fn mode_table() -> String {
    let mut text = String::from(
        "Modes (at most one; with none, one datagram is sent and its echo printed):
  (none)         one-shot: send --data, check the echo byte for byte, print it
  --stop         send an empty datagram, which asks the server to stop
  -c N           ping: N probes, one per --interval, a line each and ping's summary
  -f             flood: --window probes in flight per flow for --duration (closed loop)
  -r PPS         rate: PPS probes per second for --duration (open loop)
  --find-rate    the highest rate whose loss stays within --max-loss
  --pmtu         the largest payload that echoes intact with don't-fragment set
  --doctor       diagnose UDP on this host and the path to the target
  --list-targets print the targets a dns+srv:, dns+a: or file source gives
  --metrics A:P  with no TARGET and no mode: the /probe exporter (blackbox style)
  --targets SRC  fleet: probe every target of a file_sd file or DNS name for
                 Prometheus, until stopped (with --metrics; docs/fleet.md)

Options each mode takes (any other is a usage error, exit 2):
",
    );
    let label_width = 32;
    text.push_str(&format!("{:label_width$}", ""));
    text.push_str(&MODE_NAMES.join("  "));
    text.push('\n');
    for (label, modes) in TAKEN_BY {
        let mut row = format!("  {label:<0$}", label_width - 2);
        for (i, mode) in MODE_NAMES.iter().enumerate() {
            // The mark sits under the middle of its column's name.
            let mark = if modes.split(' ').any(|m| m == *mode) {
                "x"
            } else {
                ""
            };
            let start = label_width + MODE_NAMES[..i].iter().map(|m| m.len() + 2).sum::<usize>();
            let at = start + mode.len().saturating_sub(1) / 2;
            if !mark.is_empty() {
                row.push_str(&format!("{:1$}", "", at - row.len()));
                row.push_str(mark);
            }
        }
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text.push_str("  TARGET, -H, -p, -b, --interface: every mode but fleet\n");
    text.push_str("  -4, -6, -t, buffers, -v, -q: every mode\n");
    text
}

mod command;
mod parse;
pub use command::{Command, Payload};
use parse::{parse_data, parse_peer_port, parse_svg_path, parse_targets};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod applicability;
