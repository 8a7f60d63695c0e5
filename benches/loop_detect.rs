//! The loop detector's cost per datagram, without the kernel: `cargo bench
//! --bench loop_detect`. The server pays this on top of its system calls for
//! every datagram it echoes, so it is the first thing to look at when the
//! echo rate falls behind the C reference (BENCHMARKS.md).
//!
//! Three shapes of distinct traffic from one source, in receive calls of one
//! GRO buffer each (the batch prefetched, then checked, as the server's GRO
//! loop does): the C load generator's datagrams (a counter and a send time,
//! then a constant pattern: the tail repeats) at 1400 and 64 bytes, and
//! datagrams that differ at both ends (a udp-echo-client probe's pattern
//! follows its sequence number). Prints the best of several rounds; the
//! machine's noise only ever adds.

use std::net::SocketAddr;
use std::time::Instant;

use udp_echo::server::guard::loop_detect::{LoopDetector, LoopVerdict};

const DATAGRAMS: u64 = 2_000_000;
const ROUNDS: usize = 7;

fn main() {
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for (name, size, per_call, tail_varies) in [
        ("load generator, 1400 B, 46 a call", 1400, 46, false),
        ("load generator, 64 B, 64 a call", 64, 64, false),
        ("both ends differ, 64 B, 64 a call", 64, 64, true),
    ] {
        let best = (0..ROUNDS)
            .map(|_| round(source, size, per_call, tail_varies))
            .fold(f64::MAX, f64::min);
        println!("{name:36} {best:5.1} ns a datagram");
    }
}

/// One detector through `DATAGRAMS` datagrams: ns per datagram, the payloads'
/// writing included (three 8-byte stores).
fn round(source: SocketAddr, size: usize, per_call: usize, tail_varies: bool) -> f64 {
    let mut detector = LoopDetector::new();
    let mut call = vec![vec![0xa5u8; size]; per_call];
    let mut now_ns = 1_000_000_000u64;
    let (mut seq, mut echoed) = (0u64, 0u64);
    let start = Instant::now();
    while seq < DATAGRAMS {
        for payload in &mut call {
            seq += 1;
            payload[..8].copy_from_slice(&seq.to_le_bytes());
            payload[8..16].copy_from_slice(&now_ns.to_le_bytes());
            if tail_varies {
                let tail = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                payload[size - 8..].copy_from_slice(&tail.to_le_bytes());
            }
        }
        for payload in &call {
            detector.prefetch(source, payload);
        }
        for payload in &call {
            if detector.check(source, payload, now_ns) == LoopVerdict::Echo {
                echoed += 1;
            }
        }
        // A receive call every 40 µs: about 1.1 M datagrams/s at 46 a call.
        now_ns += 40_000;
    }
    let elapsed = start.elapsed();
    assert_eq!(echoed, seq, "distinct traffic was taken for a loop");
    elapsed.as_nanos() as f64 / seq as f64
}
