//! `--tos` in the echo modes: the client marks its probes and reports the
//! DSCP every reply came back with (`dscp_seen`, `dscp_changed`), in ping,
//! rate and flood, against our server (which copies the DSCP in its plain
//! loop, `--batch 1`) and against an echo service that does not.
//! Linux (IP_RECVTOS).

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;

use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;

/// The three echo modes, short.
const MODES: [&[&str]; 3] = [
    &["-c", "5", "-i", "0.01"],
    &["-r", "1000", "-D", "0.5"],
    &["-f", "-w", "8", "-D", "0.5"],
];

/// Runs the client against `port` in `mode` with `extra`, `--json`.
fn run(port: &str, mode: &[&str], extra: &[&str]) -> serde_json::Value {
    let args = [&["-H", "127.0.0.1", "-p", port, "--json"][..], mode, extra].concat();
    let run = run_client(&args, None);
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{args:?}: {json}\n{}", run.stderr);
    assert!(json["received"].as_u64().unwrap() > 0, "{json}");
    json
}

#[test]
fn probes_marked_ef_come_back_ef_from_our_server_in_every_mode() {
    let server = start_server(&["-H", "127.0.0.1", "-p", "0", "--batch", "1"]);
    let port = server.addr.port().to_string();
    for mode in MODES {
        let json = run(&port, mode, &["--tos", "EF"]);
        let received = &json["received"];
        assert_eq!(json["dscp_sent"], 46, "{mode:?}: {json}");
        assert_eq!(json["dscp_changed"], 0, "{mode:?}: {json}");
        assert_eq!(json["dscp_seen"]["46"], *received, "{mode:?}: {json}");
        assert_eq!(json["ecn_seen"]["0"], *received, "{mode:?}: {json}");
    }
    // Unmarked: DSCP 0 out and back, and the text report has no DSCP line.
    let json = run(&port, MODES[0], &[]);
    assert_eq!(
        (json["dscp_sent"].as_u64(), json["dscp_changed"].as_u64()),
        (Some(0), Some(0))
    );
    let text = run_client(
        &["-H", "127.0.0.1", "-p", &port, "-c", "2", "-i", "0.01"],
        None,
    );
    assert!(
        !text.stdout_text().contains("DSCP"),
        "{}",
        text.stdout_text()
    );
    let text = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "2",
            "-i",
            "0.01",
            "--tos",
            "0xb8",
        ],
        None,
    );
    assert!(
        text.stdout_text().contains(
            "DSCP sent 46 (EF); replies arrived with EF ×2; 0 with another DSCP (dscp_changed)"
        ),
        "{}",
        text.stdout_text()
    );
}

/// An echo service in the test that answers unmarked, whatever came in; it
/// ends 1 s after the last datagram (or 10 s without any).
fn unmarking_echo() -> (String, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let thread = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 65536];
        let (mut idle, mut got_any) = (0, false);
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    (idle, got_any) = (0, true);
                    let _ = socket.send_to(&buf[..n], from);
                }
                Err(_) => {
                    idle += 1;
                    if got_any || idle >= 10 {
                        return;
                    }
                }
            }
        }
    });
    (port, thread)
}

#[test]
fn every_reply_of_an_echo_service_that_drops_the_mark_counts_as_changed() {
    for mode in MODES {
        let (port, echo) = unmarking_echo();
        let args = [
            &["-H", "127.0.0.1", "-p", &port[..], "--json", "--tos", "EF"][..],
            mode,
        ]
        .concat();
        let client = run_client(&args, None);
        echo.join().unwrap();
        let json = json_of(&client);
        assert_eq!(client.code(), Some(0), "{json}");
        let received = &json["received"];
        assert!(received.as_u64().unwrap() > 0, "{json}");
        assert_eq!(json["dscp_changed"], *received, "{mode:?}: {json}");
        assert_eq!(json["dscp_seen"]["0"], *received, "{mode:?}: {json}");
    }
}
