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
//!   a named counter (see [`client_rules`]). `lost`, `duplicates` and
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

// ---------------------------------------------------------------------------
// nftables as ground truth

/// Every how many probes / replies the rules act.
const PROBE_DROP_EVERY: u32 = 10;
const REPLY_DROP_EVERY: u32 = 25;
const REPLY_REWRITE_EVERY: u32 = 20;
const REPLY_DUP_EVERY: u32 = 15;

/// Which reply byte the rewrite rule flips a bit of (offset in the UDP
/// payload: 0..8 sequence number, 8..16 send time, 16.. pattern body).
#[derive(Debug, Clone, Copy)]
enum Rewrite {
    /// Byte 20: the pattern body.
    Body,
    /// Byte 15: the lowest byte of the echoed send time.
    SendTime,
    /// Byte 7: the lowest byte of the sequence number (points at a
    /// neighbouring probe).
    Sequence,
}

impl Rewrite {
    fn byte(self) -> u32 {
        match self {
            Rewrite::Body => 20,
            Rewrite::SendTime => 15,
            Rewrite::Sequence => 7,
        }
    }
}

/// What the rules do to the traffic.
#[derive(Debug, Clone, Copy)]
struct Impairments {
    drops: bool,
    duplicates: bool,
    rewrite: Option<Rewrite>,
}

const ALL: Impairments = Impairments {
    drops: true,
    duplicates: true,
    rewrite: Some(Rewrite::Body),
};

/// The server host's rules: count every probe arriving on the link, drop
/// every 10th (`numgen inc` starts at 0: the 1st, 11th, 21st, …).
fn server_rules(net: &TestNet, family: Family, port: u16, imp: Impairments) -> String {
    let (table, dev) = (family.table(), &net.server_dev);
    let drop = if imp.drops {
        format!("numgen inc mod {PROBE_DROP_EVERY} == 0 counter name \"probes_dropped\" drop")
    } else {
        String::new()
    };
    format!(
        "table {table} udpecho_accuracy {{
            counter probes {{}}
            counter probes_dropped {{}}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                iifname \"{dev}\" udp dport {port} counter name \"probes\" {drop}
            }}
        }}"
    )
}

/// The client host's rules, in this order, on replies arriving on the link:
/// count; drop every 25th; in every 20th of the rest flip bit 0 of one byte
/// (`@th` is the UDP header, so payload byte `b` is at bit `(8 + b) * 8`)
/// and mark it; duplicate every 15th of the unmarked rest with `dup to` the
/// client's own address (the copy is routed to the local host and arrives a
/// moment later through `lo`, where these `iifname` rules do not see it
/// again). Duplicating only unrewritten replies keeps each counter's meaning
/// single: a copy of a corrupt reply would be both.
///
/// The bit flip leaves the UDP checksum as it was: on veth the checksum is
/// still `CHECKSUM_PARTIAL` (offloaded, never computed), so the kernel
/// delivers the rewritten datagram; the tests check `InCsumErrors` stays 0.
fn client_rules(net: &TestNet, family: Family, port: u16, imp: Impairments) -> String {
    let (table, dev) = (family.table(), &net.client_dev);
    let reply = format!("iifname \"{dev}\" udp sport {port}");
    let mut rules = format!("{reply} counter name \"replies\"\n");
    if imp.drops {
        let _ = writeln!(
            rules,
            "{reply} numgen inc mod {REPLY_DROP_EVERY} == 0 counter name \"replies_dropped\" drop"
        );
    }
    if let Some(rewrite) = imp.rewrite {
        let bit = (8 + rewrite.byte()) * 8;
        let _ = writeln!(
            rules,
            "{reply} numgen inc mod {REPLY_REWRITE_EVERY} == 0 counter name \"replies_rewritten\" \
             @th,{bit},8 set @th,{bit},8 ^ 0x01 meta mark set 0x1"
        );
    }
    if imp.duplicates {
        let _ = writeln!(
            rules,
            "{reply} meta mark != 0x1 numgen inc mod {REPLY_DUP_EVERY} == 0 \
             counter name \"replies_duplicated\" dup to {}",
            family.client()
        );
    }
    format!(
        "table {table} udpecho_accuracy {{
            counter replies {{}}
            counter replies_dropped {{}}
            counter replies_rewritten {{}}
            counter replies_duplicated {{}}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                {rules}
            }}
        }}"
    )
}

