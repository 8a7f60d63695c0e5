//! Unit tests of [`LoopDetector`](super::LoopDetector): loops of every
//! period are caught, distinct or slow traffic never is, memory stays fixed.

use super::*;
use crate::client::probe;
use std::net::Ipv4Addr;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Feeds `peer`'s datagrams, one every `gap_ns`, from `start_ns`; returns
/// how many went through before the first `Loop` (None: never).
fn datagrams_until_loop<'a>(
    detector: &mut LoopDetector,
    peer: SocketAddr,
    datagrams: impl IntoIterator<Item = &'a [u8]>,
    start_ns: u64,
    gap_ns: u64,
) -> Option<usize> {
    let mut now = start_ns;
    for (n, payload) in datagrams.into_iter().enumerate() {
        match detector.check(peer, payload, now) {
            LoopVerdict::Echo => {}
            LoopVerdict::Loop { first, .. } => {
                assert!(first, "the first loop verdict is the one to warn about");
                return Some(n + 1);
            }
        }
        now += gap_ns;
    }
    None
}

/// `k` different payloads circulating: the peer sends them in turn.
fn circulating(k: usize, size: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| {
            let mut p = vec![0u8; size.max(16)];
            probe::fill(&mut p, i as u64, 42);
            p
        })
        .collect()
}

#[test]
fn one_datagram_bouncing_is_a_loop_after_the_streak() {
    let mut detector = LoopDetector::new();
    let peer = addr("192.0.2.7:9999");
    let n = datagrams_until_loop(
        &mut detector,
        peer,
        std::iter::repeat_n(&b"x"[..], 1000),
        0,
        20_000,
    );
    assert_eq!(n, Some(usize::from(LOOP_STREAK) + 2));
    // Cooling down: dropped, not warned about again.
    assert!(matches!(
        detector.check(peer, b"x", SEC),
        LoopVerdict::Loop { first: false, .. }
    ));
}

#[test]
fn loops_of_two_to_three_hundred_datagrams_end_within_a_thousand() {
    for k in (2..=8).chain([9, 16, 64, 100, 300]) {
        for size in [1, 64, 1400] {
            let mut detector = LoopDetector::new();
            let loop_ = circulating(k, size);
            let n = datagrams_until_loop(
                &mut detector,
                addr("[2001:db8::7]:7"),
                loop_.iter().cycle().take(5000).map(Vec::as_slice),
                5 * SEC,
                10_000,
            )
            .unwrap_or_else(|| panic!("k {k} size {size} never caught"));
            assert_eq!(n, 2 * k + usize::from(LOOP_STREAK), "k {k} size {size}");
            // The k in flight come back once more and are dropped: then it is over.
            assert!(n + k <= 1000, "k {k}: {n} + {k} in flight");
        }
    }
}

#[test]
fn a_large_loop_ends_after_three_rounds() {
    let k = ECHOES / 12;
    let mut detector = LoopDetector::new();
    let loop_ = circulating(k, 64);
    let n = datagrams_until_loop(
        &mut detector,
        addr("192.0.2.8:4000"),
        loop_.iter().cycle().take(4 * k).map(Vec::as_slice),
        0,
        1_000,
    );
    assert!(n.is_some_and(|n| n <= 3 * k), "{n:?}");
}

#[test]
fn a_million_client_probes_are_never_a_loop() {
    let mut detector = LoopDetector::new();
    let client = addr("127.0.0.1:40000");
    let mut buf = [0u8; 64];
    let mut now = 0;
    for seq in 0..1_000_000u64 {
        probe::fill(&mut buf, seq, now);
        assert_eq!(detector.check(client, &buf, now), LoopVerdict::Echo);
        now += 2_000; // 500,000 probes a second
    }
    // Large probes, all in the same nanosecond: speed alone is never a loop.
    let mut big = vec![0u8; 65507];
    for seq in 0..200u64 {
        probe::fill(&mut big, seq, now);
        assert_eq!(detector.check(client, &big, now), LoopVerdict::Echo);
    }
}

