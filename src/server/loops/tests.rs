//! Unit tests of `loops`, beside it but out of its way.

use super::*;
use crate::server::STOP_POLL;
use crate::server::guard::{DropReason, GuardConfig};
use std::thread;
use std::time::Duration;

fn loopback_server(
    policy: StopPolicy,
    batch: usize,
) -> (SocketAddr, Stop, thread::JoinHandle<Counters>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(STOP_POLL)).unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Stop::new();
    let flag = stop.clone();
    (
        addr,
        stop,
        thread::spawn(move || serve_plainly(&socket, &flag, policy, batch)),
    )
}

/// `serve` with the default guard and no stats, as `Server::run` would call it.
fn serve_plainly(socket: &UdpSocket, stop: &Stop, policy: StopPolicy, batch: usize) -> Counters {
    serve_guarded(socket, stop, policy, &GuardConfig::default(), batch)
}

/// A loop's context with the rules of `guard` (no rate limit), no stats and
/// no STAMP.
fn plain_context<'a>(
    stop: &'a Stop,
    policy: StopPolicy,
    rules: &'a Rules,
    guard: &GuardConfig,
    local: SocketAddr,
) -> LoopContext<'a> {
    LoopContext {
        stop,
        policy,
        local,
        rules,
        loop_detect: guard.loop_detect,
        near_copy_budget: guard.near_copy_budget,
        origin: Instant::now(),
        limiter: None,
        published: None,
        datagram_log: true,
        stamp: None,
        reply_source: false,
    }
}

/// `serve` with the rules of `guard` (no rate limit) and no stats.
fn serve_guarded(
    socket: &UdpSocket,
    stop: &Stop,
    policy: StopPolicy,
    guard: &GuardConfig,
    batch: usize,
) -> Counters {
    let rules = Rules::new(guard, socket.local_addr().unwrap());
    let context = plain_context(stop, policy, &rules, guard, socket.local_addr().unwrap());
    let kind = if batch > 1 {
        LoopKind::Batched(batch)
    } else {
        LoopKind::Plain
    };
    serve(socket, context, kind)
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
}

#[test]
fn both_loops_echo_and_stop_on_an_empty_datagram_in_process() {
    for batch in [1, 8] {
        echoes_and_stops(batch);
    }
}

fn echoes_and_stops(batch: usize) {
    let (addr, stop, handle) = loopback_server(StopPolicy::Loopback, batch);
    let client = client();
    let mut reply = [0u8; 16];
    client.send_to(b"ping", addr).unwrap();
    let (n, from) = client.recv_from(&mut reply).unwrap();
    assert_eq!((&reply[..n], from), (&b"ping"[..], addr));
    client.send_to(b"", addr).unwrap();
    let counters = handle.join().unwrap();
    assert_eq!(counters.datagrams_echoed, 1);
    assert_eq!(counters.bytes_echoed, 4);
    assert_eq!(counters.datagrams_received, 2);
    assert_eq!(counters.stopped_by, Some(client.local_addr().unwrap()));
    assert!(
        stop.is_requested(),
        "the stop datagram raises the shared flag"
    );
}

#[test]
fn both_loops_notice_the_stop_flag_while_idle() {
    for batch in [1, 8] {
        let (_, stop, handle) = loopback_server(StopPolicy::Never, batch);
        let asked = Instant::now();
        stop.request();
        let counters = handle.join().unwrap();
        assert!(asked.elapsed() < STOP_POLL * 5);
        assert_eq!(counters, Counters::default());
    }
}

#[test]
fn datagrams_before_a_stop_datagram_in_one_batch_are_echoed() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(STOP_POLL)).unwrap();
    let addr = socket.local_addr().unwrap();
    let client = client();
    for payload in [&b"one"[..], b"two", b"", b"after"] {
        client.send_to(payload, addr).unwrap();
    }
    // All four are queued before the loop starts: one recvmmsg takes them.
    thread::sleep(Duration::from_millis(20));
    let counters = serve_plainly(&socket, &Stop::new(), StopPolicy::Loopback, 16);
    if crate::sys::BATCHING {
        assert_eq!(
            counters.datagrams_received, 4,
            "the datagram after the stop came in the same recvmmsg: it was read, and is counted"
        );
        assert_eq!(
            counters.taken_after_stop, 1,
            "the datagram after the stop is booked as taken after it, not echoed"
        );
    } else {
        assert_eq!(
            counters.datagrams_received, 3,
            "one datagram per receive here: the one after the stop stays queued"
        );
    }
    assert_eq!(counters.datagrams_echoed, 2);
    let mut buf = [0u8; 16];
    for want in [&b"one"[..], b"two"] {
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], want);
    }
}

