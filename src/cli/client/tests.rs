//! Unit tests of `cli::client`.

use super::*;
use crate::client::Target;
use crate::client::measure::MeasureMode;
use crate::error::Error;
use clap::CommandFactory;

fn command(args: &[&str]) -> Command {
    Command::from(&parse(args).unwrap())
}

fn parse(args: &[&str]) -> std::result::Result<Args, clap::Error> {
    Args::try_from_command_line([PROGRAM].iter().chain(args))
}

/// The host and port the client sends to, from `args`.
fn host_port(args: &[&str]) -> (String, u16) {
    let target = Target::from(&parse(args).unwrap());
    (target.host, target.port)
}

#[test]
fn a_target_is_taken_as_ping_and_nc_take_it() {
    let hp = |h: &str, p| (h.to_owned(), p);
    assert_eq!(host_port(&[]), hp("localhost", 9999));
    assert_eq!(host_port(&["127.0.0.1"]), hp("127.0.0.1", 9999));
    assert_eq!(host_port(&["127.0.0.1:7"]), hp("127.0.0.1", 7));
    assert_eq!(host_port(&["::1"]), hp("::1", 9999));
    assert_eq!(host_port(&["fe80::1%eth0"]), hp("fe80::1%eth0", 9999));
    assert_eq!(host_port(&["[::1]:7"]), hp("::1", 7));
    assert_eq!(host_port(&["[::1]"]), hp("::1", 9999));
    assert_eq!(host_port(&["example.net", "-p", "7"]), hp("example.net", 7));
    assert_eq!(host_port(&["-H", "127.0.0.1:7"]), hp("127.0.0.1", 7));
    assert_eq!(host_port(&["-H", "[::1]:7"]), hp("::1", 7));
    assert_eq!(host_port(&["-H", "::1", "-p", "7"]), hp("::1", 7));
    // The same port twice is no conflict; STAMP's default port yields to one given.
    assert_eq!(host_port(&["127.0.0.1:7", "-p", "7"]), hp("127.0.0.1", 7));
    assert_eq!(host_port(&["--stamp", "-c", "1", "h"]), hp("h", 862));
    assert_eq!(host_port(&["--stamp", "-c", "1", "h:9"]), hp("h", 9));
    // The one-shot payload is still --data's, and the target comes after options too.
    let args = parse(&["--data", "hello", "127.0.0.1:7"]).unwrap();
    assert_eq!(args.data, "hello");
    assert_eq!(Target::from(&args).port, 7);
}

