//! `--stamp-key-dir`: the reflector answers each SSID with its own key from
//! the directory, the rest with `default.key`; an SSID with neither is
//! dropped and counted as `malformed`; SIGHUP rereads the directory without
//! a restart, and a reload with a bad file keeps the keys in use (one log
//! line naming the file, no key).

use crate::common;

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use udp_echo::stamp::{Key, Mode};

const A: &str = "00112233445566778899aabbccddeeff";
const B: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const C: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";

/// A temporary key directory, removed on drop.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new(tag: &str) -> KeyDir {
        let dir = std::env::temp_dir().join(format!(
            "udp-echo-stamp-keydir-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        KeyDir(dir)
    }

    fn write(&self, name: &str, hex: &str) {
        std::fs::write(self.0.join(name), format!("{hex}\n")).unwrap();
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(self.0.join(name), mode).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(hex: &str) -> Key {
    Key::from_file_contents(hex.as_bytes()).unwrap()
}

/// Sends SSID `ssid`'s request signed with `with` and returns the reply,
/// if one came within `wait`.
fn ask(
    socket: &UdpSocket,
    server: &ServerProcess,
    ssid: u16,
    with: &Key,
    wait: Duration,
) -> Option<Vec<u8>> {
    let request = stamp_request(Mode::Authenticated, 1, 112, Some(with), ssid);
    socket.send_to(&request, server.addr).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// Sends SSID `ssid`'s request until one is answered, at most 50 times over
/// 5 s; returns the reply and how many went unanswered.
fn ask_until_answered(
    socket: &UdpSocket,
    server: &ServerProcess,
    ssid: u16,
    with: &Key,
) -> (Vec<u8>, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for unanswered in 0..50 {
        if let Some(reply) = ask(socket, server, ssid, with, Duration::from_millis(200)) {
            return (reply, unanswered);
        }
        assert!(Instant::now() < deadline, "SSID {ssid} never answered");
    }
    panic!("SSID {ssid} never answered in 50 tries");
}

/// The summary's count for drop reason `reason`.
fn drops(summary: &str, reason: &str) -> u64 {
    summary
        .split(&format!("{reason} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {reason} count in {summary}"))
}

#[test]
fn each_ssid_is_answered_with_its_key_the_default_serves_the_rest_and_sighup_reloads() {
    let dir = KeyDir::new("reload");
    dir.write("ssid-7.key", A);
    let mut server = start_server(&[
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--stamp-key-dir",
        dir.path().to_str().unwrap(),
    ]);
    let socket = udp_client();
    let wait = Duration::from_secs(2);
    let short = Duration::from_millis(300);
    let (a, b, c) = (key(A), key(B), key(C));

    // SSID 7 with its own key; the reply is signed with it.
    let reply = ask(&socket, &server, 7, &a, wait).expect("SSID 7 answered");
    assert!(a.verify(&reply) && !b.verify(&reply));
    // SSID 9 has no key and there is no default: dropped (2), as is SSID 7
    // signed with another key (1).
    assert!(ask(&socket, &server, 9, &b, short).is_none());
    assert!(ask(&socket, &server, 9, &a, short).is_none());
    assert!(ask(&socket, &server, 7, &b, short).is_none());
    let mut malformed = 3;

    // A default key and SIGHUP: SSID 9 is answered with it, no restart.
    dir.write("default.key", B);
    server.signal(libc::SIGHUP);
    let (reply, unanswered) = ask_until_answered(&socket, &server, 9, &b);
    malformed += unanswered;
    assert!(b.verify(&reply), "the default key signs SSID 9's reply");
    assert!(server.wait_for_stderr("STAMP keys reloaded", wait));
    // A new SSID file and SIGHUP: SSID 11 gets its own key, not the default.
    dir.write("ssid-11.key", C);
    server.signal(libc::SIGHUP);
    let (reply, unanswered) = ask_until_answered(&socket, &server, 11, &c);
    malformed += unanswered;
    assert!(c.verify(&reply) && !b.verify(&reply));

    // A broken file: the reload fails, the keys in use stay (SSID 7 and 9
    // still answered, though ssid-7.key is gone too).
    std::fs::remove_file(dir.path().join("ssid-7.key")).unwrap();
    dir.write("ssid-12.key", "0011");
    server.signal(libc::SIGHUP);
    assert!(
        server.wait_for_stderr("not reloaded", wait),
        "{}",
        server.stderr()
    );
    assert!(a.verify(&ask(&socket, &server, 7, &a, wait).expect("SSID 7 kept")));
    assert!(b.verify(&ask(&socket, &server, 9, &b, wait).expect("SSID 9 kept")));
    assert!(server.is_running(), "SIGHUP reloads, it does not stop");

    server.signal(libc::SIGINT);
    let (_, stderr) = server.wait_exit(WAIT);
    let failed = stderr.lines().find(|l| l.contains("not reloaded")).unwrap();
    assert!(failed.contains("ssid-12.key"), "{failed}");
    for hex in [A, B, C] {
        assert!(!stderr.contains(hex), "a key in the log:\n{stderr}");
    }
    let summary = stderr.lines().find(|l| l.contains("stopped by")).unwrap();
    assert_eq!(drops(summary, "malformed"), malformed, "{summary}");
}

#[test]
fn a_key_directory_that_cannot_serve_stops_the_start_naming_the_file() {
    let dir = KeyDir::new("bad");
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    let args = [
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--stamp-key-dir",
        &dir_arg,
    ];
    let Err(empty) = try_start_server(&args) else {
        panic!("started with an empty directory")
    };
    assert!(empty.stderr.contains("no key file"), "{}", empty.stderr);
    dir.write("ssid-x.key", A);
    let Err(typo) = try_start_server(&args) else {
        panic!("started with a bad SSID in a file name")
    };
    assert!(typo.stderr.contains("ssid-x.key"), "{}", typo.stderr);
    assert!(!typo.stderr.contains(A), "{}", typo.stderr);
}

#[test]
fn stamp_suites_sender_is_answered_with_its_ssids_key_and_refused_without_one() {
    let Some(suite) = crate::stamp::stamp_suite("stamp-suite sender → --stamp-key-dir") else {
        return;
    };
    let dir = KeyDir::new("suite");
    dir.write("ssid-7.key", A);
    dir.write("ssid-31.key", C);
    let server = start_server(&[
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--stamp-key-dir",
        dir.path().to_str().unwrap(),
    ]);
    let port = server.addr.port().to_string();
    let run = |ssid: &str, key: &str| {
        let key_file = dir.path().join(key);
        let args = [
            "-r",
            "127.0.0.1",
            "-S",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "10",
            "-d",
            "2",
            "-L",
            "1",
            "-A",
            "A",
            "--hmac-key-file",
            key_file.to_str().unwrap(),
            "--ssid",
            ssid,
        ];
        let run = run_program(suite.to_str().unwrap(), &args, None);
        format!("{}{}", run.stdout_text(), run.stderr)
    };
    // SSID 31 signed with ssid-31.key: every packet answered.
    let report = run("31", "ssid-31.key");
    assert_eq!(
        crate::stamp::stat(&report, "Packets received:"),
        10,
        "{report}"
    );
    // SSID 9 has no key (and there is no default): none answered.
    let report = run("9", "ssid-7.key");
    assert_eq!(
        crate::stamp::stat(&report, "Packets received:"),
        0,
        "{report}"
    );
    let mut server = server;
    server.signal(libc::SIGINT);
    let (_, stderr) = server.wait_exit(WAIT);
    let summary = stderr.lines().find(|l| l.contains("stopped by")).unwrap();
    assert!(summary.contains("echoed 10 (1120 bytes)"), "{summary}");
    assert_eq!(drops(summary, "malformed"), 10, "{summary}");
}
