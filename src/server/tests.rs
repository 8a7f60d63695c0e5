//! Unit tests of `server`, beside it but out of its way.

use super::*;
use crate::net::udp_table::UdpSocketEntry;
use crate::net::{BufferKind, BufferSize};
use log::Level;

#[test]
fn the_stop_policy_decides_who_may_stop_the_server() {
    let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let local6: SocketAddr = "[::1]:5000".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
    let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    for source in [local, local6, mapped] {
        assert!(StopPolicy::Loopback.stops(&source), "{source}");
    }
    assert!(!StopPolicy::Loopback.stops(&remote));
    assert!(StopPolicy::Any.stops(&remote));
    assert!(!StopPolicy::Never.stops(&local));
}

/// A loopback server on a free port, every field spelled out (no defaults here).
fn loopback_config(batch: usize, threads: usize) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".to_owned(),
        port: 0,
        family: Family::Any,
        recv_buf: Some(64 * 1024),
        send_buf: None,
        stop_on_empty: StopPolicy::Loopback,
        batch,
        gro: true,
        threads,
        stats_interval: None,
        guard: GuardConfig::default(),
        exclusive: false,
        interface: None,
        stamp: None,
        stamp_ecn: Default::default(),
    }
}

#[test]
fn bind_reports_what_it_found() {
    let server = Server::bind(&loopback_config(8, 2)).unwrap();
    let report = server.startup();
    assert_eq!(report.local, server.local_addr());
    assert_ne!(report.local.port(), 0, "the real port, not the 0 asked");
    assert_eq!(report.threads, 2);
    assert_eq!(report.batch_requested, 8);
    assert_eq!(report.batch, if crate::sys::BATCHING { 8 } else { 1 });
    assert_eq!(report.recv_buf.requested, Some(64 * 1024));
    assert_eq!(report.send_buf.requested, None);
    if let Some(sharers) = &report.port_sharers {
        assert!(
            sharers.is_empty(),
            "a fresh port has no one else: {sharers:?}"
        );
    }
}

#[test]
fn gro_is_asked_for_only_with_batches_and_without_no_gro() {
    for (batch, gro) in [(1, true), (8, false)] {
        let mut config = loopback_config(batch, 1);
        config.gro = gro;
        let server = Server::bind(&config).unwrap();
        assert_eq!(server.startup().gro, GroStatus::NotAsked);
        assert_eq!(
            server.kind,
            if batch > 1 && crate::sys::BATCHING {
                LoopKind::Batched(8)
            } else {
                LoopKind::Plain
            }
        );
    }
    let server = Server::bind(&loopback_config(8, 2)).unwrap();
    match &server.startup().gro {
        GroStatus::On => assert_eq!(server.kind, LoopKind::Gro(8)),
        GroStatus::Unavailable(_) => assert_eq!(server.kind, LoopKind::Batched(8)),
        GroStatus::NotAsked => assert_eq!(server.kind, LoopKind::Plain, "no batching here"),
    }
}

#[test]
fn exclusive_threads_share_one_socket() {
    let config = ServerConfig {
        exclusive: true,
        ..loopback_config(8, 3)
    };
    let server = Server::bind(&config).unwrap();
    assert_eq!(server.sockets.len(), 1);
    assert_eq!((server.threads, server.startup().threads), (3, 3));
    assert!(server.startup().exclusive);
    let socket = socket2::SockRef::from(&server.sockets[0]);
    assert!(!socket.reuse_address().unwrap());
    assert!(!socket.reuse_port().unwrap());
}

fn buffer(kind: BufferKind, requested: Option<usize>, effective: usize) -> BufferSize {
    BufferSize {
        kind,
        requested,
        effective,
        max: Some(212_992),
    }
}

