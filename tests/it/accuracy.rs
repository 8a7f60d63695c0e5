//! Accuracy proven against the kernel: the client's books must equal what
//! the network really did to its probes.
//!
//! Each test builds two hosts in network namespaces of its own, joined by a
//! veth link, and runs the real server in one and the real client in the
//! other. Two kinds of ground truth:
//!
//! - **nftables** rules on the receiving side of each direction drop exactly
//!   every 10th probe and every 25th reply, flip one bit of a reply byte in
//!   every 20th reply and duplicate every 15th of the others, each rule with
//!   a named counter (see [`nft::client_rules`]). `lost`, `duplicates` and
//!   `corrupt` of `--json` must equal those counters exactly, in ping, rate
//!   and flood modes, over IPv4 and IPv6.
//! - **a relay** thread in the client host that delays probes by a known
//!   amount per sequence number and swaps known pairs of replies, and
//!   records what it did: the client's `reordered` must equal the reorders
//!   in the order the relay handed the replies back, and its RTTs can be no
//!   shorter than the time each probe spent in the relay.
//!
//! Before judging the client, each test checks the harness itself with the
//! kernel's UDP counters (no checksum or buffer drops, the server answered
//! every probe that reached it), so a failure names the side at fault.
//! Linux only (network namespaces, nftables); see docs/accuracy.md.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::netns;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{WAIT, json_of, run_client_in, skip, start_server_via};
use netns::TestNet;
use serde_json::Value;

mod nft;
mod relay;

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The nftables family of the tables.
    fn table(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn server(self) -> &'static str {
        match self {
            Family::V4 => netns::SERVER_V4,
            Family::V6 => netns::SERVER_V6,
        }
    }
    fn client(self) -> &'static str {
        match self {
            Family::V4 => netns::CLIENT_V4,
            Family::V6 => netns::CLIENT_V6,
        }
    }
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1",
            Family::V6 => "::1",
        }
    }
    fn is_v6(self) -> bool {
        matches!(self, Family::V6)
    }
}

/// The namespaces, or `None` after saying visibly why this host cannot make
/// them (or lacks nft when `nft` is asked for).
fn net_or_skip(nft: bool) -> Option<TestNet> {
    let ready = if nft { netns::nft_available() } else { Ok(()) };
    match ready.and_then(|()| TestNet::new()) {
        Ok(net) => Some(net),
        Err(why) => {
            skip(&format!("accuracy suite: {why}"));
            None
        }
    }
}

fn count(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key:?} in {json}"))
}

/// Compares the client's figures with the truth, all at once, and fails with
/// a table of every line (so one run shows every mismatch). The table is
/// printed either way: `cargo test --test it accuracy:: -- --nocapture` shows the
/// books of passing tests too.
fn assert_books(what: &str, lines: &[(&str, u64, u64)], context: &str) {
    let mut table = format!("{:<12} {:>8} {:>8}\n", "", "client", "truth");
    for (name, client, truth) in lines {
        let mark = if client == truth { "" } else { "  <-- differs" };
        let _ = writeln!(table, "{name:<12} {client:>8} {truth:>8}{mark}");
    }
    eprintln!("{what}\n{table}");
    assert!(
        lines.iter().all(|(_, c, t)| c == t),
        "{what}: the client's books differ from the kernel's truth\n{table}{context}"
    );
}
