//! The real `udp-echo-server` on loopback, driven by std sockets.

use crate::common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn echoes_every_byte_value_and_datagrams_up_to_the_ipv4_maximum() {
    let server = start_server(&["--port", "0"]);
    let client = udp_client();
    let all_bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(echo(&client, server.addr, &all_bytes), all_bytes);
    for size in [1, 1024, 1025, 1400, 9000, 65507] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(echo(&client, server.addr, &payload), payload, "size {size}");
    }
}

#[test]
fn many_client_sockets_each_get_their_own_reply() {
    let server = start_server(&["--port", "0"]);
    let clients: Vec<UdpSocket> = (0..64).map(|_| udp_client()).collect();
    for (i, client) in clients.iter().enumerate() {
        client
            .send_to(format!("client {i}").as_bytes(), server.addr)
            .unwrap();
    }
    for (i, client) in clients.iter().enumerate() {
        let mut buf = [0u8; 64];
        let (n, from) = client
            .recv_from(&mut buf)
            .expect("each client gets a reply");
        assert_eq!(from, server.addr);
        assert_eq!(&buf[..n], format!("client {i}").as_bytes());
    }
}

#[test]
fn an_empty_datagram_from_loopback_stops_it_with_a_summary_that_counts_what_was_sent() {
    let mut server = start_server(&["--port", "0"]);
    let client = udp_client();
    for _ in 0..5 {
        echo(&client, server.addr, b"12345678");
    }
    client.send_to(b"", server.addr).unwrap();
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let from = client.local_addr().unwrap();
    assert!(
        stderr.contains(&format!("stopped by empty datagram from {from}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("received 6 datagrams (40 bytes), echoed 5 (40 bytes), dropped 0 ("),
        "{stderr}"
    );
}

#[test]
fn stop_on_empty_never_echoes_the_empty_datagram_and_keeps_running() {
    let mut server = start_server(&["--port", "0", "--stop-on-empty", "never"]);
    let client = udp_client();
    assert_eq!(echo(&client, server.addr, b""), b"");
    assert_eq!(echo(&client, server.addr, b"still here"), b"still here");
    assert!(server.is_running());
}

#[test]
fn stop_on_empty_any_also_stops_on_loopback() {
    let mut server = start_server(&["--port", "0", "--stop-on-empty", "any"]);
    udp_client().send_to(b"", server.addr).unwrap();
    let (status, _) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
}

fn stops_on_signal(signal: i32, name: &str) {
    let mut server = start_server(&["--port", "0"]);
    let client = udp_client();
    echo(&client, server.addr, b"before the signal");
    let sent = Instant::now();
    server.signal(signal);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("stopped by {name}")), "{stderr}");
    assert!(stderr.contains("echoed 1 (17 bytes)"), "{stderr}");
}

#[test]
fn sigterm_stops_it_with_exit_0_and_a_summary() {
    stops_on_signal(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_it_with_exit_0_and_a_summary() {
    stops_on_signal(libc::SIGINT, "SIGINT");
}

#[test]
fn a_second_server_on_the_same_port_exits_1_naming_the_port_while_the_first_keeps_echoing() {
    let first = start_server(&["--port", "0"]);
    let port = first.addr.port().to_string();
    let failure = match try_start_server(&["--port", &port]) {
        Ok(second) => panic!("a second server bound {} too", second.addr),
        Err(failure) => failure,
    };
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    let line = failure.stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains(&format!("another socket already holds UDP port {port}")),
        "{line}"
    );
    assert!(line.contains("--port"), "{line}");
    assert_eq!(echo(&udp_client(), first.addr, b"first"), b"first");
}

#[test]
fn a_wildcard_holder_also_blocks_a_specific_address() {
    let holder = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let failure = try_start_server(&["--host", "127.0.0.1", "--port", &port])
        .err()
        .expect("refused");
    assert_eq!(failure.status.code(), Some(1));
    assert!(
        failure.stderr.contains("already holds"),
        "{}",
        failure.stderr
    );
}

#[test]
fn log_lines_carry_the_real_pid() {
    let mut server = start_server(&["--port", "0"]);
    let pid = server.pid();
    udp_client().send_to(b"", server.addr).unwrap();
    let (_, stderr) = server.wait_exit(Duration::from_secs(2));
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        assert!(
            line.starts_with(&format!("[udp-echo-server ({pid})] ")),
            "{line}"
        );
    }
}

#[test]
fn the_reported_limits_and_buffers_are_the_kernels() {
    let Ok(rmem_max) = std::fs::read_to_string("/proc/sys/net/core/rmem_max") else {
        skip("no /proc/sys/net/core/rmem_max on this system");
        return;
    };
    let rmem_max = rmem_max.trim();
    let server = start_server(&["--port", "0", "--recv-buf", "64K"]);
    assert!(
        server.wait_for_stderr("send buffer:", WAIT),
        "{}",
        server.stderr()
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!("rmem_max {rmem_max} ")),
        "{stderr}"
    );
    // Linux doubles the request for its bookkeeping: 64 KiB asked is 128 KiB granted.
    assert!(
        stderr.contains(&format!(
            "recv buffer: 131072 bytes (max {rmem_max}, requested 65536)"
        )),
        "{stderr}"
    );
}

