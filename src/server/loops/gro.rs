//! The GRO echo loop: one `recvmmsg` takes up to `--batch` buffers, each one
//! datagram or a burst of same-size datagrams from one source that the kernel
//! coalesced (UDP GRO); every datagram goes through [`LoopState::inspect`] on
//! its own, and the kept ones go back with one `UDP_SEGMENT` message per run of
//! consecutive datagrams (UDP GSO), several messages per `sendmmsg`, with the
//! DSCP the buffer arrived with (the kernel coalesces only datagrams whose IP
//! headers agree on the TOS, so one per buffer is exact).
//!
//! The books and the guard see datagrams, never buffers: counters, rate limit,
//! loop detection and the stop rule count each one. A datagram the guard drops
//! splits its buffer's echo into the runs before and after it, so the others
//! still go back byte-exact, in order, with the same boundaries. A stop
//! datagram is empty, and the kernel never coalesces an empty datagram, so it
//! is always a buffer of its own; what the same receive brought after it is
//! booked as taken after the stop, as in the batched loop.

use std::io;
use std::net::UdpSocket;

use super::gro_send::{DropMarks, echo_run, flush};
use super::{EchoVerdict, LoopState, reply_tos, stamp};
use crate::sys::GroBatch;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs until a stop; `batch` says whether to try GSO (see [`GroBatch::gso`]).
/// The socket must have UDP GRO on ([`crate::sys::enable_gro`]).
pub(super) fn gro_loop(socket: &UdpSocket, state: &mut LoopState<'_>, batch: &mut GroBatch) {
    let mut drops = DropMarks::new();
    let stamp = state.reflector.is_some();
    while !state.stopping() {
        let Some(received) = state.received(batch.recv(socket)) else {
            continue;
        };
        // STAMP's receive time where the kernel stamps none: right after the call.
        let received_at = if stamp { SystemTime::now() } else { UNIX_EPOCH };
        state.tick();
        let mut stopped_at = None;
        for slot in 0..received {
            let buffer = batch.buffer(slot);
            let Some(source) = buffer.source else {
                continue;
            };
            if buffer.truncated {
                state.recv_failed(&io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} bytes from {source} cut short by the kernel (MSG_TRUNC/MSG_CTRUNC); not echoed",
                        buffer.data.len()
                    ),
                ));
                continue;
            }
            let datagrams = buffer.datagrams();
            let tos = reply_tos(batch.tos(slot));
            for k in 0..datagrams {
                state.prefetch(buffer.datagram(k), source);
            }
            let (mut end, mut dropped) = (datagrams, false);
            for k in 0..datagrams {
                match state.inspect(buffer.datagram(k), source) {
                    EchoVerdict::Echo => {}
                    EchoVerdict::Drop => {
                        drops.mark(k);
                        dropped = true;
                    }
                    EchoVerdict::Stop => {
                        end = k;
                        stopped_at = Some((slot, k));
                        break;
                    }
                }
            }
            if stamp {
                stamp::reflect_buffer(socket, state, batch, slot, end, &drops, received_at);
                if dropped {
                    drops.clear(end);
                }
            } else if dropped {
                let mut start = 0;
                for k in 0..end {
                    if drops.is_marked(k) {
                        echo_run(socket, state, batch, slot, start..k, tos);
                        start = k + 1;
                    }
                }
                echo_run(socket, state, batch, slot, start..end, tos);
                drops.clear(end);
            } else {
                echo_run(socket, state, batch, slot, 0..end, tos);
            }
            if stopped_at.is_some() {
                break;
            }
        }
        flush(socket, state, batch);
        if let Some((slot, k)) = stopped_at {
            let first = batch.buffer(slot);
            let rest = (k + 1..first.datagrams()).map(|j| first.datagram(j).len());
            let later = (slot + 1..received).flat_map(|i| {
                let buffer = batch.buffer(i);
                (0..buffer.datagrams()).map(move |j| buffer.datagram(j).len())
            });
            state.taken_after_stop(rest.chain(later));
            state.publish();
            break;
        }
        state.publish();
    }
    state.publish();
}