/// Runs one client measurement (`mode` arguments) from the client host to a
/// server on the other, through the rules of `imp`, and compares the books.
fn nft_run(family: Family, mode: &[&str], imp: Impairments) {
    let Some(net) = net_or_skip(true) else { return };
    let server = start_server_via(
        &["ip", "netns", "exec", &net.server],
        &["--host", family.server(), "--port", "0"],
    );
    let port = server.addr.port();
    let (server_rules, client_rules) = (
        server_rules(&net, family, port, imp),
        client_rules(&net, family, port, imp),
    );
    net.nft(&net.server, &server_rules);
    net.nft(&net.client, &client_rules);
    let v6 = family.is_v6();
    let (client_udp0, server_udp0) = (
        net.udp_counters(&net.client, v6),
        net.udp_counters(&net.server, v6),
    );

    let port_arg = port.to_string();
    let args = [
        &["-H", family.server(), "-p", &port_arg, "--json", "-q"][..],
        mode,
    ]
    .concat();
    let run = run_client_in(&net.client, &args);
    let json = json_of(&run);

    let at_server = net.counters(&net.server);
    let at_client = net.counters(&net.client);
    let delta = |after: HashMap<String, u64>, before: &HashMap<String, u64>| {
        after
            .into_iter()
            .map(|(k, v)| {
                let was = before.get(&k).copied().unwrap_or(0);
                (k, v - was)
            })
            .filter(|(_, v)| *v != 0)
            .collect::<HashMap<_, _>>()
    };
    let client_udp = delta(net.udp_counters(&net.client, v6), &client_udp0);
    let server_udp = delta(net.udp_counters(&net.server, v6), &server_udp0);
    let nft = |map: &HashMap<String, u64>, name: &str| {
        *map.get(name)
            .unwrap_or_else(|| panic!("no nft counter {name:?} in {map:?}"))
    };
    let udp = |map: &HashMap<String, u64>, name: &str| map.get(name).copied().unwrap_or(0);
    let context = format!(
        "client {args:?}: exit {:?}\nclient JSON: {json}\n\
         nft counters, server host: {at_server:?}\nnft counters, client host: {at_client:?}\n\
         kernel UDP counters (deltas), client host: {client_udp:?}\n\
         kernel UDP counters (deltas), server host: {server_udp:?}\n\
         client stderr:\n{}\nserver rules:\n{server_rules}\nclient rules:\n{client_rules}",
        run.code(),
        run.stderr
    );

    let probes = nft(&at_server, "probes");
    let probes_dropped = nft(&at_server, "probes_dropped");
    let replies = nft(&at_client, "replies");
    let replies_dropped = nft(&at_client, "replies_dropped");
    let rewritten = nft(&at_client, "replies_rewritten");
    let duplicated = nft(&at_client, "replies_duplicated");

    // The harness first: if it lost datagrams of its own, the client cannot
    // be judged.
    for (host, counters) in [("client", &client_udp), ("server", &server_udp)] {
        for name in ["InErrors", "RcvbufErrors", "InCsumErrors", "NoPorts"] {
            assert_eq!(
                udp(counters, name),
                0,
                "harness: the {host} host's kernel counted UDP {name}: \
                 datagrams were lost outside the rules\n{context}"
            );
        }
    }
    assert!(
        probes > 0,
        "harness: no probe reached the server\n{context}"
    );
    assert_eq!(
        replies,
        probes - probes_dropped,
        "harness: the server did not answer every probe that reached it\n{context}"
    );
    assert!(
        !imp.drops || (probes_dropped > 0 && replies_dropped > 0),
        "harness: too few probes for the drop rules to act\n{context}"
    );
    assert!(
        imp.rewrite.is_none() || rewritten > 0,
        "harness: too few replies for the rewrite rule to act\n{context}"
    );
    assert!(
        !imp.duplicates || duplicated > 0,
        "harness: too few replies for the dup rule to act\n{context}"
    );

    let lost = probes_dropped + replies_dropped;
    assert_books(
        &format!("{family:?} {mode:?} {imp:?}"),
        &[
            ("sent", count(&json, "sent"), probes),
            ("received", count(&json, "received"), probes - lost),
            ("lost", count(&json, "lost"), lost),
            ("late", count(&json, "late"), 0),
            ("duplicates", count(&json, "duplicates"), duplicated),
            ("corrupt", count(&json, "corrupt"), rewritten),
            ("truncated", count(&json, "truncated"), 0),
            ("foreign", count(&json, "foreign"), 0),
            ("in_flight", count(&json, "in_flight"), 0),
        ],
        &context,
    );
    // SPEC §4: exit 1 when any reply is corrupt, 0 otherwise.
    let expected_code = if rewritten > 0 { 1 } else { 0 };
    assert_eq!(run.code(), Some(expected_code), "exit code\n{context}");
    drop(server);
}

