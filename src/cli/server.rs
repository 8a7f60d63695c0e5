//! `udp-echo-server`'s command line and its conversion to a [`ServerConfig`].

use std::time::Duration;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::Common;
use crate::server::guard::{self, Cidr, GuardConfig, RatePrefix};
use crate::server::{DEFAULT_BATCH, ServerConfig, StopPolicy};
use crate::stamp::StampOptions;
use crate::units::parse_stats_interval;

/// The server binary's name, in `--help` and in every log line.
pub const PROGRAM: &str = "udp-echo-server";

/// The `--help` headings, in the order they appear.
const ADDRESS: &str = "Address";
const ECHO: &str = "Echo";
const GUARD: &str = "Guard";
const STAMP: &str = "STAMP";
const SERVICE: &str = "Service";
const LOGGING: &str = "Logging";

/// A UDP echo server (RFC 862): every datagram goes back, byte for byte, to its sender.
///
/// Prints `listening on ADDR:PORT` on stdout once bound; logs go to stderr.
/// Stops on SIGINT, SIGTERM or an empty datagram (see --stop-on-empty).
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
#[command(
    mut_arg("host", |a| a.help_heading(ADDRESS).help("Address or name to bind; :: or 0.0.0.0 for all")
        .long_help("Address or name to bind; 0.0.0.0 or :: for all interfaces")),
    mut_arg("port", |a| a.help_heading(ADDRESS).help("UDP port; 0 picks a free one; 862 with --stamp")
        .long_help("UDP port; 0 picks a free one (read it from the `listening on` line); 862 with --stamp")
        .default_value_if("stamp", "true", Some("862"))),
    mut_arg("ipv4", |a| a.help_heading(ADDRESS)),
    mut_arg("ipv6", |a| a.help_heading(ADDRESS)),
    mut_arg("interface", |a| a.help_heading(ADDRESS)),
    mut_arg("recv_buf", |a| a.help_heading(ECHO).help("Request SO_RCVBUF, e.g. 4096, 256K, 4M")
        .long_help("Request SO_RCVBUF, e.g. 4096, 256K, 4M (K/M/G are powers of 1024); capped by net.core.rmem_max")),
    mut_arg("send_buf", |a| a.help_heading(ECHO).help("Request SO_SNDBUF, like --recv-buf")
        .long_help("Request SO_SNDBUF, like --recv-buf; capped by net.core.wmem_max")),
    mut_arg("verbose", |a| a.help_heading(LOGGING).help("More logging: -v shows every datagram (debug), -vv trace")
        .long_help("More logging: -v shows every datagram (debug), -vv trace. RUST_LOG overrides")),
    mut_arg("quiet", |a| a.help_heading(LOGGING).help("Less logging: -q warnings only, -qq errors only")),
)]
pub struct Args {
    /// Address, family, buffers and log level, shared with the client.
    #[command(flatten)]
    pub common: Common,

    /// Bind one socket without SO_REUSEADDR/SO_REUSEPORT.
    ///
    /// The kernel refuses any co-binder; --threads share the one socket.
    #[arg(long, help_heading = ADDRESS)]
    pub exclusive: bool,

    /// Echo threads, one socket each (SO_REUSEPORT).
    ///
    /// With --exclusive, N threads share one socket.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256), help_heading = ECHO)]
    pub threads: u32,