#[test]
fn duplicated_and_reordered_probes_are_never_a_loop() {
    let mut detector = LoopDetector::new();
    let client = addr("192.0.2.9:50000");
    let mut now = 0;
    let mut pair = circulating(2, 64);
    for seq in 0..100_000u64 {
        // Every probe twice, the pairs interleaved: a b a b, c d c d, …
        probe::fill(&mut pair[0], 2 * seq, now);
        probe::fill(&mut pair[1], 2 * seq + 1, now);
        for i in [0, 1, 0, 1] {
            assert_eq!(detector.check(client, &pair[i], now), LoopVerdict::Echo);
            now += 5_000;
        }
    }
}

#[test]
fn payloads_that_differ_only_in_the_middle_are_told_apart() {
    // Same length, same first and last 16 bytes: the sketch matches every
    // time, the full hash does not.
    let mut detector = LoopDetector::new();
    let client = addr("192.0.2.10:5000");
    let mut payload = [b'.'; 100];
    for i in 0..100_000u32 {
        payload[40..44].copy_from_slice(&i.to_le_bytes());
        assert_eq!(
            detector.check(client, &payload, u64::from(i) * 10_000),
            LoopVerdict::Echo
        );
    }
}

#[test]
fn identical_bytes_faster_than_the_window_count_slower_never_do() {
    // The documented catch: 100 identical datagrams in a row, each within
    // 0.9 s of the last, look like a loop — e.g. a heartbeat every 100 ms.
    let mut detector = LoopDetector::new();
    let every_100ms = datagrams_until_loop(
        &mut detector,
        addr("192.0.2.11:5000"),
        std::iter::repeat_n(&b"heartbeat"[..], 1000),
        0,
        100 * MS,
    );
    assert_eq!(every_100ms, Some(usize::from(LOOP_STREAK) + 2));
    // Once a second (or slower), never; nor at the window's edge.
    for gap in [SEC, 950 * MS, 901 * MS] {
        let mut detector = LoopDetector::new();
        let n = datagrams_until_loop(
            &mut detector,
            addr("192.0.2.12:5000"),
            std::iter::repeat_n(&b"heartbeat"[..], 1000),
            0,
            gap,
        );
        assert_eq!(n, None, "every {gap} ns");
    }
}

#[test]
fn a_different_datagram_breaks_the_streak() {
    let mut detector = LoopDetector::new();
    let peer = addr("192.0.2.13:5000");
    let mut now = 0;
    for round in 0..50u32 {
        // One short of the streak, then something else: never a loop.
        for _ in 0..usize::from(LOOP_STREAK) - 1 {
            assert_eq!(detector.check(peer, b"same", now), LoopVerdict::Echo);
            now += MS;
        }
        let other = round.to_le_bytes();
        assert_eq!(detector.check(peer, &other, now), LoopVerdict::Echo);
        now += MS;
    }
}

#[test]
fn the_cool_down_expires_doubles_on_repeat_and_is_forgiven() {
    let mut detector = LoopDetector::new();
    let peer = addr("192.0.2.14:6000");
    let bounce = |detector: &mut LoopDetector, start: u64| {
        let n = datagrams_until_loop(
            detector,
            peer,
            std::iter::repeat_n(&b"y\n"[..], 1000),
            start,
            MS,
        )
        .expect("caught");
        start + (n as u64 - 1) * MS
    };
    let caught = bounce(&mut detector, 0);
    let silent = |detector: &mut LoopDetector, at: u64| match detector.check(peer, b"y\n", at) {
        LoopVerdict::Loop { first, silent_for } => {
            assert!(!first);
            Some(silent_for)
        }
        LoopVerdict::Echo => None,
    };
    assert_eq!(
        silent(&mut detector, caught + SEC),
        Some(COOL_DOWN - Duration::from_secs(1))
    );
    // Another peer is not affected.
    assert_eq!(
        detector.check(addr("192.0.2.14:6001"), b"y\n", caught + SEC),
        LoopVerdict::Echo
    );
    // After 10 s a fresh chance; caught again, 20 s.
    let start = caught + 10 * SEC;
    let again = bounce(&mut detector, start);
    assert_eq!(again, start + (u64::from(LOOP_STREAK) + 1) * MS);
    assert_eq!(
        silent(&mut detector, again + 19 * SEC),
        Some(Duration::from_secs(1))
    );
    assert_eq!(silent(&mut detector, again + 20 * SEC), None);
    // Third and later offences: 40, 80, 160, 160 s.
    let mut at = again + 20 * SEC + SEC;
    for want in [40, 80, 160, 160] {
        let caught = bounce(&mut detector, at);
        assert_eq!(
            silent(&mut detector, caught + MS),
            Some(Duration::from_secs(want) - Duration::from_millis(1))
        );
        at = caught + want * SEC + SEC;
    }
    // Ten quiet minutes after a cool-down: forgiven, back to 10 s.
    let caught = bounce(&mut detector, at + FORGIVE_AFTER.as_nanos() as u64);
    assert_eq!(
        silent(&mut detector, caught + MS),
        Some(COOL_DOWN - Duration::from_millis(1))
    );
}

