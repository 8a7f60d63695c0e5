//! The client's measured modes (ping, flood, rate) against the project's server
//! and against deliberately bad echo servers written here (`bad_servers.rs`);
//! the offloads in `offload.rs`.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

mod bad_servers;
mod offload;

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

fn n(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer '{key}' in {json}"))
}

/// `sent = received + lost + in_flight`, and nothing counted twice.
fn assert_books_balance(json: &Value) {
    assert_eq!(
        n(json, "sent"),
        n(json, "received") + n(json, "lost") + n(json, "in_flight"),
        "{json}"
    );
}

#[test]
fn ping_against_the_projects_server_prints_five_replies_and_no_loss() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &port(server.addr), "-c", "5", "-i", "0.05"], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let out = run.stdout_text();
    let replies: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("64 bytes from 127.0.0.1:"))
        .collect();
    assert_eq!(replies.len(), 5, "{out}");
    for (i, line) in replies.iter().enumerate() {
        assert!(
            line.contains(&format!(": seq={} time=", i + 1)) && line.ends_with(" ms"),
            "{line}"
        );
    }
    assert!(
        out.contains("5 probes sent, 5 received, 0.0% loss"),
        "{out}"
    );
    assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
    assert!(out.contains("rtt p50/p90/p99/p99.9 = "), "{out}");
}

#[test]
fn flood_json_is_valid_and_its_counters_agree() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &port(server.addr), "--flood", "-D", "1", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    assert_eq!(json["mode"], "flood");
    assert_eq!(json["window"], 32);
    assert_eq!(json["target"], server.addr.to_string());
    assert!(n(&json, "received") > 1000, "{json}");
    assert_eq!(
        n(&json, "corrupt") + n(&json, "truncated") + n(&json, "duplicates"),
        0
    );
    assert_books_balance(&json);
    let rtt = &json["rtt_us"];
    let (min, p50, p99, max) = (
        rtt["min"].as_f64().unwrap(),
        rtt["p50"].as_f64().unwrap(),
        rtt["p99"].as_f64().unwrap(),
        rtt["max"].as_f64().unwrap(),
    );
    assert!(
        0.0 < min && min <= p50 && p50 <= p99 && p99 <= max * 1.001,
        "{rtt}"
    );
}

#[test]
fn rate_json_is_valid_and_holds_the_requested_rate() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &[
            "-p",
            &port(server.addr),
            "--rate",
            "1000",
            "-D",
            "1",
            "--json",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    assert_eq!(json["mode"], "rate");
    assert_eq!(json["rate_pps"].as_f64(), Some(1000.0));
    let sent = n(&json, "sent");
    assert!(
        (900..=1100).contains(&sent),
        "paced at 1000/s for 1 s: {json}"
    );
    assert_books_balance(&json);
}

#[test]
fn flood_with_several_flows_reaches_every_flow() {
    let server = start_server(&["--port", "0", "--threads", "2"]);
    let run = run_client(
        &[
            "-p",
            &port(server.addr),
            "--flood",
            "-w",
            "4",
            "--flows",
            "4",
            "-D",
            "0.5",
            "--json",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    assert_eq!(n(&json, "flows"), 4);
    assert_books_balance(&json);
}

#[test]
fn flood_prints_interval_lines_then_the_summary() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &port(server.addr), "-f", "-D", "2"], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let out = run.stdout_text();
    let intervals: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(intervals.len(), 2, "{out}");
    assert!(
        intervals[0].contains("0.00-1.00 s]") && intervals[0].contains(" rt/s "),
        "{out}"
    );
    assert!(out.contains("udp echo flood statistics"), "{out}");
}

