//! Usage errors of both binaries, run as processes: exit 2, one clap-style
//! message that names what was wrong and the way out; and nothing sent.

use crate::common;

use common::*;

/// Runs the client and checks it refused with exit 2 and a message containing
/// every one of `expected`.
fn refused(args: &[&str], expected: &[&str]) -> String {
    let run = run_client(args, None);
    assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr);
    for needle in expected {
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    run.stderr
}

#[test]
fn an_empty_data_is_refused_and_points_to_stop_without_stopping_the_server() {
    let mut server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    refused(&["-p", &port, "--data", ""], &["'--data <TEXT>'", "--stop"]);
    assert_eq!(
        echo(&udp_client(), server.addr, b"still there"),
        b"still there"
    );
    assert!(server.is_running(), "--data '' stopped the server");
}

#[test]
fn the_client_refuses_port_0_and_the_server_still_takes_it() {
    refused(&["-p", "0"], &["'--port <PORT>'", "1 to 65535"]);
    // The server's -p 0 picks a free port.
    let server = start_server(&["-p", "0"]);
    assert_ne!(server.addr.port(), 0);
}

#[test]
fn every_bad_number_of_seconds_gets_one_message() {
    for value in ["-1", "nan", "inf", "0"] {
        let stderr = refused(&["-t", value], &[]);
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{value}' for '--timeout <SECS>': expected a positive number of seconds such as 0.5 or 2\n"
            )),
            "{stderr}"
        );
    }
    for value in ["-1", "nan", "inf"] {
        refused(
            &["-c", "1", "-i", value],
            &[&format!(
                "invalid value '{value}' for '--interval <SECS>': expected 0 or a positive number of seconds such as 0.5 or 2"
            )],
        );
        refused(
            &["-f", "-D", value],
            &[&format!(
                "invalid value '{value}' for '--duration <SECS>': expected a positive number of seconds such as 0.5 or 2"
            )],
        );
    }
}

#[test]
fn a_rate_too_high_names_the_real_limit() {
    refused(
        &["--rate", "1000000000"],
        &["'--rate <PPS>'", "at most 100000000"],
    );
}