    /// Datagrams per syscall: 1 = one recv_from/send_to each.
    ///
    /// More = recvmmsg/sendmmsg batches (with UDP GRO: buffers of up to 64 KiB).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..=1024),
          help_heading = ECHO)]
    pub batch: u32,

    /// Don't use UDP GRO/GSO even where the kernel has it.
    ///
    /// GRO receives a burst as one buffer; GSO echoes it with one segmented
    /// send.
    #[arg(long, help_heading = ECHO)]
    pub no_gro: bool,

    /// Who may stop the server with an empty datagram; others get it echoed.
    #[arg(long, value_name = "WHO", value_enum, default_value_t = StopOnEmpty::Loopback, help_heading = ECHO)]
    pub stop_on_empty: StopOnEmpty,

    /// Answer only sources in this network (repeatable), e.g. 192.0.2.0/24.
    ///
    /// IPv6 networks too, e.g. 2001:db8::/32.
    #[arg(long, value_name = "CIDR", value_parser = guard::parse_cidr, help_heading = GUARD)]
    pub allow: Vec<Cidr>,

    /// Per-source budget in datagrams/s; excess is dropped.
    ///
    /// The burst allowed is one second's worth. A source is an IPv4
    /// address or an IPv6 /64 (see --rate-limit-prefix).
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u32).range(1..), help_heading = GUARD)]
    pub rate_limit: Option<u32>,

    /// What one --rate-limit budget covers: IPv4 and IPv6 prefix lengths.
    ///
    /// E.g. 24,48; IPv4-mapped sources count as IPv4. The default budgets a
    /// single IPv4 address or an IPv6 /64.
    #[arg(long, value_name = "V4,V6", default_value = "32,64", requires = "rate_limit",
          value_parser = guard::parse_rate_prefix, help_heading = GUARD)]
    pub rate_limit_prefix: RatePrefix,

    /// Also answer source ports 0-1023, 1900, 5353 and 11211.
    ///
    /// Turns the loop guard off: services on these ports may answer an echo,
    /// and loop.
    #[arg(long, help_heading = GUARD)]
    pub allow_service_ports: bool,

    /// Also answer a peer that keeps sending back what it was sent.
    ///
    /// Turns echo-loop detection off.
    #[arg(long, help_heading = GUARD)]
    pub no_loop_detect: bool,

    /// Near-copy ping-pong datagrams in a row one peer may cost before a cool-down.
    ///
    /// Such a peer echoes what it was sent with a few bytes changed per
    /// bounce; 0: no budget.
    #[arg(long, value_name = "N", default_value_t = crate::server::guard::loop_detect::NEAR_COPY_BUDGET, help_heading = GUARD)]
    pub near_copy_budget: u32,

    /// Answer STAMP test packets (RFC 8762 session-reflector) instead of echoing.
    ///
    /// TWAMP-Light too; port 862 unless --port.
    #[arg(long, help_heading = STAMP)]
    pub stamp: bool,

    /// Authenticated mode (HMAC-SHA-256) with the shared key in FILE.
    ///
    /// The key is hex text or raw bytes, 16 bytes or more.
    #[arg(long, value_name = "FILE", requires = "stamp", help_heading = STAMP)]
    pub stamp_key: Option<PathBuf>,

    /// Authenticated mode with a key per SSID from DIR, reloaded on SIGHUP.
    ///
    /// DIR holds ssid-N.key (N the SSID, decimal) and optionally default.key
    /// for every other SSID; each file as for --stamp-key. A request whose
    /// SSID has no key is dropped as malformed. SIGHUP rereads DIR (instead
    /// of stopping); a reload with a bad file keeps the keys in use.
    #[arg(long, value_name = "DIR", requires = "stamp", conflicts_with = "stamp_key", help_heading = STAMP)]
    pub stamp_key_dir: Option<PathBuf>,

    /// Number replies per session, to tell forward from reverse loss.
    ///
    /// A session is a sender address and SSID.
    #[arg(long, requires = "stamp", help_heading = STAMP)]
    pub stamp_stateful: bool,

    /// PTP time stamps (Z bit set) instead of NTP.
    #[arg(long, requires = "stamp", help_heading = STAMP)]
    pub stamp_ptp: bool,

    /// What to do with RFC 8972 TLVs after the base packet.
    ///
    /// process (default): fill in the understood ones, flag U, M, I as the
    /// RFC says; ignore: copy them back untouched, as a reflector without
    /// TLV support does (for testing senders).
    #[arg(long, value_name = "MODE", value_parser = ["process", "ignore"], default_value = "process", requires = "stamp", help_heading = STAMP)]
    pub tlv_mode: String,

    /// What a Location TLV may reveal of the request as received.
    ///
    /// all (default): source and destination address and port; none; or a
    /// list of src-ip, src-port, dst-ip, dst-port, ips, ports. Withheld
    /// fields come back zero.
    #[arg(long, value_name = "FIELDS", default_value = "all", value_parser = crate::stamp::location::Disclosure::parse, requires = "stamp", help_heading = STAMP)]
    pub stamp_location: crate::stamp::location::Disclosure,

    /// Let a Return Path TLV send replies to addresses in CIDR (repeatable).
    ///
    /// RFC 9503 §4: a Return Address sub-TLV asks for the reply at another
    /// address, which lets one forged packet aim replies anywhere. None is
    /// allowed by default: such TLVs come back flagged U and the reply goes
    /// to the source. Inside CIDR the reply goes there (same port).
    #[arg(long, value_name = "CIDR", value_parser = crate::net::cidr::parse_cidr, requires = "stamp", help_heading = STAMP)]
    pub stamp_return_path_allow: Vec<crate::net::cidr::Cidr>,

    /// The ECN a reply goes with when a Class of Service TLV asks (EC1).
    ///
    /// not-ect (default): every reply Not-ECT, as an echo; an EC1 other
    /// than Not-ECT is refused (RPE 0b10). ec1: the reply carries EC1, CE
    /// included (RPE 0b11), to measure how the way back treats ECN
    /// (draft-ietf-ippm-stamp-cos-ecn).
    #[arg(long, value_name = "POLICY", value_parser = ["not-ect", "ec1"], default_value = "not-ect", requires = "stamp", help_heading = STAMP)]
    pub stamp_ecn: String,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
    ///
    /// TCP; port 0 picks one, printed on stdout.
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::metrics::parse_addr, help_heading = SERVICE)]
    pub metrics: Option<std::net::SocketAddr>,

    /// Log a counter line every SECS seconds (at least 0.1).
    ///
    /// The line counts datagrams/s, bytes/s, errors and kernel drops.
    #[arg(long, value_name = "SECS", allow_hyphen_values = true, value_parser = parse_stats_interval, help_heading = SERVICE)]
    pub stats_interval: Option<Duration>,
}