#[test]
fn ctrl_c_ends_a_flood_early_and_still_prints_the_json() {
    let server = start_server(&["--port", "0"]);
    let child = common::command(CLIENT)
        .args(["-p", &port(server.addr), "--flood", "-D", "30", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own, not yet reaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let asked = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON after Ctrl-C");
    assert!(json["duration_s"].as_f64().unwrap() < 5.0, "{json}");
    assert_books_balance(&json);
}

#[test]
fn probe_sizes_outside_16_to_65507_are_usage_errors() {
    for size in ["15", "65508"] {
        let run = run_client(&["-c", "1", "-s", size], None);
        assert_eq!(run.code(), Some(2), "{size}: {}", run.stderr);
        assert!(run.stderr.contains("16..=65507"), "{}", run.stderr);
    }
    for args in [
        &["-f", "-r", "10"][..],
        &["-c", "1", "-d", "x"],
        &["-w", "4"],
        &["-i", "1"],
        &["-r", "0"],
        &["-r", "-5"],
    ] {
        let run = run_client(args, None);
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn the_largest_probe_round_trips_in_ping_mode() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &[
            "-p",
            &port(server.addr),
            "-c",
            "2",
            "-i",
            "0",
            "-s",
            "65507",
            "--json",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    assert_eq!(n(&json, "received"), 2);
    assert_eq!(n(&json, "bytes_received"), 2 * 65507);
}

#[test]
fn replies_after_the_timeout_are_late_and_their_probes_lost() {
    // Echoes each probe 150 ms late; the client waits only 50 ms.
    let (addr, _h) = fake_server_with(10_000, |d| {
        std::thread::sleep(Duration::from_millis(150));
        vec![d.to_vec()]
    });
    let run = run_client(
        &[
            "-p",
            &port(addr),
            "-c",
            "3",
            "-i",
            "0.2",
            "-t",
            "0.05",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(
        run.code(),
        Some(1),
        "no reply in time fails the run: {}",
        run.stderr
    );
    assert_eq!(n(&json, "received"), 0, "{json}");
    assert_eq!(n(&json, "lost"), 3, "{json}");
    assert!(
        n(&json, "late") >= 2,
        "late replies are counted, not received: {json}"
    );
    assert_books_balance(&json);
}

#[test]
fn every_flood_ends_within_its_duration_plus_the_timeout_whatever_the_window() {
    // A probe lost while more than 65,536 others went out after it used to
    // leave the receive thread spinning forever (issue 11 §3): the run must
    // be long enough for that even in a debug build, hence 2 s and not less.
    let server = start_server(&["--port", "0"]);
    let (duration_s, timeout_s) = (2.0, 2.0);
    // Start-up, the final report and a loaded machine: generous, but bounded.
    let margin_s = 5.0;
    let limit = Duration::from_secs_f64(duration_s + timeout_s + margin_s);
    for window in [1, 2, 16, 256, 1024, 4096] {
        // Kills the client and fails if it is still running at `limit`.
        let run = run_client_within(
            &[
                "-p",
                &port(server.addr),
                "--flood",
                "-w",
                &window.to_string(),
                "-D",
                &duration_s.to_string(),
                "-t",
                &timeout_s.to_string(),
                "--json",
            ],
            limit,
        );
        assert!(run.elapsed < limit, "window {window}: {:?}", run.elapsed);
        assert_eq!(run.code(), Some(0), "window {window}: {}", run.stderr);
        let json = json_of(&run);
        assert_books_balance(&json);
        assert_eq!(
            n(&json, "in_flight"),
            0,
            "window {window}: a run that ends by itself settles every probe: {json}"
        );
    }
}
#[test]
fn a_server_that_dies_mid_flood_shows_an_outage_not_just_a_tiny_loss() {
    // Answers the first 2,000 probes, then goes silent with its socket open
    // (no ICMP): a server that hung, or a path that went down.
    let dying_server = || {
        let mut answered = 0;
        fake_server_with(usize::MAX, move |d| {
            answered += 1;
            if answered <= 2_000 {
                vec![d.to_vec()]
            } else {
                Vec::new()
            }
        })
    };
    let (addr, _h) = dying_server();
    let args = [
        "--flood",
        "-D",
        "1.5",
        "-t",
        "0.3",
        "--json",
        "-p",
        &port(addr),
    ];
    let json_run = run_client(&args, None);
    let json = json_of(&json_run);
    assert_books_balance(&json);
    assert!(n(&json, "received") >= 1_900, "{json}");
    assert_eq!(json["timeout_ms"].as_f64().unwrap(), 300.0, "{json}");
    // Silent from a few ms into the run until its end: over a second.
    let silence = json["longest_silence_ms"].as_f64().unwrap();
    assert!(silence > 1_000.0, "{json}");
    assert!(
        json_run.stderr.contains("warning: no reply for")
            && !json_run.stderr.contains("warning: warning:"),
        "{}",
        json_run.stderr
    );
    let (addr, _h) = dying_server();
    let human = run_client(
        &["--flood", "-D", "1.5", "-t", "0.3", "-p", &port(addr)],
        None,
    );
    let out = human.stdout_text();
    assert!(
        out.contains("warning: no reply for") && out.contains("longer than the 300 ms timeout"),
        "{out}"
    );
}
