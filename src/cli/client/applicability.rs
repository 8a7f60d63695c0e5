//! Which options each mode takes: the `--help` table checked against clap.

use super::*;

/// Each mode's flags, and each option given explicitly.
pub(super) const MODES: [(&str, &[&str]); 9] = [
    ("one-shot", &[]),
    ("stop", &["--stop"]),
    ("ping", &["-c", "3"]),
    ("flood", &["-f"]),
    ("rate", &["-r", "100"]),
    ("find-rate", &["--find-rate"]),
    ("pmtu", &["--pmtu"]),
    ("doctor", &["--doctor"]),
    (
        "fleet",
        &["--targets", "t.json", "--metrics", "127.0.0.1:0"],
    ),
];
const OPTIONS: [(&str, &[&str], &str); 19] = [
    ("-d", &["-d", "x"], "one-shot"),
    ("-i", &["-i", "0.5"], "ping fleet"),
    ("-s", &["-s", "100"], "ping flood rate find-rate pmtu fleet"),
    ("--refresh", &["--refresh", "5"], "fleet"),
    ("--rounds", &["--rounds", "5"], "fleet"),
    ("--label", &["--label", "node=a"], "fleet"),
    (
        "TARGET",
        &["127.0.0.1:7"],
        "one-shot stop ping flood rate find-rate pmtu doctor",
    ),
    (
        "-H",
        &["-H", "127.0.0.1"],
        "one-shot stop ping flood rate find-rate pmtu doctor",
    ),
    ("-w", &["-w", "8"], "flood"),
    ("-D", &["-D", "2"], "flood rate find-rate"),
    ("--flows", &["--flows", "2"], "flood rate find-rate"),
    ("--max-loss", &["--max-loss", "1"], "find-rate"),
    ("--tos", &["--tos", "EF"], "ping flood rate fleet"),
    ("--stamp", &["--stamp"], "ping flood rate fleet"),
    // The fleet sends neither (no TLV answers, no residence times exported).
    (
        "--stamp-tlv",
        &["--stamp", "--stamp-tlv", "dm"],
        "ping flood rate",
    ),
    (
        "--stamp-follow-up",
        &["--stamp", "--stamp-follow-up"],
        "ping flood rate",
    ),
    (
        "--json",
        &["--json"],
        "ping flood rate find-rate pmtu doctor",
    ),
    (
        "-t",
        &["-t", "2"],
        "one-shot stop ping flood rate find-rate pmtu doctor fleet",
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
    let e = Args::try_parse_from([PROGRAM, "--targets", "t.json"]).unwrap_err();
    assert!(e.to_string().contains("--metrics"), "{e}");
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
