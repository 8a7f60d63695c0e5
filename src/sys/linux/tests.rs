//! Unit tests of `linux`, beside it but out of its way: the helpers they
//! share (`gro`'s tests use some too) and the environment's, here; batches
//! in `tests/batch.rs`, control messages in `tests/control.rs`.

use super::*;
use cmsg::SendControl;
use std::time::Duration;

fn pair() -> (UdpSocket, UdpSocket) {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    (server, client)
}

/// TOS EF (DSCP 46).
const EF: u8 = 0xb8;

/// The TOS cases of a send test: (server bind, client bind, where the client
/// sends): IPv4, IPv6 (when there is `::1`), and an IPv4 client of a
/// dual-stack `::` socket, whose replies go to an IPv4-mapped address.
pub(super) fn tos_cases() -> Vec<(UdpSocket, UdpSocket, SocketAddr)> {
    let mut cases = Vec::new();
    for (server, client, to) in [
        ("127.0.0.1:0", "127.0.0.1:0", None),
        ("[::1]:0", "[::1]:0", None),
        ("[::]:0", "127.0.0.1:0", Some(Ipv4Addr::LOCALHOST)),
    ] {
        let (Ok(server), Ok(client)) = (UdpSocket::bind(server), UdpSocket::bind(client)) else {
            continue; // no IPv6 here
        };
        for socket in [&server, &client] {
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            crate::sys::enable_recv_tos(socket).unwrap();
        }
        let port = server.local_addr().unwrap().port();
        let to = match to {
            Some(ip) => SocketAddr::from((ip, port)),
            None => server.local_addr().unwrap(),
        };
        cases.push((server, client, to));
    }
    cases
}

/// The client's replies, each with the TOS it arrived with.
pub(super) fn replies_with_tos(client: &UdpSocket, count: usize) -> Vec<(Vec<u8>, Option<u8>)> {
    let mut buf = [0u8; 2048];
    (0..count)
        .map(|_| {
            let (n, _, tos) = crate::sys::recv_from_tos(client, &mut buf).unwrap();
            (buf[..n].to_vec(), tos)
        })
        .collect()
}

/// A socket bound to 0.0.0.0 that answers from the address asked
/// ([`enable_reply_source`](crate::sys::enable_reply_source)), and a client
/// on 127.0.0.1: 127.0.0.0/8 is all local, so a request to 127.0.0.2 is
/// answered from 127.0.0.1, the kernel's choice, unless told otherwise.
pub(super) fn wildcard_pair() -> (UdpSocket, UdpSocket, SocketAddr) {
    let server = UdpSocket::bind("0.0.0.0:0").unwrap();
    crate::sys::enable_reply_source(&server).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let asked = SocketAddr::from(([127, 0, 0, 2], server.local_addr().unwrap().port()));
    (server, client, asked)
}

#[test]
fn the_environment_is_changed_only_by_a_lone_thread() {
    assert_eq!(threads_of("Name:\tx\nThreads:\t1\nSigQ:\t0/1\n"), Some(1));
    assert_eq!(threads_of("Threads:\t17\n"), Some(17));
    assert_eq!(threads_of("Name:\tx\n"), None);
    // A test runs beside the harness's main thread, and here beside one more
    // of its own: never alone, so `take_listen_fds` leaves the environment be.
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || wait.recv());
    assert!(!only_thread());
    drop(done);
    let _ = other.join();
}

#[test]
fn the_descriptor_limit_is_known_here() {
    assert!(open_files_limit().is_some_and(|limit| limit >= 3));
}

/// Set in the child process the test below starts.
const CHILD: &str = "UDP_ECHO_TAKE_LISTEN_FDS_CHILD";

#[test]
fn take_listen_fds_beside_other_threads_leaves_the_environment_alone() {
    const NAME: &str =
        "sys::linux::tests::take_listen_fds_beside_other_threads_leaves_the_environment_alone";
    if std::env::var_os(CHILD).is_none() {
        // The variables must be in place before the process starts (setting
        // them here, beside the harness's threads, is what must not happen):
        // run this test again in a child that has them, meant for PID 1.
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--quiet"])
            .env(CHILD, "1")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDS", "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child test failed: {status}");
        return;
    }
    // Another thread reads the environment all the while, as a logger or a
    // resolver might.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = std::sync::Arc::clone(&stop);
    let reader = std::thread::spawn(move || {
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("1"));
        }
    });
    assert!(take_listen_fds().unwrap().is_empty(), "meant for PID 1");
    assert_eq!(
        std::env::var("LISTEN_PID").as_deref(),
        Ok("1"),
        "left alone"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
}

mod batch;
mod control;