#[test]
fn memory_is_fixed_whatever_the_number_of_sources() {
    // 8 keys on one cache line, then 8 entries of 24 bytes: 32 bytes a peer.
    assert_eq!(std::mem::size_of::<Peer>(), 24);
    assert_eq!(std::mem::size_of::<PeerSet>(), 256);
    // 8 tags and 8 times of 4 bytes on one cache line: 8 bytes an echo.
    assert_eq!(std::mem::size_of::<EchoSet>(), 64);
    let mut detector = LoopDetector::new();
    assert_eq!(detector.peer_capacity(), PEERS);
    assert_eq!(detector.echo_capacity(), ECHOES);
    let memory = detector.memory_bytes();
    assert_eq!(memory, PEERS * 32 + ECHOES * 8);
    let mut now = 0;
    for i in 0..100_000u32 {
        let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), 40000);
        assert_eq!(
            detector.check(source, &i.to_le_bytes(), now),
            LoopVerdict::Echo
        );
        now += 1_000;
    }
    assert_eq!(detector.memory_bytes(), memory, "the tables never grow");
    assert_eq!(detector.peers_tracked(), PEERS, "full, old sources evicted");
    // A newcomer still gets a slot, and its loop is still caught.
    let n = datagrams_until_loop(
        &mut detector,
        addr("198.51.100.1:7777"),
        std::iter::repeat_n(&b"z"[..], 1000),
        now,
        10_000,
    );
    assert_eq!(n, Some(usize::from(LOOP_STREAK) + 2));
}

#[test]
fn churning_sources_cannot_hide_a_loop() {
    // A loop at 20,000 datagrams/s, and between two of its datagrams 10
    // spoofed sources with fresh payloads (200,000/s, all new): the loop's
    // peer and echoes stay the freshest of their sets.
    for k in [1, 8, 64] {
        let mut detector = LoopDetector::new();
        let loop_peer = addr("203.0.113.5:9999");
        let loop_ = circulating(k, 64);
        let mut now = 0;
        let mut spoofed = 0u32;
        let mut caught = None;
        for (n, payload) in loop_.iter().cycle().take(5000).enumerate() {
            for _ in 0..10 {
                spoofed += 1;
                let source = SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(0x0B00_0000 + spoofed)),
                    (spoofed % 60000) as u16 + 1024,
                );
                assert_eq!(
                    detector.check(source, &spoofed.to_be_bytes(), now),
                    LoopVerdict::Echo
                );
                now += 5_000;
            }
            if detector.check(loop_peer, payload, now) != LoopVerdict::Echo {
                caught = Some(n + 1);
                break;
            }
        }
        assert_eq!(caught, Some(2 * k + usize::from(LOOP_STREAK)), "k {k}");
    }
}

#[test]
fn a_small_table_shows_what_churn_costs_a_slow_loop() {
    // The bound of the module docs, made visible: with one set of 8 peers,
    // 8 fresh sources between two datagrams of a loop push it out; 7 do not.
    for (churn, caught) in [(7, true), (8, false)] {
        let mut detector = LoopDetector::with_capacity(8, 1024);
        let loop_peer = addr("203.0.113.6:9999");
        let mut now = 0;
        let mut spoofed = 0u32;
        let mut verdict = LoopVerdict::Echo;
        for _ in 0..usize::from(LOOP_STREAK) + 2 {
            for _ in 0..churn {
                spoofed += 1;
                let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(spoofed)), 5000);
                detector.check(source, &spoofed.to_be_bytes(), now);
                now += MS;
            }
            verdict = detector.check(loop_peer, b"slow", now);
            now += MS;
        }
        assert_eq!(verdict != LoopVerdict::Echo, caught, "churn {churn}");
    }
}

