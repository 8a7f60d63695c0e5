//! The features no peer tool offers: the port-sharing watch, loss attribution,
//! --find-rate, --pmtu and --doctor.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use socket2::{Domain, Socket, Type};

/// A socket that sets SO_REUSEADDR and binds `addr`, as a hijacker would.
fn co_bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[test]
fn a_socket_that_joins_the_port_is_named_and_counted() {
    let mut server = start_server(&["--port", "0"]);
    let intruder = co_bind(server.addr).expect("SO_REUSEADDR lets a second socket bind");
    let inode = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&intruder)
    ))
    .ok()
    .and_then(|l| {
        l.to_str().and_then(|l| {
            l.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
    });
    let Some(inode) = inode else {
        eprintln!("SKIPPED: no /proc/self/fd socket links on this system");
        return;
    };
    assert!(
        server.wait_for_stderr(&format!("inode {inode}"), Duration::from_secs(6)),
        "no warning within the watch interval:\n{}",
        server.stderr()
    );
    let warning = server
        .stderr()
        .lines()
        .find(|l| l.contains("shares UDP port"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains(&format!("UDP port {}", server.addr.port())),
        "{warning}"
    );
    assert!(warning.contains("uid "), "{warning}");
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert!(stderr.contains("port sharers 1"), "{stderr}");
    assert_eq!(
        stderr.matches("shares UDP port").count(),
        1,
        "warned once: {stderr}"
    );
}

#[test]
fn exclusive_makes_the_kernel_refuse_a_co_binder() {
    let server = start_server(&["--port", "0", "--exclusive"]);
    let err = co_bind(server.addr).expect_err("an --exclusive server's port cannot be shared");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(echo(&udp_client(), server.addr, b"mine"), b"mine");
}

#[test]
fn loss_in_the_clients_own_receive_buffer_is_told_apart_from_the_path() {
    let server = start_server(&["--port", "0", "--recv-buf", "4M"]);
    let port = server.addr.port().to_string();
    // A tiny client receive buffer and 64 large probes in flight: replies pile
    // up faster than one buffer of ~8 KiB holds, and the kernel drops them here.
    let args = [
        "-p",
        &port,
        "--flood",
        "-w",
        "64",
        "-s",
        "1400",
        "--recv-buf",
        "4K",
        "-D",
        "0.5",
        "-t",
        "0.2",
    ];
    let run = run_client(&[&args[..], &["--json"]].concat(), None);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let Some(mine) = json["client_drops"].as_u64() else {
        eprintln!("SKIPPED: no per-socket drop counter on this system");
        return;
    };
    let lost = json["lost"].as_u64().unwrap();
    assert!(
        mine > 0,
        "a 4 KiB buffer overflows under this flood: {json}"
    );
    assert!(mine <= lost, "client drops are part of the loss: {json}");
    let human = run_client(&args, None);
    assert!(
        human
            .stdout_text()
            .contains("dropped in this client's receive buffers"),
        "{}",
        human.stdout_text()
    );
}

#[test]
fn find_rate_finds_the_servers_rate_limit() {
    // The server answers each source 1000 datagrams/s with a burst of one
    // second's budget. A 1 s step that starts with a full bucket (the 1 s
    // settle pause refills it) passes up to 1000 + 1000 = 2000 probes/s, and
    // no step above that can pass; at 1000 and below every step passes. So the
    // answer lies in [1000, 2000], less the 5% bisection precision at the low end.
    let server = start_server(&["--port", "0", "--rate-limit", "1000"]);
    // At most 24 steps of 1 s plus 1 s pauses: bounded, though longer than WAIT.
    let port = server.addr.port().to_string();
    let run = run_client_within(
        &["-p", &port, "--find-rate", "--json"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let answer = json["answer_pps"]
        .as_f64()
        .unwrap_or_else(|| panic!("no answer: {json}"));
    assert!((950.0..=2000.0).contains(&answer), "{json}");
    let steps = json["steps"].as_array().unwrap();
    assert!(steps.len() >= 3 && steps.len() <= 24, "{json}");
    assert_eq!(steps[0]["rate_pps"].as_f64(), Some(1000.0));
    assert!(
        steps.iter().any(|s| s["ok"] == false),
        "a failing step brackets the answer: {json}"
    );
}

#[test]
fn pmtu_on_loopback_fits_the_largest_payload() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "--pmtu", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["largest_payload"], 65507, "{json}");
    assert!(json["limit"].is_null(), "{json}");
}

/// Two network namespaces joined by a veth pair with a lowered MTU: test hosts
/// this test creates for itself, removed on drop.
struct NetnsPair {
    client_ns: String,
    server_ns: String,
    server_ip: String,
}

impl NetnsPair {
    fn create(mtu: u32) -> Result<NetnsPair, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("creating network namespaces needs root".into());
        }
        let id = std::process::id() % 100_000;
        let pair = NetnsPair {
            client_ns: format!("udpecho-c{id}"),
            server_ns: format!("udpecho-s{id}"),
            server_ip: format!("10.231.{}.2", id % 250),
        };
        let client_ip = format!("10.231.{}.1/30", id % 250);
        let server_cidr = format!("{}/30", pair.server_ip);
        let (c, s) = (pair.client_ns.as_str(), pair.server_ns.as_str());
        let (vc, vs) = (format!("uec{id}"), format!("ues{id}"));
        let mtu = mtu.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", c],
            vec!["netns", "add", s],
            vec![
                "link", "add", &vc, "netns", c, "type", "veth", "peer", "name", &vs, "netns", s,
            ],
            vec!["-n", c, "addr", "add", &client_ip, "dev", &vc],
            vec!["-n", s, "addr", "add", &server_cidr, "dev", &vs],
            vec!["-n", c, "link", "set", &vc, "mtu", &mtu, "up"],
            vec!["-n", s, "link", "set", &vs, "mtu", &mtu, "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let out = std::process::Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("cannot run ip(8): {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(pair)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

#[test]
fn pmtu_across_a_1280_byte_link_is_1252_and_names_the_local_limit() {
    let pair = match NetnsPair::create(1280) {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let server = start_server_via(
        &["ip", "netns", "exec", &pair.server_ns],
        &["--host", &pair.server_ip, "--port", "0"],
    );
    let port = server.addr.port().to_string();
    let client = [
        "netns",
        "exec",
        &pair.client_ns,
        CLIENT,
        "-H",
        &pair.server_ip,
        "-p",
        &port,
        "--pmtu",
    ];
    let run = run_program("ip", &[&client[..], &["--json"]].concat(), None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // IPv4: 1280 − 20 (IP header) − 8 (UDP header).
    assert_eq!(json["largest_payload"], 1252, "{json}");
    assert_eq!(json["kernel_path_mtu"], 1280, "{json}");
    assert_eq!(json["limit"]["emsgsize"]["path_mtu"], 1280, "{json}");
    let human = run_program("ip", &client, None);
    let out = human.stdout_text();
    assert!(
        out.contains("largest payload that echoes intact: 1252 bytes"),
        "{out}"
    );
    assert!(out.contains("limit: local EMSGSIZE"), "{out}");
}

#[test]
fn doctor_against_a_running_server_names_it_and_exits_0() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &server.addr.port().to_string(), "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{out}\n{}", run.stderr);
    assert!(
        out.contains(&format!("held by one socket: {}", server.addr)),
        "{out}"
    );
    assert!(out.contains("[ok]     ping: ping against"), "{out}");
    assert!(out.contains("[ok]     flood: flood against"), "{out}");
    assert!(out.contains("not used by UDP"), "{out}");
    assert!(out.contains("\n0 need action, "), "{out}");
}

#[test]
fn doctor_against_a_shared_port_says_so_and_exits_1() {
    let server = start_server(&["--port", "0"]);
    let _intruder = co_bind(server.addr).unwrap();
    let run = run_client(&["-p", &server.addr.port().to_string(), "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{out}\n{}", run.stderr);
    assert!(
        out.contains(&format!(
            "[ACTION] port: UDP port {} is held by 2 sockets",
            server.addr.port()
        )),
        "{out}"
    );
    assert!(out.contains("--exclusive"), "{out}");
}

#[test]
fn doctor_with_no_server_checks_the_host_in_process() {
    let port = closed_port().to_string();
    let run = run_client(&["-p", &port, "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(
        run.code(),
        Some(0),
        "a healthy host with no server needs no action: {out}\n{}",
        run.stderr
    );
    assert!(out.contains("no echo server answers"), "{out}");
    assert!(
        out.contains("against an in-process server on 127.0.0.1:"),
        "{out}"
    );
}

#[test]
fn doctor_json_lists_every_finding_with_its_severity() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "--doctor", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["mode"], "doctor");
    let findings = json["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["topic"] == "port" && f["severity"] == "ok"),
        "{json}"
    );
    assert!(findings.iter().all(|f| f["severity"] != "action"), "{json}");
}
