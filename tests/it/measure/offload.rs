//! The client's offloads (GSO, GRO, kernel time stamps) and the switch that
//! turns them off: the books stay exact either way.

use super::*;

/// Runs the client with `UDP_ECHO_CLIENT_OFFLOAD` set to `offload`.
fn run_client_with_offload(offload: &str, args: &[&str]) -> ClientRun {
    run_client_env(args, &[("UDP_ECHO_CLIENT_OFFLOAD", offload)])
}

/// Flood and rate against the project's server on `host`, with the client's
/// offloads as `offload` allows: exact books, nothing corrupt, and the clock
/// and offloads the run says it used.
fn bulk_runs_balance(host: &str, offload: &str, expect: &str, clock: &str) {
    let server = start_server(&["-H", host, "--port", "0"]);
    let p = port(server.addr);
    for (mode, size) in [
        (&["--flood", "-w", "256"][..], "64"),
        (&["--flood", "-w", "64"][..], "1400"),
        (&["--rate", "20000"][..], "200"),
    ] {
        let mut args = vec!["-H", host, "-p", &p, "-s", size, "-D", "0.5"];
        args.extend_from_slice(mode);
        args.extend(["-t", "0.5", "--json", "-v"]);
        let run = run_client_with_offload(offload, &args);
        assert_eq!(run.code(), Some(0), "{args:?}: {}", run.stderr);
        let json = json_of(&run);
        assert!(n(&json, "received") > 1000, "{args:?}: {json}");
        assert_eq!(n(&json, "corrupt") + n(&json, "truncated"), 0, "{json}");
        assert_eq!(n(&json, "duplicates"), 0, "{json}");
        assert_books_balance(&json);
        assert_eq!(json["rtt_clock"], clock, "{json}");
        assert!(run.stderr.contains(expect), "{args:?}: {}", run.stderr);
    }
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn flood_and_rate_with_gso_gro_and_kernel_times_keep_exact_books_over_ipv4() {
    bulk_runs_balance(
        "127.0.0.1",
        "",
        "UDP GSO on, GRO on, kernel receive times on",
        "kernel",
    );
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn flood_and_rate_with_gso_gro_and_kernel_times_keep_exact_books_over_ipv6() {
    if !has_ipv6_loopback() {
        return skip("no IPv6 loopback");
    }
    bulk_runs_balance(
        "::1",
        "",
        "UDP GSO on, GRO on, kernel receive times on",
        "kernel",
    );
}

#[test]
fn with_every_offload_switched_off_the_books_still_balance_on_the_user_clock() {
    bulk_runs_balance(
        "127.0.0.1",
        "no-gso,no-gro,no-kernel-time",
        "UDP GSO off, GRO off, kernel receive times off",
        "user",
    );
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn ping_times_its_replies_with_the_kernels_receive_stamps() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &port(server.addr), "-c", "20", "-i", "0", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    assert_eq!(n(&json, "received"), 20, "{json}");
    assert_eq!(json["rtt_clock"], "kernel", "{json}");
    assert!(json["rtt_us"]["min"].as_f64().unwrap() > 0.0, "{json}");
}

/// A fake server that answers every four probes with one UDP GSO buffer of
/// five datagrams: the second, the first, the fourth, the third, and the third
/// again. The client's GRO takes them in as one buffer. Returns the number of
/// groups it answered.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
fn gso_shuffling_server() -> (std::net::SocketAddr, std::thread::JoinHandle<u64>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let (mut buf, mut group, mut out) = (vec![0u8; 2048], Vec::new(), Vec::new());
        let mut groups = 0;
        let mut idle = 0;
        while Instant::now() < deadline && idle < 10 {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                idle += 1;
                continue;
            };
            idle = 0;
            group.push(buf[..len].to_vec());
            if group.len() == 4 {
                out.clear();
                for k in [1, 0, 3, 2, 2] {
                    out.extend_from_slice(&group[k]);
                }
                udp_echo::sys::send_segmented(&socket, Some(from), &out, len).unwrap();
                group.clear();
                groups += 1;
            }
        }
        groups
    });
    (addr, handle)
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn gro_buffers_that_reorder_and_duplicate_are_counted_datagram_by_datagram() {
    let (addr, server) = gso_shuffling_server();
    let run = run_client(
        &[
            "-p",
            &port(addr),
            "--flood",
            "-w",
            "16",
            "-D",
            "0.5",
            "-t",
            "0.2",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    let groups = server.join().unwrap();
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert!(groups > 100, "{json}");
    assert_eq!(n(&json, "received"), 4 * groups, "{json}");
    assert_eq!(n(&json, "duplicates"), groups, "{json}");
    assert_eq!(n(&json, "reordered"), 2 * groups, "{json}");
    assert_eq!(n(&json, "corrupt") + n(&json, "late"), 0, "{json}");
    assert_books_balance(&json);
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn a_refused_gso_send_falls_back_to_plain_datagrams_once_and_loses_nothing() {
    // Without UDP checksums (a test hook) the kernel refuses every GSO send
    // with EINVAL: the flow warns once and sends the same probes plainly.
    let server = start_server(&["-H", "127.0.0.1", "--port", "0"]);
    let p = port(server.addr);
    for mode in [&["--flood", "-w", "64"][..], &["--rate", "20000"][..]] {
        let mut args = vec!["-H", "127.0.0.1", "-p", &p, "-D", "0.5", "-t", "0.5"];
        args.extend_from_slice(mode);
        args.push("--json");
        let run = run_client_with_offload("test-no-udp-checksum", &args);
        assert_eq!(run.code(), Some(0), "{args:?}: {}", run.stderr);
        let json = json_of(&run);
        assert!(n(&json, "received") > 1000, "{json}");
        assert_eq!(n(&json, "corrupt") + n(&json, "send_errors"), 0, "{json}");
        assert_books_balance(&json);
        assert_eq!(
            run.stderr.matches("UDP GSO refused").count(),
            1,
            "one warning for the one flow: {}",
            run.stderr
        );
    }
}