/// Ping mode: 200 probes 5 ms apart.
const PING: &[&str] = &["-c", "200", "-i", "0.005", "-t", "1"];
/// Rate mode: 2000 probes/s for 1 s.
const RATE: &[&str] = &["-r", "2000", "-D", "1", "-t", "1"];
/// Flood mode: 64 in flight for 1 s; a lost probe holds its slot for the
/// 0.5 s timeout.
const FLOOD: &[&str] = &["--flood", "-w", "64", "-D", "1", "-t", "0.5"];

#[test]
fn ping_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, PING, ALL);
}

#[test]
fn ping_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, PING, ALL);
}

#[test]
fn rate_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, RATE, ALL);
}

#[test]
fn rate_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, RATE, ALL);
}

#[test]
fn flood_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, FLOOD, ALL);
}

#[test]
fn flood_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, FLOOD, ALL);
}

/// Issue 11 §2: the echoed send time (bytes 8–15) is part of the reply and
/// must be checked like the rest.
#[test]
fn ping_v4_a_flipped_bit_in_the_echoed_send_time_is_counted_corrupt() {
    let imp = Impairments {
        drops: false,
        duplicates: false,
        rewrite: Some(Rewrite::SendTime),
    };
    nft_run(Family::V4, &["-c", "100", "-i", "0.005", "-t", "1"], imp);
}

/// Issue 11 §2: a reply whose sequence number was changed to a neighbour's
/// is corrupt — not a duplicate, not foreign, and its probe was answered.
#[test]
fn ping_v6_a_flipped_bit_in_the_sequence_number_is_corrupt_not_a_duplicate() {
    let imp = Impairments {
        drops: false,
        duplicates: false,
        rewrite: Some(Rewrite::Sequence),
    };
    nft_run(Family::V6, &["-c", "100", "-i", "0.005", "-t", "1"], imp);
}

/// Flood with a flipped send-time bit, and drops and duplicates around it.
#[test]
fn flood_v4_a_flipped_bit_in_the_echoed_send_time_is_counted_corrupt() {
    let imp = Impairments {
        rewrite: Some(Rewrite::SendTime),
        ..ALL
    };
    nft_run(Family::V4, FLOOD, imp);
}

// ---------------------------------------------------------------------------
// A relay as ground truth for delay and reordering

/// What the relay does on top of relaying.
#[derive(Clone, Copy)]
struct RelayPlan {
    /// How long probe `seq` waits in the relay before going on to the server.
    delay: fn(u64) -> Duration,
    /// Hold every reply whose sequence number is a multiple of this until the
    /// next reply has been handed back (or [`HOLD_LIMIT`] passed).
    swap_every: Option<u64>,
}

/// The longest a held reply waits for a reply to overtake it.
const HOLD_LIMIT: Duration = Duration::from_millis(20);

/// What the relay did, from its own clock.
#[derive(Debug, Default)]
struct RelayTruth {
    /// Probes taken from the client.
    probes: u64,
    /// Replies handed back to the client.
    replies: u64,
    /// Replies handed back after a reply with a higher sequence number (the
    /// client's definition of reordered, applied to the relay's output).
    reordered: u64,
    /// Held replies that another overtook.
    swaps: u64,
    /// Per reply handed back: time from its probe's arrival at the relay to
    /// the reply's departure, and the delay the plan injected.
    spans: Vec<(Duration, Duration)>,
}

impl RelayTruth {
    fn min_ns(&self) -> f64 {
        self.spans
            .iter()
            .map(|s| s.0)
            .min()
            .unwrap_or_default()
            .as_nanos() as f64
    }
    fn max_ns(&self) -> f64 {
        self.spans
            .iter()
            .map(|s| s.0)
            .max()
            .unwrap_or_default()
            .as_nanos() as f64
    }
    fn mean_ns(&self) -> f64 {
        let total: f64 = self.spans.iter().map(|s| s.0.as_nanos() as f64).sum();
        total / self.spans.len().max(1) as f64
    }
}