#[test]
fn a_target_that_contradicts_the_options_is_a_usage_error() {
    for (args, needle) in [
        (&["127.0.0.1:7", "-p", "8"][..], "port is given twice"),
        (&["-H", "127.0.0.1:7", "-p", "8"], "port is given twice"),
        (&["127.0.0.1", "-H", "::1"], "cannot be used with"),
        (&["127.0.0.1:0"], "port 0"),
        (&["127.0.0.1:x"], "1 to 65535"),
        (&["[::1"], "']'"),
        (&["[::1]7"], "[IPv6]:PORT"),
        (&[":7"], "host is empty"),
    ] {
        let e = parse(args).expect_err(&format!("{args:?}"));
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        assert!(e.to_string().contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn the_plot_must_be_named_svg() {
    assert!(parse(&["-c", "1", "--plot", "a/b.SVG"]).is_ok());
    for name in ["x.png", "x", "x.svg.png"] {
        let e = parse(&["-c", "1", "--plot", name]).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(".svg"), "{e}");
    }
}

#[test]
fn short_help_is_grouped_and_fits_100_columns() {
    let short = Args::command().term_width(100).render_help().to_string();
    let long = Args::command()
        .term_width(100)
        .render_long_help()
        .to_string();
    for heading in [TARGET, MODE, PROBE, TIMING, OUTPUT, STAMP, LOGGING] {
        assert!(
            short.contains(&format!("\n{heading}:\n")),
            "{heading}:\n{short}"
        );
    }
    let too_long: Vec<_> = short.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(too_long.is_empty(), "{too_long:#?}");
    // One line per option in -h: the longer text is --help's.
    assert!(short.lines().count() < 75, "{short}");
    for arg in Args::command().get_arguments() {
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => format!("[{}]", arg.get_id().as_str().to_uppercase()),
        };
        assert!(long.contains(&name), "{name} not in --help");
        if !arg.is_hide_short_help_set() {
            assert!(short.contains(&name), "{name} not in -h");
        }
    }
    assert!(long.contains("Options each mode takes") && !short.contains("Options each mode"));
}

/// `--help`'s table says what clap's rules do (the applicability tests
/// below check the rules themselves).
#[test]
fn the_help_table_matches_the_mode_rules() {
    for (label, modes) in TAKEN_BY {
        let flag = label.split([',', ' ']).next().unwrap();
        let value: &[&str] = match flag {
            "-d" => &["x"],
            "-i" | "-D" | "--refresh" => &["1"],
            "-s" => &["100"],
            "-w" => &["8"],
            "--max-loss" => &["1"],
            "--metrics" => &["127.0.0.1:0"],
            "--tos" => &["EF"],
            "--probes" => &["x.csv"],
            "--stamp-tlv" => &["dm", "--stamp"],
            _ => &[],
        };
        for (mode, mode_flags) in super::applicability::MODES {
            if mode_flags.contains(&flag) {
                // The mode needs it (fleet: --metrics): given once already.
                continue;
            }
            // `--metrics` alone is the /probe exporter, a mode of its own:
            // one-shot is asked for by its --data.
            let mode_flags: &[&str] = match (flag, mode) {
                ("--metrics", "one-shot") => &["-d", "x"],
                _ => mode_flags,
            };
            let argv: Vec<&str> = mode_flags
                .iter()
                .chain([flag].iter())
                .chain(value)
                .copied()
                .collect();
            let taken = modes.split(' ').any(|m| m == mode);
            assert_eq!(parse(&argv).is_ok(), taken, "{label} in {mode}: {argv:?}");
        }
    }
}

/// `--metrics` with no mode and no target is the /probe exporter; with a
/// target (or options the exporter takes per request) it is refused.
#[test]
fn metrics_alone_is_the_probe_exporter() {
    let args = parse(&["--metrics", "127.0.0.1:0"]).unwrap();
    assert!(matches!(Command::from(&args), Command::Exporter(a, _) if a.port() == 0));
    for argv in [
        &["192.0.2.7:7", "--metrics", "127.0.0.1:0"][..],
        &["-H", "192.0.2.7", "--metrics", "127.0.0.1:0"],
        &["-p", "9", "--metrics", "127.0.0.1:0"],
        &["-t", "2", "--metrics", "127.0.0.1:0"],
        &["-d", "x", "--metrics", "127.0.0.1:0"],
    ] {
        let e = parse(argv).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
    }
    let args = parse(&["--list-targets", "dns+a:localhost:7"]).unwrap();
    assert!(matches!(Command::from(&args), Command::ListTargets(_)));
    assert!(parse(&["--list-targets", "dns+a:localhost"]).is_err());
    assert!(parse(&["--list-targets", "x.json", "-c", "3"]).is_err());
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
        MeasureMode::Ping {
            count: None,
            interval: every_second
        }
    );
    assert_eq!((ping.size, ping.timeout, ping.flows), (64, every_second, 1));
    assert_eq!(ping.duration, Duration::from_secs(5));
    let Command::Measure(flood) = command(&["-f", "-w", "8", "--flows", "2"]) else {
        panic!("not measured")
    };
    assert_eq!(
        (flood.mode, flood.flows),
        (MeasureMode::Flood { window: 8 }, 2)
    );
    let Command::Measure(rate) = command(&["-r", "100", "-D", "2", "-s", "100"]) else {
        panic!("not measured")
    };
    assert_eq!(rate.mode, MeasureMode::Rate { pps: 100.0 });
    assert_eq!((rate.size, rate.duration), (100, Duration::from_secs(2)));
}

#[test]
fn stamp_runs_in_every_measured_mode_with_its_packet_length() {
    let Command::Measure(flood) = command(&["--stamp", "-f", "--flows", "2", "--tos", "EF"]) else {
        panic!("not measured")
    };
    assert_eq!(
        (flood.mode, flood.flows),
        (MeasureMode::Flood { window: 32 }, 2)
    );
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
    // --size pads a STAMP packet with an Extra Padding TLV; one too
    // short for the packet, or for a TLV header past it, is refused.
    let Command::Measure(padded) = command(&["--stamp", "-c", "1", "-s", "100"]) else {
        panic!("not measured")
    };
    assert_eq!(padded.size, 100);
    assert_eq!(padded.stamp.and_then(|s| s.size), Some(100));
    for bad in ["40", "46"] {
        let e = parse(&["--stamp", "-c", "1", "-s", bad]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
    }
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
