//! A relay as ground truth for delay and reordering: it delays probes and
//! swaps replies by plan and writes down what it did; the client's
//! `reordered` and round trips must agree.

use super::*;

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