fn seq_of(datagram: &[u8]) -> u64 {
    datagram
        .get(..8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// A relay running in a thread of its own inside the client host: the client
/// sends to its loopback address, it forwards to the server over the link.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<RelayTruth>,
}

impl Relay {
    fn start(net: &TestNet, family: Family, server: SocketAddr, plan: RelayPlan) -> Relay {
        let ns = net.client.clone();
        let loopback = family.loopback().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            TestNet::enter(&ns);
            let front = UdpSocket::bind((loopback.as_str(), 0)).expect("relay: bind front");
            let back = UdpSocket::bind(match server {
                SocketAddr::V4(_) => "0.0.0.0:0",
                SocketAddr::V6(_) => "[::]:0",
            })
            .expect("relay: bind back");
            back.connect(server).expect("relay: connect to the server");
            front.set_nonblocking(true).unwrap();
            back.set_nonblocking(true).unwrap();
            addr_tx.send(front.local_addr().unwrap()).unwrap();
            relay_loop(&front, &back, plan, &stopped)
        });
        let addr = addr_rx
            .recv_timeout(WAIT)
            .expect("the relay is ready within WAIT");
        Relay { addr, stop, thread }
    }

    fn finish(self) -> RelayTruth {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

/// Waits until either socket is readable or `timeout` passes.
fn poll2(a: &UdpSocket, b: &UdpSocket, timeout: Duration) {
    let mut fds = [a.as_raw_fd(), b.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.as_micros().div_ceil(1000).min(5) as libc::c_int;
    // SAFETY: `fds` is a valid array of two pollfd for the whole call.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
}

fn relay_loop(
    front: &UdpSocket,
    back: &UdpSocket,
    plan: RelayPlan,
    stop: &AtomicBool,
) -> RelayTruth {
    let deadline = Instant::now() + WAIT;
    let mut client: Option<SocketAddr> = None;
    // Probes waiting for their time: (release, arrival order, datagram).
    let mut queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut arrived: HashMap<u64, (Instant, Duration)> = HashMap::new();
    let mut held: Option<(Instant, Vec<u8>)> = None;
    let mut out = Output {
        front,
        highest: 0,
        truth: RelayTruth::default(),
    };
    let mut buf = vec![0u8; 65536];

    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let next = [
            queue.peek().map(|Reverse((t, _, _))| *t),
            held.as_ref().map(|h| h.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = next.map_or(Duration::from_millis(5), |t| {
            t.saturating_duration_since(Instant::now())
        });
        poll2(front, back, wait);
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            let now = Instant::now();
            client = Some(from);
            let seq = seq_of(&buf[..n]);
            let delay = (plan.delay)(seq);
            arrived.entry(seq).or_insert((now, delay));
            out.truth.probes += 1;
            queue.push(Reverse((now + delay, out.truth.probes, buf[..n].to_vec())));
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
            let Reverse((_, _, probe)) = queue.peek().expect("peeked");
            match back.send(probe) {
                Ok(_) => drop(queue.pop()),
                // The send buffer is full: try again on the next round.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("relay: forward a probe: {e}"),
            }
        }
        while let Ok(n) = back.recv(&mut buf) {
            let client = client.expect("replies come after probes");
            let reply = &buf[..n];
            if let Some((_, earlier)) = held.take() {
                out.hand_back(reply, client, &arrived);
                out.hand_back(&earlier, client, &arrived);
                out.truth.swaps += 1;
            } else if plan.swap_every.is_some_and(|k| seq_of(reply) % k == 0) {
                held = Some((Instant::now() + HOLD_LIMIT, reply.to_vec()));
            } else {
                out.hand_back(reply, client, &arrived);
            }
        }
        if held.as_ref().is_some_and(|h| h.0 <= Instant::now()) {
            let (_, reply) = held.take().expect("checked");
            out.hand_back(&reply, client.expect("a client"), &arrived);
        }
    }
    out.truth
}

/// The relay's client side: hands replies back and writes down what it did.
struct Output<'a> {
    front: &'a UdpSocket,
    highest: u64,
    truth: RelayTruth,
}

impl Output<'_> {
    /// `arrived`: each probe's arrival at the relay and its injected delay.
    fn hand_back(
        &mut self,
        reply: &[u8],
        client: SocketAddr,
        arrived: &HashMap<u64, (Instant, Duration)>,
    ) {
        // The time before the send: the client gets the reply after it.
        let now = Instant::now();
        let give_up = now + Duration::from_secs(1);
        loop {
            match self.front.send_to(reply, client) {
                Ok(_) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < give_up =>
                {
                    thread::sleep(Duration::from_micros(100));
                }
                Err(e) => panic!("relay: send a reply: {e}"),
            }
        }
        let seq = seq_of(reply);
        self.truth.replies += 1;
        if seq < self.highest {
            self.truth.reordered += 1;
        } else {
            self.highest = seq;
        }
        let (came, delay) = arrived[&seq];
        self.truth.spans.push((now - came, delay));
    }
}