#[test]
fn a_buffer_request_above_the_limit_is_granted_capped_with_a_warning_and_a_fix() {
    let rmem_max: u64 = match std::fs::read_to_string("/proc/sys/net/core/rmem_max") {
        Ok(text) => text.trim().parse().unwrap(),
        Err(_) => {
            skip("no /proc/sys/net/core/rmem_max on this system");
            return;
        }
    };
    // 1 GiB, or the most SO_RCVBUF takes where the host allows 1 GiB already.
    let request: u64 = if rmem_max < 1 << 30 {
        1 << 30
    } else {
        i32::MAX as u64
    };
    if rmem_max >= request {
        skip(&format!(
            "rmem_max is {rmem_max}, no request is capped here"
        ));
        return;
    }
    let request_arg = request.to_string();
    let server = start_server(&["--port", "0", "--recv-buf", &request_arg]);
    assert!(server.wait_for_stderr("send buffer:", WAIT));
    let stderr = server.stderr();
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning: recv buffer"))
        .unwrap_or_else(|| panic!("no clamp warning in:\n{stderr}"));
    assert!(
        warning.contains(&format!("net.core.rmem_max = {rmem_max} caps it")),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("sysctl -w net.core.rmem_max={request}")),
        "{warning}"
    );
    assert_eq!(
        echo(&udp_client(), server.addr, b"works anyway"),
        b"works anyway"
    );
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    for args in [
        &["--port", "70000"][..],
        &["--recv-buf", "12Q"],
        &["--send-buf", "3G"],
        &["--stop-on-empty", "sometimes"],
        &["--no-such-option"],
        &["-4", "-6"],
    ] {
        let run = run_program(SERVER, args, None);
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("error:"), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn refusals_to_start_exit_1_with_one_clear_line() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["--host", "no-such-host.invalid", "--port", "0"],
            "cannot resolve host 'no-such-host.invalid'",
        ),
        // TEST-NET-1: never an address of this host, and bind sends nothing.
        (
            &["--host", "192.0.2.1", "--port", "0"],
            "192.0.2.1 is not an address of this host",
        ),
    ];
    for (args, expected) in cases {
        let run = run_program(SERVER, args, None);
        assert_eq!(run.code(), Some(1), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn debug_logging_shows_each_datagram_escaped() {
    let server = start_server(&["--port", "0", "-v"]);
    let client = udp_client();
    echo(&client, server.addr, b"hi\n\x00");
    let from = client.local_addr().unwrap();
    assert!(
        server.wait_for_stderr(&format!("sent 4 bytes to {from}"), WAIT),
        "{}",
        server.stderr()
    );
    assert!(
        server
            .stderr()
            .contains(&format!("recv 4 bytes from {from}: b\"hi\\n\\x00\""))
    );
}

#[test]
fn info_logging_says_nothing_per_datagram() {
    let mut server = start_server(&["--port", "0"]);
    let client = udp_client();
    for _ in 0..20 {
        echo(&client, server.addr, b"quiet");
    }
    client.send_to(b"", server.addr).unwrap();
    let (_, stderr) = server.wait_exit(Duration::from_secs(2));
    assert!(!stderr.contains("recv 5 bytes"), "{stderr}");
    assert!(stderr.contains("echoed 20 (100 bytes)"), "{stderr}");
}

#[test]
fn ipv6_loopback_works_and_is_printed_in_brackets() {
    if !has_ipv6_loopback() {
        skip("no IPv6 loopback on this host");
        return;
    }
    let server = start_server(&["--host", "::1", "--port", "0"]);
    assert!(server.addr.is_ipv6());
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let payload = vec![0xAB; 65527];
    assert_eq!(echo(&client, server.addr, &payload), payload);
}

#[test]
fn localhost_with_dash_6_binds_ipv6() {
    if !has_ipv6_loopback() {
        skip("no IPv6 loopback on this host");
        return;
    }
    let server = start_server(&["-6", "--port", "0"]);
    assert_eq!(server.addr.ip().to_string(), "::1");
}

#[test]
fn interleaved_sources_are_each_answered_to_their_own_address() {
    let server = start_server(&["--port", "0"]);
    let clients: Vec<UdpSocket> = (0..8).map(|_| udp_client()).collect();
    let mut expected: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
    for round in 0..10u8 {
        for (i, client) in clients.iter().enumerate() {
            let payload = vec![round; 100 + i];
            client.send_to(&payload, server.addr).unwrap();
            expected.entry(i).or_default().push(payload);
        }
    }
    for (i, client) in clients.iter().enumerate() {
        for want in &expected[&i] {
            let mut buf = [0u8; 256];
            let (n, _) = client.recv_from(&mut buf).expect("reply");
            assert_eq!(&buf[..n], &want[..]);
        }
    }
}

#[test]
fn a_co_binder_that_lives_one_second_is_still_named_and_counted() {
    use socket2::{Domain, Socket, Type};
    // Under the 2 s the watch used to wait between looks.
    let mut server = start_server(&["--port", "0"]);
    let intruder = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    intruder.set_reuse_address(true).unwrap();
    intruder
        .bind(&server.addr.into())
        .expect("SO_REUSEADDR on both sides lets a second socket bind");
    let seen = server.wait_for_stderr(
        "receives the datagrams meant for it",
        Duration::from_secs(1),
    );
    drop(intruder);
    assert!(seen, "no warning while it lived:\n{}", server.stderr());
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("port sharers 1"), "{stderr}");
}

/// Every figure of a `--stats-interval` line is the interval's; totals say
/// they are totals. A drop before the second interval began shows in its
/// totals, not as one of its drops.
#[test]
fn a_stats_line_counts_the_interval_and_labels_the_totals() {
    // Loopback is outside --allow: the one datagram sent is dropped.
    let server = start_server(&[
        "--port",
        "0",
        "--allow",
        "192.0.2.0/24",
        "--stats-interval",
        "0.2",
    ]);
    let client = udp_client();
    client.send_to(b"dropped", server.addr).unwrap();
    assert!(
        server.wait_for_stderr("since the start: received 1, echoed 0, dropped 1", WAIT),
        "{}",
        server.stderr()
    );
    // A line for an interval that began after the drop was counted.
    let deadline = Instant::now() + WAIT;
    let later = loop {
        let stderr = server.stderr();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("since the start: received 1,"))
            .collect();
        if lines.len() >= 2 {
            break lines[1].to_owned();
        }
        assert!(Instant::now() < deadline, "no second stats line:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        later.contains(": 0 datagrams/s, 0 bytes/s, dropped 0 ("),
        "{later}"
    );
    assert!(later.contains("not-allowed 0"), "{later}");
    assert!(
        later.ends_with("since the start: received 1, echoed 0, dropped 1, kernel drops 0"),
        "{later}"
    );
}

#[test]
fn a_stamp_key_that_is_not_a_regular_file_is_refused_at_once() {
    // Issue 19 §11: a FIFO blocked start-up in open(2) until a writer came,
    // and SIGTERM could not stop it. A directory and a device likewise.
    let fifo = std::env::temp_dir().join(format!("udp-echo-key-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let fifo_path = fifo.to_str().unwrap().to_owned();
    let mut cases = vec![("/dev/zero", "a device"), ("/tmp", "a directory")];
    if made {
        cases.push((fifo_path.as_str(), "a FIFO"));
    } else {
        skip("no mkfifo(1): the FIFO case was not tried");
    }
    for (path, kind) in cases {
        let asked = Instant::now();
        let failure =
            match try_start_server(&["--stamp", "--stamp-key", path, "-H", "127.0.0.1", "-p", "0"])
            {
                Ok(_) => panic!("{path} was accepted as a key file"),
                Err(failure) => failure,
            };
        assert!(asked.elapsed() < Duration::from_secs(5), "{path}: slow");
        assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
        assert!(
            failure.stderr.contains(&format!(
                "cannot use STAMP key file {path}: not a regular file ({kind})"
            )),
            "{}",
            failure.stderr
        );
    }
    let _ = std::fs::remove_file(&fifo);
}

/// Sets the soft `RLIMIT_NOFILE` of process `pid` with prlimit(1); false
/// when the tool is missing or refuses.
fn set_fd_limit(pid: u32, soft: u64) -> bool {
    std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_port_sharing_watch_survives_a_failed_read_and_says_so() {
    use socket2::{Domain, Socket, Type};
    // Issue 19 §10: one failed read of /proc/net/udp (out of descriptors)
    // stopped the watch for good. With no descriptor left to open, the
    // reads fail; given them back, the watch must see a co-binder again.
    let mut server = start_server(&["--port", "0"]);
    if !set_fd_limit(server.pid(), 3) {
        skip("no prlimit(1) (util-linux): the watch's retry was not tried");
        return;
    }
    assert!(
        server.wait_for_stderr("the port-sharing watch is blind; retrying", WAIT),
        "{}",
        server.stderr()
    );
    assert!(set_fd_limit(server.pid(), 1024));
    let intruder = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    intruder.set_reuse_address(true).unwrap();
    intruder.bind(&server.addr.into()).unwrap();
    let seen = server.wait_for_stderr("receives the datagrams meant for it", WAIT);
    drop(intruder);
    assert!(seen, "the watch did not resume:\n{}", server.stderr());
    assert!(
        server.stderr().contains("/proc/net/udp is readable again"),
        "{}",
        server.stderr()
    );
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{stderr}");
}
