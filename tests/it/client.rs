//! The real `udp-echo-client` against the project's server and against
//! deliberately wrong servers written here.

use crate::common;

use std::time::Duration;

use common::*;

#[test]
fn round_trips_against_the_projects_server() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(&["--port", &port, "--data", "hello"], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout_text(), "hello\n");
    assert!(
        run.stderr
            .contains(&format!("sent 5 bytes to {}", server.addr)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("recv 5 bytes from {} in ", server.addr)),
        "{}",
        run.stderr
    );
}

#[test]
fn the_default_payload_is_data() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &server.addr.port().to_string()], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout_text(), "data\n");
}

#[test]
fn round_trips_against_a_plain_std_echo_server() {
    let (addr, handle) = fake_server(1, |d| Some(d.to_vec()));
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-d",
            "plain",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout_text(), "plain\n");
    assert_eq!(handle.join().unwrap(), 1);
}

#[test]
fn a_closed_port_fails_at_once_with_refused() {
    let port = closed_port().to_string();
    let run = run_client(&["-p", &port, "--timeout", "5"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.elapsed < Duration::from_millis(500),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.stderr.contains(&format!(
            "no UDP server at 127.0.0.1:{port} (connection refused)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_silent_server_fails_after_the_timeout() {
    let (addr, _handle) = fake_server(1, |_| None);
    let run = run_client(&["-p", &addr.port().to_string(), "--timeout", "0.3"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.elapsed >= Duration::from_millis(300),
        "gave up after {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed < Duration::from_secs(3),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.stderr
            .contains(&format!("no reply from {addr} within 0.3 s")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_reply_with_other_bytes_is_an_error() {
    let (addr, _handle) = fake_server(1, |d| {
        let mut reply = d.to_vec();
        reply[1] ^= 0xFF;
        Some(reply)
    });
    let run = run_client(&["-p", &addr.port().to_string(), "-d", "abcd"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "differs from what was sent: sent 4 bytes, received 4 bytes, first difference at byte 1"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "a wrong reply is not printed as if it were the echo"
    );
}

#[test]
fn a_truncated_reply_is_an_error() {
    let (addr, _handle) = fake_server(1, |d| Some(d[..d.len() / 2].to_vec()));
    let run = run_client(&["-p", &addr.port().to_string(), "-d", "abcdef"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("received 3 bytes"), "{}", run.stderr);
}

#[test]
fn data_from_stdin_round_trips_binary_bytes_raw() {
    let server = start_server(&["--port", "0"]);
    let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "--data", "-"],
        Some(&payload),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, payload, "raw bytes, no newline added");
}

#[test]
fn stdin_larger_than_a_datagram_is_refused_locally() {
    let server = start_server(&["--port", "0"]);
    let payload = vec![b'x'; 70_000];
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "-d", "-"],
        Some(&payload),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("payload of 70000 bytes does not fit in one UDP datagram"),
        "the real size read, not the read limit: {}",
        run.stderr
    );
}

#[test]
fn an_empty_stdin_payload_is_refused_and_the_server_keeps_running() {
    let mut server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "-d", "-"],
        Some(b""),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("use --stop"), "{}", run.stderr);
    assert_eq!(
        echo(&udp_client(), server.addr, b"still there"),
        b"still there"
    );
    assert!(server.is_running(), "the empty stdin stopped the server");
}

#[test]
fn stop_stops_the_server() {
    let mut server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &server.addr.port().to_string(), "--stop"], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert!(stderr.contains("stopped by empty datagram"), "{stderr}");
}

#[test]
fn stop_against_a_closed_port_says_nobody_was_there() {
    let run = run_client(&["-p", &closed_port().to_string(), "--stop"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
}

#[test]
fn stop_against_a_server_that_refuses_stops_says_so() {
    let server = start_server(&["--port", "0", "--stop-on-empty", "never"]);
    let run = run_client(&["-p", &server.addr.port().to_string(), "--stop"], None);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("echoed the stop datagram"),
        "{}",
        run.stderr
    );
}

#[test]
fn bind_chooses_the_source_address() {
    let (addr, handle) = fake_server(1, |d| Some(d.to_vec()));
    // The fake server answers whoever sent; the server sees the bound source.
    let run = run_client(
        &[
            "-p",
            &addr.port().to_string(),
            "--bind",
            "127.0.0.1:0",
            "-d",
            "x",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(handle.join().unwrap(), 1);
    let wrong = run_client(
        &["-p", &addr.port().to_string(), "--bind", "192.0.2.1"],
        None,
    );
    assert_eq!(wrong.code(), Some(2), "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("192.0.2.1 is not an address of this host"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn local_problems_exit_2() {
    for (args, expected) in [
        (&["-H", "no-such-host.invalid"][..], "cannot resolve host"),
        (&["--timeout", "0"], "expected a positive number of seconds"),
        (
            &["--timeout", "-1"],
            "expected a positive number of seconds",
        ),
        (&["--recv-buf", "lots"], "invalid size 'lots'"),
        (&["--bogus"], "unexpected argument"),
        (&["--stop", "--data", "x"], "cannot be used with"),
        (&["-H", "127.0.0.1", "-6"], "has no IPv6 address"),
    ] {
        let run = run_client(args, None);
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn ipv6_round_trip() {
    if !has_ipv6_loopback() {
        skip("no IPv6 loopback on this host");
        return;
    }
    let server = start_server(&["-H", "::1", "--port", "0"]);
    let run = run_client(
        &["-6", "-p", &server.addr.port().to_string(), "-d", "six"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout_text(), "six\n");
}