#[test]
fn the_startup_report_has_the_lines_and_levels_the_server_always_logged() {
    let local: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    let mut report = StartupReport {
        local,
        inherited: Vec::new(),
        limits: Limits {
            rmem_max: Some(212_992),
            wmem_max: Some(212_992),
            rmem_default: Some(212_992),
            wmem_default: Some(212_992),
            somaxconn: u64::try_from(crate::net::limits::SOMAXCONN).ok(),
        },
        recv_buf: buffer(BufferKind::Recv, None, 212_992),
        send_buf: buffer(BufferKind::Send, None, 212_992),
        threads: 1,
        exclusive: false,
        interface: None,
        stamp: None,
        batch_requested: 32,
        batch: 32,
        gro: GroStatus::NotAsked,
        reply_source: crate::server::ReplySource::NotWildcard,
        guard: GuardConfig::default(),
        port_sharers: Some(Vec::new()),
    };
    let somaxconn = crate::net::limits::SOMAXCONN;
    assert_eq!(
        report.lines(),
        vec![
            (
                Level::Info,
                format!(
                    "limits: rmem_max 212992 wmem_max 212992 rmem_default 212992 wmem_default 212992 somaxconn {somaxconn} (SOMAXCONN {somaxconn})"
                )
            ),
            (
                Level::Info,
                "recv buffer: 212992 bytes (max 212992)".to_owned()
            ),
            (
                Level::Info,
                "send buffer: 212992 bytes (max 212992)".to_owned()
            ),
            (
                Level::Info,
                "1 thread, one socket, 32 datagrams per syscall".to_owned()
            ),
            (
                Level::Info,
                "loop guard on (drops source ports 0-1023, 1900, 5353, 11211); loop detection on; allow all sources; rate limit off".to_owned()
            ),
        ]
    );
    // A clamped request, a platform without batching, threads, a guard,
    // another socket on the port, and no socket table.
    report.recv_buf = buffer(BufferKind::Recv, Some(1 << 30), 425_984);
    report.threads = 4;
    report.batch = 1;
    report.guard = GuardConfig {
        allow_service_ports: true,
        allow: vec!["10.0.0.0/8".parse().unwrap()],
        rate_limit: Some(100),
        loop_detect: false,
        near_copy_budget: crate::server::guard::loop_detect::NEAR_COPY_BUDGET,
        answer_stamp_port: false,
        ..GuardConfig::default()
    };
    let sharer = UdpSocketEntry {
        local,
        uid: 1000,
        inode: 4242,
        drops: 0,
    };
    report.port_sharers = Some(vec![sharer]);
    report.gro = GroStatus::Unavailable("Protocol not available (os error 92)".to_owned());
    let lines = report.lines();
    let at = |level: Level, part: &str| {
        lines
            .iter()
            .any(|(l, text)| *l == level && text.contains(part))
    };
    assert!(
        at(Level::Warn, "net.core.rmem_max = 212992 caps it"),
        "{lines:?}"
    );
    assert!(
        at(
            Level::Warn,
            "--batch 32 needs recvmmsg/sendmmsg, which this platform lacks; using 1"
        ),
        "{lines:?}"
    );
    assert!(
        at(
            Level::Info,
            "4 threads, 4 sockets sharing the port with SO_REUSEPORT, 1 datagram per syscall"
        ),
        "{lines:?}"
    );
    assert!(
        at(
            Level::Info,
            "loop guard off (--allow-service-ports); loop detection off (--no-loop-detect); allow 10.0.0.0/8; rate limit 100 datagrams/s per source network (IPv4 /32, IPv6 /64), burst 100, 65536 sources tracked"
        ),
        "{lines:?}"
    );
    assert!(at(Level::Warn, "inode 4242"), "{lines:?}");
    assert!(at(Level::Warn, "restart with --exclusive"), "{lines:?}");
    report.exclusive = true;
    let lines = report.lines();
    let at = |level: Level, part: &str| {
        lines
            .iter()
            .any(|(l, text)| *l == level && text.contains(part))
    };
    assert!(
        at(
            Level::Info,
            "4 threads on one socket (--exclusive: a flow's echoes may leave out of order), 1 datagram per syscall"
        ),
        "{lines:?}"
    );
    assert!(!at(Level::Warn, "restart with --exclusive"), "{lines:?}");
    // Socket activation: every inherited socket is named.
    let mut activated = report.clone();
    (activated.exclusive, activated.threads) = (false, 2);
    activated.inherited = vec![local, "[::1]:7000".parse().unwrap()];
    assert!(
        activated.lines().contains(&(
            Level::Info,
            "2 threads, one per inherited socket (127.0.0.1:9999, [::1]:7000), 1 datagram per syscall"
                .to_owned()
        )),
        "{:?}",
        activated.lines()
    );
    assert!(
        at(
            Level::Info,
            "UDP GRO unavailable here (Protocol not available (os error 92)): one datagram per buffer, no GSO"
        ),
        "{lines:?}"
    );
    report.gro = GroStatus::On;
    report.batch = 8;
    assert!(
        report.lines().contains(&(
            Level::Info,
            "UDP GRO/GSO on: up to 8 buffers of 64 KiB per recvmmsg, each burst echoed with one UDP_SEGMENT send".to_owned()
        )),
        "{lines:?}"
    );
    report.port_sharers = None;
    assert!(
        report.lines().contains(&(
            Level::Debug,
            "no /proc/net/udp here: the port-sharing watch is off".to_owned()
        )),
        "{lines:?}"
    );
}