#[cfg(test)]
mod tests {
    use super::super::LoopContext;
    use super::*;
    use crate::server::counters::Counters;
    use crate::server::guard::{
        DropReason, GuardConfig, RATE_LIMIT_SOURCES, Rules, SharedRateLimiter,
    };
    use crate::server::{STOP_POLL, StopPolicy};
    use crate::shutdown::Stop;
    use crate::sys;
    use std::net::SocketAddr;
    use std::thread;
    use std::time::{Duration, Instant};

    /// How a test server runs.
    #[derive(Clone, Copy, Default)]
    struct Setup {
        rate_limit: Option<u32>,
        /// Echo one message per datagram from the start (the batch's hook).
        no_gso: bool,
        /// Make the kernel refuse GSO sends for real (UDP checksums off).
        gso_refused: bool,
    }

    struct TestServer {
        addr: SocketAddr,
        stop: Stop,
        handle: thread::JoinHandle<Counters>,
    }

    impl TestServer {
        /// Stops it (unless a stop datagram did) and returns its counters.
        fn finish(self) -> Counters {
            self.stop.request();
            self.handle.join().unwrap()
        }
    }

    /// The GRO loop in a thread on `host`, or `None` where there is no UDP GRO
    /// (or no IPv6 loopback).
    fn gro_server(host: &str, setup: Setup) -> Option<TestServer> {
        let socket = UdpSocket::bind((host, 0)).ok()?;
        sys::enable_gro(&socket).ok()?;
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        if setup.gso_refused {
            sys::disable_udp_checksums(&socket, true).unwrap();
        }
        let addr = socket.local_addr().unwrap();
        let stop = Stop::new();
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let guard = GuardConfig {
                rate_limit: setup.rate_limit,
                ..GuardConfig::default()
            };
            let rules = Rules::new(&guard, addr);
            let limiter = setup
                .rate_limit
                .map(|rate| SharedRateLimiter::new(rate, RATE_LIMIT_SOURCES, Default::default()));
            let context = LoopContext {
                stop: &flag,
                policy: StopPolicy::Loopback,
                local: addr,
                rules: &rules,
                loop_detect: guard.loop_detect,
                near_copy_budget: guard.near_copy_budget,
                origin: Instant::now(),
                limiter: limiter.as_ref(),
                published: None,
                datagram_log: true,
                stamp: None,
                reply_source: false,
            };
            let mut state = LoopState::new(context);
            let mut batch = GroBatch::new(8);
            if setup.no_gso {
                batch.disable_gso();
            }
            gro_loop(&socket, &mut state, &mut batch);
            state.counters
        });
        Some(TestServer { addr, stop, handle })
    }

    fn client(host: &str, setup: Setup) -> UdpSocket {
        let socket = UdpSocket::bind((host, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        if setup.gso_refused {
            // Accepts the server's IPv6 replies without a checksum.
            sys::disable_udp_checksums(&socket, false).unwrap();
        }
        socket
    }

    /// Datagram `seq` of flow `flow`, `len` bytes, unique in its first bytes.
    fn datagram(flow: usize, seq: usize, len: usize) -> Vec<u8> {
        let mut d: Vec<u8> = (0..len).map(|i| (i * 13 + flow * 5 + seq) as u8).collect();
        for (i, b) in [flow as u8, seq as u8, (seq >> 8) as u8].iter().enumerate() {
            if i < len {
                d[i] = *b;
            }
        }
        d
    }

    /// A burst of `count` datagrams of `size` bytes (the last `last`) starting
    /// at `first`: the datagrams, and the bytes one segmented send carries.
    fn burst(flow: usize, first: usize, count: usize, size: usize, last: usize) -> Vec<Vec<u8>> {
        (first..first + count)
            .map(|seq| {
                datagram(
                    flow,
                    seq,
                    if seq + 1 == first + count { last } else { size },
                )
            })
            .collect()
    }

    /// Sends `datagrams` with one GSO send (they are all `size` bytes but the last).
    fn send_burst(client: &UdpSocket, to: SocketAddr, datagrams: &[Vec<u8>], size: usize) {
        let bytes = datagrams.concat();
        assert_eq!(
            sys::send_segmented(client, Some(to), &bytes, size).unwrap(),
            bytes.len()
        );
    }

    /// Replies until `count` came, or none for 300 ms when `count` is `None`.
    fn replies(client: &UdpSocket, count: Option<usize>) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        if count.is_none() {
            client
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        while count.is_none_or(|count| got.len() < count) {
            match client.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(e) if count.is_none() => {
                    assert!(matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ));
                    break;
                }
                Err(e) => panic!("after {} replies: {e}", got.len()),
            }
        }
        got
    }

    fn assert_books(c: &Counters) {
        let stop = u64::from(c.stopped_by.is_some());
        assert_eq!(
            c.datagrams_received,
            c.datagrams_echoed + c.dropped_total() + c.send_errors + c.taken_after_stop + stop,
            "{c:?}"
        );
    }

    /// Three flows, each with its own segment size and a shorter last
    /// datagram, three interleaved bursts each.
    fn several_flows_round_trip(host: &str, setup: Setup) {
        let Some(server) = gro_server(host, setup) else {
            return;
        };
        let shapes = [(10, 100, 37), (5, 1000, 1), (20, 7, 3)];
        let clients: Vec<UdpSocket> = shapes.iter().map(|_| client(host, setup)).collect();
        let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shapes.len()];
        for round in 0..3 {
            for (flow, &(count, size, last)) in shapes.iter().enumerate() {
                let datagrams = burst(flow, round * count, count, size, last);
                send_burst(&clients[flow], server.addr, &datagrams, size);
                sent[flow].extend(datagrams);
            }
        }
        for (flow, client) in clients.iter().enumerate() {
            assert_eq!(
                replies(client, Some(sent[flow].len())),
                sent[flow],
                "{host}: flow {flow} comes back exact, in order, same boundaries"
            );
        }
        let c = server.finish();
        let total: usize = sent.iter().map(Vec::len).sum();
        assert_eq!(c.datagrams_echoed, total as u64, "{c:?}");
        let bytes: usize = sent.iter().flatten().map(Vec::len).sum();
        assert_eq!(c.bytes_echoed, bytes as u64);
        assert_eq!((c.dropped_total(), c.send_errors), (0, 0));
        assert_books(&c);
    }

    #[test]
    fn gso_bursts_from_several_sockets_come_back_exact_and_in_order_per_flow() {
        for host in ["127.0.0.1", "::1"] {
            several_flows_round_trip(host, Setup::default());
        }
    }

    #[test]
    fn without_gso_the_same_bytes_come_back() {
        for host in ["127.0.0.1", "::1"] {
            let forced = Setup {
                no_gso: true,
                ..Setup::default()
            };
            several_flows_round_trip(host, forced);
            let refused = Setup {
                gso_refused: true,
                ..Setup::default()
            };
            several_flows_round_trip(host, refused);
        }
    }

    #[test]
    fn the_rate_limiter_dropping_part_of_a_buffer_echoes_exactly_the_allowed_datagrams() {
        let rate = 50;
        let Some(server) = gro_server(
            "127.0.0.1",
            Setup {
                rate_limit: Some(rate),
                ..Setup::default()
            },
        ) else {
            return;
        };
        let client = client("127.0.0.1", Setup::default());
        // 200 datagrams in bursts of 30: the bucket (one second's worth, 50)
        // runs dry in the middle of the second buffer.
        let mut sent = Vec::new();
        for first in (0..200).step_by(30) {
            let datagrams = burst(0, first, (200 - first).min(30), 64, 64);
            send_burst(&client, server.addr, &datagrams, 64);
            sent.extend(datagrams);
        }
        let got = replies(&client, None);
        let c = server.finish();
        assert_eq!(c.datagrams_echoed, got.len() as u64, "{c:?}");
        assert_eq!(
            c.dropped[DropReason::RateLimited.index()],
            200 - got.len() as u64,
            "{c:?}"
        );
        assert!(
            (rate as usize..150).contains(&got.len()),
            "{} echoed",
            got.len()
        );
        assert_eq!(
            got[..rate as usize],
            sent[..rate as usize],
            "the burst allowance"
        );
        // Whatever the refill let through later is exact too, in order.
        let mut rest = sent[rate as usize..].iter();
        for reply in &got[rate as usize..] {
            assert!(
                rest.any(|d| d == reply),
                "a reply not sent, or out of order"
            );
        }
        assert_books(&c);
    }

    #[test]
    fn the_stop_datagram_after_a_burst_still_stops_and_the_burst_is_echoed() {
        for host in ["127.0.0.1", "::1"] {
            let Some(server) = gro_server(host, Setup::default()) else {
                continue;
            };
            let client = client(host, Setup::default());
            let datagrams = burst(0, 0, 20, 50, 10);
            send_burst(&client, server.addr, &datagrams, 50);
            client.send_to(b"", server.addr).unwrap();
            let c = server.handle.join().unwrap();
            assert_eq!(c.stopped_by, Some(client.local_addr().unwrap()));
            assert!(server.stop.is_requested());
            assert_eq!((c.datagrams_received, c.datagrams_echoed), (21, 20));
            assert_eq!(replies(&client, Some(20)), datagrams, "{host}");
            assert_books(&c);
        }
    }

    #[test]
    fn datagrams_after_the_stop_in_the_same_receive_are_booked_not_echoed() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        if sys::enable_gro(&socket).is_err() {
            return;
        }
        socket.set_read_timeout(Some(STOP_POLL)).unwrap();
        let addr = socket.local_addr().unwrap();
        let client = client("127.0.0.1", Setup::default());
        let before = burst(0, 0, 4, 30, 30);
        send_burst(&client, addr, &before, 30);
        client.send_to(b"", addr).unwrap();
        send_burst(&client, addr, &burst(0, 4, 6, 30, 5), 30);
        // All three are queued before the loop starts: one recvmmsg takes them.
        thread::sleep(Duration::from_millis(20));
        let rules = Rules::new(&GuardConfig::default(), addr);
        let stop = Stop::new();
        let context = LoopContext {
            stop: &stop,
            policy: StopPolicy::Loopback,
            local: addr,
            rules: &rules,
            loop_detect: true,
            near_copy_budget: crate::server::guard::loop_detect::NEAR_COPY_BUDGET,
            origin: Instant::now(),
            limiter: None,
            published: None,
            datagram_log: true,
            stamp: None,
            reply_source: false,
        };
        let mut state = LoopState::new(context);
        gro_loop(&socket, &mut state, &mut GroBatch::new(8));
        let c = state.counters;
        assert_eq!(c.datagrams_received, 11, "{c:?}");
        assert_eq!((c.datagrams_echoed, c.taken_after_stop), (4, 6), "{c:?}");
        assert_eq!(c.bytes_received, 4 * 30 + 5 * 30 + 5);
        assert_books(&c);
        assert_eq!(replies(&client, Some(4)), before);
    }

    #[test]
    fn drop_marks_clear_only_what_a_buffer_used() {
        let mut marks = DropMarks::new();
        marks.mark(0);
        marks.mark(65);
        marks.mark(65_535);
        assert!(marks.is_marked(65) && !marks.is_marked(64));
        marks.clear(66);
        assert!(!marks.is_marked(0) && !marks.is_marked(65));
        assert!(marks.is_marked(65_535));
    }
}
