//! Signals other than the Ctrl-C the mode tests cover: SIGHUP (a closed
//! terminal) stops like SIGTERM, with the summary; a Ctrl-C that cuts a
//! `--find-rate` search short says so and exits 130.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Sends `signal` to a child we spawned and have not reaped.
fn send(child: &std::process::Child, signal: i32) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) has no memory effects; the pid is our own, not yet reaped child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Spawns the client, reads stdout until a line starts with `ready`, sends
/// `signal`, and returns (exit code, all of stdout, stderr).
fn signal_client_after(args: &[&str], ready: &str, signal: i32) -> (Option<i32>, String, String) {
    let mut child = common::command(CLIENT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("{args:?} ended before a '{ready}' line:\n{seen}");
        }
        seen.push_str(&line);
        if line.starts_with(ready) {
            break;
        }
    }
    send(&child, signal);
    stdout.read_to_string(&mut seen).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), seen, stderr)
}

#[test]
fn sighup_stops_the_server_with_exit_0_and_its_summary() {
    let mut server = start_server(&["--port", "0"]);
    echo(&udp_client(), server.addr, b"before the hangup");
    server.signal(libc::SIGHUP);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGHUP"), "{stderr}");
    assert!(stderr.contains("echoed 1 (17 bytes)"), "{stderr}");
}

#[test]
fn a_server_started_under_nohup_keeps_running_through_sighup() {
    let mut server = start_server_via(&["nohup"], &["--port", "0"]);
    server.signal(libc::SIGHUP);
    assert_eq!(
        echo(&udp_client(), server.addr, b"still here"),
        b"still here"
    );
    // Had SIGHUP been taken, this second signal would exit at once with 130
    // (or the summary would name SIGHUP).
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(stderr.contains("echoed 1 (10 bytes)"), "{stderr}");
}

#[test]
fn sighup_ends_a_ping_run_with_its_summary() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let (code, stdout, stderr) = signal_client_after(
        &["-p", &port, "-c", "0", "-i", "0.05"],
        "64 bytes from",
        libc::SIGHUP,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("udp echo ping statistics"), "{stdout}");
}

#[test]
fn ctrl_c_during_find_rate_says_it_was_interrupted_and_exits_130() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let (code, stdout, stderr) = signal_client_after(
        &["-p", &port, "--find-rate", "-D", "0.2"],
        "step  1:",
        libc::SIGINT,
    );
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    let last = stdout.trim_end().lines().last().unwrap();
    assert!(last.starts_with("interrupted after 1 step,"), "{stdout}");
    assert!(last.contains("so far 1000 probes/s passed"), "{stdout}");
    assert!(!stdout.contains("no limit found"), "{stdout}");
}

#[test]
fn ctrl_c_during_find_rate_marks_the_json_interrupted() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let mut child = common::command(CLIENT)
        .args(["-p", &port, "--find-rate", "-D", "0.2", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // No step line in JSON mode: the first step (0.2 s) and the settle pause
    // (1 s) leave a wide window; any moment of the search is a valid interruption.
    std::thread::sleep(Duration::from_millis(600));
    send(&child, libc::SIGINT);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["interrupted"], serde_json::Value::Bool(true), "{json}");
}