#[test]
fn two_detectors_bouncing_a_datagram_stop_it_quickly() {
    // Two servers of ours, A and B, and one forged datagram: each sees the
    // other as a peer sending back what it was sent.
    let (a_addr, b_addr) = (addr("192.0.2.1:9999"), addr("192.0.2.2:9999"));
    let (mut a, mut b) = (LoopDetector::new(), LoopDetector::new());
    let mut now = 0;
    let mut bounces = 0;
    loop {
        bounces += 1;
        let (judge, from) = if bounces % 2 == 1 {
            (&mut a, b_addr)
        } else {
            (&mut b, a_addr)
        };
        if judge.check(from, b"forged", now) != LoopVerdict::Echo {
            break;
        }
        now += 30_000;
    }
    assert!(bounces <= 2 * (usize::from(LOOP_STREAK) + 2), "{bounces}");
}

#[test]
fn mapped_ipv4_is_the_same_peer() {
    let mut detector = LoopDetector::new();
    let (v4, mapped) = (addr("192.0.2.20:5000"), addr("[::ffff:192.0.2.20]:5000"));
    let mut now = 0;
    for i in 0..usize::from(LOOP_STREAK) + 1 {
        let from = if i % 2 == 0 { v4 } else { mapped };
        assert_eq!(detector.check(from, b"m", now), LoopVerdict::Echo);
        now += MS;
    }
    assert!(matches!(
        detector.check(mapped, b"m", now),
        LoopVerdict::Loop { first: true, .. }
    ));
}

#[test]
fn the_hashes_see_every_byte() {
    for len in [0usize, 1, 15, 16, 17, 31, 32, 63, 64, 65, 100, 1400, 65507] {
        let base: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let h = full_hash(&base);
        // Every byte of the small ones, a spread of the largest.
        let step = if len > 2000 { 997 } else { 1 };
        for i in (0..len).step_by(step).chain(len.checked_sub(1)) {
            let mut flipped = base.clone();
            flipped[i] ^= 1;
            assert_ne!(full_hash(&flipped), h, "len {len} byte {i}");
        }
        let mut longer = base.clone();
        longer.push(0);
        assert_ne!(full_hash(&longer), h, "len {len} + a zero byte");
        assert_ne!(
            sketch(&longer),
            sketch(&base),
            "len {len}: the sketch has the length"
        );
    }
}

#[test]
fn stamp_and_twamp_light_replies_are_known_client_probes_never() {
    use crate::stamp::{Mode, ReflectedPacket, SenderPacket, TimeFormat};
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
        let stamp = format.encode(now);
        for (mode, len) in [
            (Mode::Open, 44),
            (Mode::Open, 1400),
            (Mode::Authenticated, 112),
        ] {
            let mut reply = vec![0u8; len];
            ReflectedPacket {
                seq: 7,
                timestamp: stamp,
                error_estimate: 0x8001,
                ssid: 3,
                receive_timestamp: stamp,
                sender_seq: 7,
                sender_timestamp: stamp,
                sender_error_estimate: 0x8001,
                sender_ttl: 64,
            }
            .encode(mode, &mut reply);
            assert!(
                is_known_reply(&reply, now_secs),
                "{format:?} {mode:?} {len}"
            );
            // The request that caused it: MBZ where the reply has stamps.
            let mut request = vec![0u8; len];
            SenderPacket {
                seq: 7,
                timestamp: stamp,
                error_estimate: 0x8001,
                ssid: 3,
            }
            .encode(mode, &mut request);
            assert!(!is_known_reply(&request, now_secs), "{mode:?} request");
        }
    }
    // 200,000 probes of udp-echo-client, every size a flood uses, sent
    // now: never a reply (the pattern bytes sit where a reply has stamps).
    for size in [44usize, 64, 112, 1400] {
        let mut buf = vec![0u8; size];
        for seq in 0..50_000u64 {
            probe::fill(&mut buf, seq, seq * 1_000);
            assert!(!is_known_reply(&buf, now_secs), "probe {seq} of {size}");
        }
    }
    // Shorter than any reply: never looked at.
    assert!(!is_known_reply(&[0xff; 43], now_secs));
}

mod copies;
