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