#[test]
fn every_datagram_read_is_echoed_dropped_refused_or_taken_after_the_stop() {
    // Sends refused: Linux lets an unconnected UDP socket be shut for writing.
    let refusals: &[bool] = if cfg!(target_os = "linux") {
        &[false, true]
    } else {
        &[false]
    };
    let guard = GuardConfig {
        allow: vec!["127.0.0.1/32".parse().unwrap()],
        ..GuardConfig::default()
    };
    for batch in [1, 16] {
        for &refuse in refusals {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_read_timeout(Some(STOP_POLL)).unwrap();
            if refuse {
                let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Write);
            }
            let addr = socket.local_addr().unwrap();
            let (allowed, outsider) = (client(), UdpSocket::bind("127.0.0.2:0").unwrap());
            allowed.send_to(b"one", addr).unwrap();
            outsider.send_to(b"not allowed", addr).unwrap();
            for payload in [&b"two"[..], b"", b"after", b"and after"] {
                allowed.send_to(payload, addr).unwrap();
            }
            // All six are queued before the loop starts: one recvmmsg takes them.
            thread::sleep(Duration::from_millis(20));
            let c = serve_guarded(&socket, &Stop::new(), StopPolicy::Loopback, &guard, batch);
            let case = format!("batch {batch}, sends refused {refuse}: {c:?}");
            let stop_datagram = u64::from(c.stopped_by.is_some());
            assert_eq!(
                c.datagrams_received,
                c.datagrams_echoed
                    + c.dropped.iter().sum::<u64>()
                    + c.send_errors
                    + c.taken_after_stop
                    + stop_datagram,
                "{case}"
            );
            // Each term is really there, so the sum is not met by zeros.
            assert_eq!(stop_datagram, 1, "{case}");
            assert_eq!(c.dropped[DropReason::NotAllowed.index()], 1, "{case}");
            assert_eq!(c.datagrams_echoed + c.send_errors, 2, "{case}");
            assert_eq!(c.send_errors, if refuse { 2 } else { 0 }, "{case}");
            let batched = batch > 1 && crate::sys::BATCHING;
            assert_eq!(c.taken_after_stop, if batched { 2 } else { 0 }, "{case}");
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn send_errors_are_counted_and_the_loop_goes_on() {
    for batch in [1, 8] {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        // Linux marks an unconnected UDP socket shut for writing (and says
        // ENOTCONN): every send then fails with EPIPE, receives still work.
        let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Write);
        let addr = socket.local_addr().unwrap();
        let handle = thread::spawn(move || {
            serve_plainly(&socket, &Stop::new(), StopPolicy::Loopback, batch)
        });
        let client = client();
        for _ in 0..3 {
            client.send_to(b"no way back", addr).unwrap();
        }
        // The loop keeps serving after the failures: a stop datagram still stops it.
        thread::sleep(Duration::from_millis(50));
        client.send_to(b"", addr).unwrap();
        let counters = handle.join().unwrap();
        assert_eq!(counters.datagrams_received, 4, "batch {batch}");
        assert_eq!(counters.send_errors, 3, "batch {batch}");
        assert_eq!(counters.datagrams_echoed, 0, "batch {batch}");
        assert!(counters.stopped_by.is_some(), "batch {batch}");
    }
}

/// A peer that sends back every echo, in process: how many bounces until
/// the server goes quiet (capped at `cap`), and the server's counters.
fn bounce_until_quiet(guard: &GuardConfig, batch: usize, cap: u64) -> (u64, Counters) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(STOP_POLL)).unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Stop::new();
    let flag = stop.clone();
    let guard = guard.clone();
    let handle =
        thread::spawn(move || serve_guarded(&socket, &flag, StopPolicy::Never, &guard, batch));
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut bounces = 0;
    peer.send_to(b"forged", addr).unwrap();
    while bounces < cap {
        let Ok((n, _)) = peer.recv_from(&mut buf) else {
            break;
        };
        bounces += 1;
        peer.send_to(&buf[..n], addr).unwrap();
    }
    stop.request();
    (bounces, handle.join().unwrap())
}

#[test]
fn a_peer_that_echoes_back_is_cut_off_and_counted_as_a_loop() {
    for batch in [1, 8] {
        let (bounces, c) = bounce_until_quiet(&GuardConfig::default(), batch, 10_000);
        let streak = u64::from(crate::server::guard::loop_detect::LOOP_STREAK);
        assert!(bounces <= streak + 2, "batch {batch}: {bounces} bounces");
        assert_eq!(
            c.dropped[DropReason::Loop.index()],
            1,
            "batch {batch}: {c:?}"
        );
        assert_eq!(c.datagrams_echoed, bounces, "batch {batch}: {c:?}");
    }
}

#[test]
fn without_loop_detection_the_peer_keeps_being_answered() {
    let guard = GuardConfig {
        loop_detect: false,
        ..GuardConfig::default()
    };
    let (bounces, c) = bounce_until_quiet(&guard, 8, 500);
    assert_eq!(bounces, 500);
    assert_eq!(c.dropped_total(), 0, "{c:?}");
}

#[test]
fn throttle_lets_one_line_through_then_counts() {
    let mut throttle = Throttle::default();
    assert_eq!(throttle.allow(), Some(0));
    assert_eq!(throttle.allow(), None);
    assert_eq!(throttle.allow(), None);
    assert_eq!(throttle.suppressed, 2);
}

/// The rules' verdict is remembered for the last source only: sources that
/// take turns, as in a receive call that brought several, each get their own.
#[test]
fn every_source_gets_the_rules_own_verdict_when_sources_take_turns() {
    let local: SocketAddr = "127.0.0.1:7".parse().unwrap();
    let guard = GuardConfig::default();
    let rules = Rules::new(&guard, local);
    let stop = Stop::new();
    let context = plain_context(&stop, StopPolicy::Loopback, &rules, &guard, local);
    let mut state = LoopState::new(context);
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let dns: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let turns = [client, dns, client, dns, dns, client, client, dns];
    for (i, source) in turns.into_iter().enumerate() {
        let expected = if source == dns {
            EchoVerdict::Drop
        } else {
            EchoVerdict::Echo
        };
        let payload = [i as u8; 20];
        assert_eq!(
            state.inspect(&payload, source),
            expected,
            "datagram {i} from {source}"
        );
    }
    assert_eq!(state.counters.dropped[DropReason::ServicePort.index()], 4);
}