/// Runs the client through a relay with `plan` and compares its reordering
/// and round trips with what the relay did.
fn relay_run(family: Family, mode: &[&str], plan: RelayPlan) {
    let Some(net) = net_or_skip(false) else {
        return;
    };
    let server = start_server_via(
        &["ip", "netns", "exec", &net.server],
        &["--host", family.server(), "--port", "0"],
    );
    let relay = Relay::start(&net, family, server.addr, plan);
    let (host, port) = (relay.addr.ip().to_string(), relay.addr.port().to_string());
    let args = [
        &["-H", host.as_str(), "-p", &port, "--json", "-q"][..],
        mode,
    ]
    .concat();
    let run = run_client_in(&net.client, &args);
    let truth = relay.finish();
    let json = json_of(&run);
    let rtt = |k: &str| {
        json["rtt_us"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("no rtt_us.{k} in {json}"))
            * 1e3
    };
    let context = format!(
        "client {args:?}: exit {:?}\nclient JSON: {json}\n\
         relay: {} probes in, {} replies out, {} reordered, {} swaps; \
         time in the relay min {:.0} mean {:.0} max {:.0} ns\nclient stderr:\n{}",
        run.code(),
        truth.probes,
        truth.replies,
        truth.reordered,
        truth.swaps,
        truth.min_ns(),
        truth.mean_ns(),
        truth.max_ns(),
        run.stderr
    );

    // The harness: every probe answered, each no sooner than planned.
    assert_eq!(
        truth.replies, truth.probes,
        "harness: a probe went unanswered\n{context}"
    );
    assert!(truth.reordered > 0, "harness: nothing reordered\n{context}");
    for (span, delay) in &truth.spans {
        assert!(span >= delay, "harness: relay released early\n{context}");
    }

    assert_books(
        &format!("{family:?} {mode:?} through the relay"),
        &[
            ("sent", count(&json, "sent"), truth.probes),
            ("received", count(&json, "received"), truth.replies),
            ("lost", count(&json, "lost"), 0),
            ("duplicates", count(&json, "duplicates"), 0),
            ("corrupt", count(&json, "corrupt"), 0),
            ("reordered", count(&json, "reordered"), truth.reordered),
        ],
        &context,
    );
    // Each reply's round trip contains its probe's whole stay in the relay,
    // so each of the client's figures is at least the relay's (1 ns of
    // slack for the µs floats); the injected delay is a floor of both.
    let floor = truth.spans.iter().map(|s| s.1).min().unwrap_or_default();
    assert!(
        rtt("min") + 1.0 >= truth.min_ns() && truth.min_ns() >= floor.as_nanos() as f64,
        "min RTT below the time in the relay ({floor:?} injected)\n{context}"
    );
    assert!(
        rtt("max") + 1.0 >= truth.max_ns(),
        "max RTT below the longest time in the relay\n{context}"
    );
    assert!(
        rtt("mean") + 1.0 >= truth.mean_ns(),
        "mean RTT below the mean time in the relay\n{context}"
    );
    // And not much more: the client's own part of a round trip (two
    // loopback hops and its scheduling) is well under 20 ms on average even
    // on a busy CI host; a clock or bookkeeping error would be far larger.
    assert!(
        rtt("mean") <= truth.mean_ns() + 20e6,
        "mean RTT far above the mean time in the relay\n{context}"
    );
    drop(server);
}

/// Ping, IPv4: every 4th probe (1, 5, 9, …) waits 45 ms in the relay, the
/// others 5 ms; probes leave every 10 ms, so each slow one is overtaken by
/// the three after it.
#[test]
fn ping_v4_rtt_and_reordering_match_a_delaying_relay() {
    let plan = RelayPlan {
        delay: |seq| Duration::from_millis(if seq % 4 == 1 { 45 } else { 5 }),
        swap_every: None,
    };
    relay_run(Family::V4, &["-c", "60", "-i", "0.01", "-t", "1"], plan);
}

/// Rate, IPv6: every 7th probe waits 25 ms, the others 2 ms, at 400/s.
#[test]
fn rate_v6_rtt_and_reordering_match_a_delaying_relay() {
    let plan = RelayPlan {
        delay: |seq| Duration::from_millis(if seq % 7 == 0 { 25 } else { 2 }),
        swap_every: None,
    };
    relay_run(Family::V6, &["-r", "400", "-D", "1", "-t", "1"], plan);
}

/// Flood, IPv4: no delay; every 10th reply is held until the next one has
/// passed it, so each swap is one reordered reply.
#[test]
fn flood_v4_reordering_matches_a_relay_that_swaps_pairs() {
    let plan = RelayPlan {
        delay: |_| Duration::ZERO,
        swap_every: Some(10),
    };
    relay_run(
        Family::V4,
        &["--flood", "-w", "8", "-D", "1", "-t", "1"],
        plan,
    );
}