#[test]
fn a_stats_interval_below_a_tenth_of_a_second_is_refused() {
    for value in ["1e-9", "0.05", "-1"] {
        let run = run_program(SERVER, &["-p", "0", "--stats-interval", value], None);
        assert_eq!(run.code(), Some(2), "{value}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "invalid value '{value}' for '--stats-interval <SECS>': expected a number of seconds of at least 0.1"
            )),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn options_that_do_nothing_in_the_chosen_mode_are_refused_naming_both() {
    for (args, a, b) in [
        (&["--doctor", "--stop"][..], "--doctor", "--stop"),
        (&["--pmtu", "--stop"], "--pmtu", "--stop"),
        (&["--data", "x", "--size", "100"], "--data", "--size"),
        (&["-c", "3", "-D", "2"], "--count", "--duration"),
        (&["-c", "3", "--flows", "2"], "--count", "--flows"),
        (&["-r", "100", "-w", "8"], "--rate", "--window"),
        (&["-f", "-i", "0.5"], "--flood", "--interval"),
        (&["--find-rate", "-i", "0.5"], "--find-rate", "--interval"),
        (&["-r", "100", "--max-loss", "1"], "--rate", "--max-loss"),
        (&["--doctor", "-s", "100"], "--doctor", "--size"),
        (&["-c", "3", "-f"], "--count", "--flood"),
    ] {
        refused(args, &["cannot be used with", a, b]);
    }
    // One-shot (no mode): options of the other modes say which mode they need.
    refused(&["-D", "2"], &["--duration", "--flood"]);
    refused(&["--flows", "2"], &["--flows", "--rate"]);
    refused(&["-s", "100"], &["--size", "--count"]);
    refused(&["--max-loss", "1"], &["--max-loss", "--find-rate"]);

    // The combinations README.md and docs/client.md show still run.
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    for args in [
        &["-c", "3", "-i", "0", "-s", "1400", "--json"][..],
        &["-c", "2", "-i", "0.2"],
        &[
            "--flood", "-w", "64", "-s", "1400", "-D", "0.5", "-t", "0.2",
        ],
        &["--rate", "200", "-D", "0.5", "--flows", "2"],
        &["--pmtu", "-t", "0.5"],
        &["-t", "2", "--data", "hello, world"],
    ] {
        let argv: Vec<&str> = ["-q", "-p", &port]
            .iter()
            .copied()
            .chain(args.iter().copied())
            .collect();
        let run = run_client(&argv, None);
        assert_eq!(run.code(), Some(0), "{argv:?}: {}", run.stderr);
    }
    // README's `-r 1000 -D 3 --probes run.csv`, shorter: one CSV record per probe.
    let csv = std::env::temp_dir().join(format!("udp-echo-usage-{}.csv", std::process::id()));
    let csv_arg = csv.to_str().unwrap();
    let argv = [
        "-q", "-p", &port, "-r", "1000", "-D", "0.3", "--probes", csv_arg,
    ];
    let run = run_client(&argv, None);
    assert_eq!(run.code(), Some(0), "{argv:?}: {}", run.stderr);
    let records = std::fs::read_to_string(&csv).unwrap().lines().count() - 1;
    std::fs::remove_file(&csv).unwrap();
    assert!((1..=1000).contains(&records), "{records} records");
}

#[test]
fn a_server_refuses_broadcast_and_multicast_addresses() {
    for host in ["255.255.255.255", "224.0.0.1", "ff02::1"] {
        let failure = try_start_server(&["-H", host, "-p", "0"])
            .err()
            .unwrap_or_else(|| panic!("{host}: the server started"));
        assert_eq!(failure.status.code(), Some(1), "{host}: {}", failure.stderr);
        assert!(
            failure.stderr.contains("not one that can echo"),
            "{host}: {}",
            failure.stderr
        );
        assert_eq!(
            failure.stderr.trim().lines().count(),
            1,
            "{}",
            failure.stderr
        );
    }
}

#[test]
fn a_link_local_address_without_a_scope_id_says_how_to_add_one() {
    let failure = try_start_server(&["-H", "fe80::1", "-p", "0"])
        .err()
        .expect("the server started on fe80::1");
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    assert!(
        failure.stderr.contains("fe80::1%eth0"),
        "{}",
        failure.stderr
    );
    assert!(
        !failure.stderr.contains("invalid argument"),
        "{}",
        failure.stderr
    );
}

/// `--stamp` and `--tos` go with the probing modes (ping, flood, rate,
/// fleet) only; with `--stamp`, a `--size` that cannot hold the STAMP packet and an
/// Extra Padding TLV is refused. Each mistake is one clap error naming the options, exit 2.
#[test]
fn stamp_and_tos_outside_the_measured_modes_are_usage_errors() {
    let a_mode = "<--count <N>|--flood|--rate <PPS>|--targets <SOURCE>>";
    for (args, names) in [
        (&["--tos", "EF"][..], &["--tos <VALUE>", a_mode][..]),
        (&["--stamp"], &["--stamp", a_mode]),
        (
            &["--stamp", "--find-rate"],
            &["'--stamp' cannot be used with '--find-rate'"],
        ),
        (
            &["--stamp", "--pmtu"],
            &["'--stamp' cannot be used with '--pmtu'"],
        ),
        (&["--tos", "EF", "--doctor"], &["--tos <VALUE>", "--doctor"]),
        (
            &["--stamp", "-c", "1", "-s", "40"],
            &["--size 40 is shorter than this STAMP packet (44 bytes)"],
        ),
        (
            &["--stamp", "-c", "1", "-s", "46"],
            &["no room for an Extra Padding TLV", "use 44 or 48 and up"],
        ),
        (
            &["--stamp-key", "k", "-c", "1"],
            &["required arguments", "--stamp"],
        ),
        (
            &["-c", "1", "--tos", "XX"],
            &["invalid value 'XX' for '--tos <VALUE>'", "DSCP name"],
        ),
    ] {
        let stderr = refused(args, names);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

/// A numeric `--tos` with an ECN bit set (`46` meant as DSCP 46, `3`) is
/// refused with one line that names the DSCP or TOS byte meant, exit 2.
#[test]
fn a_numeric_tos_with_ecn_bits_is_refused_with_the_value_meant() {
    for (value, hint) in [
        ("46", "for DSCP 46 give --tos EF (TOS 184)"),
        ("3", "for DSCP 3 give --tos 12"),
        ("0xb9", "for DSCP 46 give --tos EF (TOS 184)"),
    ] {
        let stderr = refused(&["-c", "1", "--tos", value], &[]);
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "error: invalid value '{value}' for '--tos <VALUE>': the low two bits of the TOS byte are ECN; {hint}"
            ),
            "{stderr}"
        );
    }
}

/// `-h` of `program` with stdout a pipe and COLUMNS as given (None: unset).
fn help_text(program: &str, flag: &str, columns: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(flag).env_remove("COLUMNS");
    if let Some(columns) = columns {
        cmd.env("COLUMNS", columns);
    }
    let output = cmd.output().expect("run the binary");
    assert!(output.status.success(), "{program} {flag}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_is_grouped_under_headings_and_wrapped_to_100_columns_off_a_terminal() {
    let headings: [(&str, &[&str]); 2] = [
        (
            CLIENT,
            &[
                "Target:",
                "Mode:",
                "Probe:",
                "Timing and load:",
                "Output:",
                "STAMP:",
                "Logging:",
            ],
        ),
        (
            SERVER,
            &[
                "Address:", "Echo:", "Guard:", "STAMP:", "Service:", "Logging:",
            ],
        ),
    ];
    for (program, headings) in headings {
        for flag in ["-h", "--help"] {
            let text = help_text(program, flag, None);
            let long: Vec<_> = text.lines().filter(|l| l.chars().count() > 100).collect();
            assert!(long.is_empty(), "{program} {flag}: {long:#?}");
            for heading in headings {
                assert!(
                    text.lines().any(|l| l == *heading),
                    "{program} {flag}: {heading}\n{text}"
                );
            }
        }
        // A narrower terminal (COLUMNS when stdout is not one) gets narrower help.
        let narrow = help_text(program, "-h", Some("60"));
        let long: Vec<_> = narrow.lines().filter(|l| l.chars().count() > 60).collect();
        assert!(long.is_empty(), "{program} -h at 60 columns: {long:#?}");
    }
    // The client's --help tells the modes apart and which options each takes.
    let long = help_text(CLIENT, "--help", None);
    assert!(long.contains("Options each mode takes"), "{long}");
    assert!(
        long.contains("Usage: udp-echo-client [OPTIONS] [TARGET]"),
        "{long}"
    );
}

#[test]
fn a_target_is_taken_as_ping_and_nc_take_it() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port();
    let with_port = format!("127.0.0.1:{port}");
    let args: [&[&str]; 4] = [
        &[&with_port, "--data", "hello"],
        &["--data", "hello", "-H", &with_port],
        &["127.0.0.1", "-p", &port.to_string(), "--data", "hello"],
        &[&with_port, "-p", &port.to_string(), "--data", "hello"],
    ];
    for args in args {
        let run = run_client(args, None);
        assert_eq!(run.code(), Some(0), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout_text(), "hello\n", "{args:?}");
    }
    if has_ipv6_loopback() {
        let v6 = start_server(&["-H", "::1", "--port", "0"]);
        let target = format!("[::1]:{}", v6.addr.port());
        let run = run_client(&[&target, "--data", "hello"], None);
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        // A bare IPv6 address is a host, the port comes from -p.
        let run = run_client(&["::1", "-p", &v6.addr.port().to_string()], None);
        assert_eq!(
            (run.code(), run.stdout_text().as_str()),
            (Some(0), "data\n"),
            "{}",
            run.stderr
        );
    }
    // The same port twice is fine; two different ones are a usage error, naming both.
    let other = port.checked_add(1).unwrap_or(1).to_string();
    let stderr = refused(
        &[&with_port, "-p", &other],
        &["port is given twice", &other],
    );
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    refused(&["-H", &with_port, "-p", &other], &["port is given twice"]);
    refused(&["127.0.0.1", "-H", "127.0.0.1"], &["[TARGET]", "--host"]);
}
