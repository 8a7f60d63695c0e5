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