/// `--stop-on-empty`: the command-line face of [`StopPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopOnEmpty {
    /// From a loopback address (someone on this host).
    Loopback,
    /// From anyone (the original's behaviour; trusted networks only).
    Any,
    /// Never: empty datagrams are echoed.
    Never,
}

/// The whole conversion; it cannot fail (clap has checked every value), so
/// `ServerConfig::try_from(&args)` comes with it, with `Infallible` as its error.
impl From<&Args> for ServerConfig {
    fn from(args: &Args) -> Self {
        ServerConfig {
            host: args.common.host.clone(),
            port: args.common.port,
            family: args.common.family(),
            recv_buf: args.common.recv_buf,
            send_buf: args.common.send_buf,
            stop_on_empty: match args.stop_on_empty {
                StopOnEmpty::Loopback => StopPolicy::Loopback,
                StopOnEmpty::Any => StopPolicy::Any,
                StopOnEmpty::Never => StopPolicy::Never,
            },
            batch: args.batch as usize,
            gro: !args.no_gro,
            threads: args.threads as usize,
            stats_interval: args.stats_interval,
            guard: GuardConfig {
                allow_service_ports: args.allow_service_ports,
                allow: args.allow.clone(),
                rate_limit: args.rate_limit,
                rate_limit_prefix: args.rate_limit_prefix,
                loop_detect: !args.no_loop_detect,
                near_copy_budget: args.near_copy_budget,
                answer_stamp_port: args.stamp,
            },
            exclusive: args.exclusive,
            interface: args.common.interface.clone(),
            stamp_ecn: if args.stamp_ecn == "ec1" {
                crate::stamp::tlv::EcnPolicy::Ec1
            } else {
                crate::stamp::tlv::EcnPolicy::NotEct
            },
            stamp: args.stamp.then(|| StampOptions {
                key_file: args.stamp_key.clone(),
                key_dir: args.stamp_key_dir.clone(),
                stateful: args.stamp_stateful,
                ptp: args.stamp_ptp,
                tlv_ignore: args.tlv_mode == "ignore",
                location: args.stamp_location,
                return_allow: crate::stamp::return_path::ReturnAllow::new(
                    args.stamp_return_path_allow
                        .iter()
                        .map(|c| c.parts())
                        .collect(),
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Family;
    use clap::CommandFactory;

    #[test]
    fn cli_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_become_the_documented_config() {
        let config = ServerConfig::from(&Args::parse_from([PROGRAM]));
        assert_eq!((config.host.as_str(), config.port), ("localhost", 9999));
        assert_eq!(config.family, Family::Any);
        assert_eq!(config.stop_on_empty, StopPolicy::Loopback);
        assert_eq!((config.batch, config.threads), (DEFAULT_BATCH, 1));
        assert!(config.gro);
        assert!(!config.exclusive && !config.guard.allow_service_ports);
        assert!(config.guard.loop_detect);
        assert_eq!((config.recv_buf, config.stats_interval), (None, None));
        assert_eq!(config.stamp, None);
    }

    #[test]
    fn stamp_defaults_to_port_862_unless_a_port_is_given() {
        let config = ServerConfig::from(&Args::parse_from([PROGRAM, "--stamp"]));
        assert_eq!(config.port, 862);
        assert_eq!(config.stamp, Some(StampOptions::default()));
        let args = [
            PROGRAM,
            "--stamp",
            "-p",
            "0",
            "--stamp-stateful",
            "--stamp-ptp",
        ];
        let config = ServerConfig::from(&Args::parse_from(args));
        assert_eq!(config.port, 0);
        let stamp = config.stamp.unwrap();
        assert!(stamp.stateful && stamp.ptp && stamp.key_file.is_none());
        assert!(Args::try_parse_from([PROGRAM, "--stamp-stateful"]).is_err());
    }

    #[test]
    fn a_key_directory_excludes_a_key_file_and_location_takes_a_field_list() {
        let config = ServerConfig::from(&Args::parse_from([
            PROGRAM,
            "--stamp",
            "--stamp-key-dir",
            "/etc/keys",
            "--stamp-location",
            "src-port,dst-ip",
        ]));
        let stamp = config.stamp.unwrap();
        assert_eq!(
            stamp.key_dir.as_deref(),
            Some(std::path::Path::new("/etc/keys"))
        );
        let d = stamp.location;
        assert!(d.source_port && d.destination_ip && !d.source_ip && !d.destination_port);
        for bad in [
            &[
                PROGRAM,
                "--stamp",
                "--stamp-key",
                "k",
                "--stamp-key-dir",
                "d",
            ][..],
            &[PROGRAM, "--stamp-key-dir", "d"],
            &[PROGRAM, "--stamp", "--stamp-location", "mac"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let args = Args::parse_from([
            PROGRAM,
            "-H",
            "::1",
            "-p",
            "0",
            "-6",
            "--recv-buf",
            "4M",
            "--send-buf",
            "1K",
            "--allow",
            "10.0.0.0/8",
            "--rate-limit",
            "5",
            "--rate-limit-prefix",
            "24,56",
            "--allow-service-ports",
            "--no-loop-detect",
            "--exclusive",
            "--stop-on-empty",
            "never",
            "--batch",
            "1",
            "--no-gro",
            "--threads",
            "4",
            "--stats-interval",
            "0.5",
            "--metrics",
            "127.0.0.1:0",
            "-qq",
        ]);
        let config = ServerConfig::from(&args);
        assert_eq!((config.host.as_str(), config.port), ("::1", 0));
        assert_eq!(config.family, Family::V6);
        assert_eq!(
            (config.recv_buf, config.send_buf),
            (Some(4 << 20), Some(1024))
        );
        assert_eq!(config.guard.allow.len(), 1);
        assert_eq!(config.guard.rate_limit, Some(5));
        assert_eq!(
            config.guard.rate_limit_prefix,
            RatePrefix { v4: 24, v6: 56 }
        );
        assert!(config.guard.allow_service_ports && config.exclusive);
        assert!(!config.guard.loop_detect);
        assert_eq!(config.stop_on_empty, StopPolicy::Never);
        assert_eq!((config.batch, config.threads), (1, 4));
        assert!(!config.gro);
        assert_eq!(config.stats_interval, Some(Duration::from_millis(500)));
        assert_eq!(args.common.verbosity(), -2);
        assert_eq!(args.metrics, Some("127.0.0.1:0".parse().unwrap()));
    }
}
