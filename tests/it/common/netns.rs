//! Two test hosts in network namespaces of their own — `client` and `server`,
//! joined by one veth link with IPv4 and IPv6 addresses — plus the tools to
//! use them: nftables rule sets and their named counters, the kernel's UDP
//! counters, and moving a test thread into a namespace. Everything is removed
//! on drop, also when the test panics.
//!
//! Needs root and ip(8) ([`TestNet::new`]), and nft(8) for rules
//! ([`nft_available`]); both say why not otherwise, so the caller can skip
//! visibly. Every command runs with a deadline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long one ip(8) / nft(8) / cat(1) command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// The client host's addresses on the link (each namespace has its own
/// address space, so every test can use the same ones).
pub(crate) const CLIENT_V4: &str = "10.0.0.1";
/// The server host's IPv4 address.
pub(crate) const SERVER_V4: &str = "10.0.0.2";
/// The client host's IPv6 address.
pub(crate) const CLIENT_V6: &str = "fd00:ac::1";
/// The server host's IPv6 address.
pub(crate) const SERVER_V6: &str = "fd00:ac::2";

/// A pair of namespaces joined by a veth link; deleted on drop.
pub(crate) struct TestNet {
    /// Namespace of the client host.
    pub client: String,
    /// Namespace of the server host.
    pub server: String,
    /// The client host's end of the link.
    pub client_dev: String,
    /// The server host's end of the link.
    pub server_dev: String,
    made: Vec<String>,
}

/// Runs `program args` (stdin: `input`), kills it after [`COMMAND_LIMIT`];
/// `Ok(stdout)` when it exits 0, `Err` with its stderr otherwise.
pub(crate) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = crate::common::command(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
        let text = text.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let reader = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: still running after {COMMAND_LIMIT:?}"));
        }
        thread::sleep(Duration::from_millis(2));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{what}: {status}: {}", err.trim()))
    }
}

/// `Err` saying why when nft(8) cannot be run.
pub(crate) fn nft_available() -> Result<(), String> {
    run("nft", &["--version"], None)
        .map(drop)
        .map_err(|e| format!("no nft(8) (nftables): {e}"))
}

fn must(program: &str, args: &[&str]) -> String {
    run(program, args, None).unwrap_or_else(|why| panic!("{why}"))
}

impl TestNet {
    /// Builds the two hosts and the link. `Err` (the caller skips) only when
    /// this environment cannot do it at all: not root, no ip(8), namespaces
    /// refused. Any later failure panics: it is a bug in the test.
    pub(crate) fn new() -> Result<TestNet, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces and nftables need root".into());
        }
        run("ip", &["-V"], None).map_err(|e| format!("no ip(8) (iproute2): {e}"))?;
        // Unique per process and per test in it (tests run in parallel, and
        // so may other test processes on this host): the separators keep
        // process 12 test 34 apart from process 123 test 4. Interface names
        // stay within 15 bytes (pid ≤ 7 digits).
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut net = TestNet {
            client: format!("udpecho-acc-{pid}-{n}-c"),
            server: format!("udpecho-acc-{pid}-{n}-s"),
            client_dev: format!("ua{pid}c{n}"),
            server_dev: format!("ua{pid}s{n}"),
            made: Vec::new(),
        };
        for (i, ns) in [net.client.clone(), net.server.clone()]
            .into_iter()
            .enumerate()
        {
            // A namespace of this name can only be left over by a crashed
            // run of a process with this same id: it is no one's any more.
            let _ = run("ip", &["netns", "del", &ns], None);
            match run("ip", &["netns", "add", &ns], None) {
                Err(why) if i == 0 => return Err(format!("cannot create a namespace: {why}")),
                other => {
                    other.unwrap_or_else(|why| panic!("{why}"));
                }
            }
            net.made.push(ns.clone());
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (c, s) = (net.client.as_str(), net.server.as_str());
        let (cd, sd) = (net.client_dev.as_str(), net.server_dev.as_str());
        let (client_mac, server_mac) = ("02:ac:00:00:00:01", "02:ac:00:00:00:02");
        must(
            "ip",
            &[
                "link", "add", cd, "netns", c, "address", client_mac, "type", "veth", "peer",
                "name", sd, "netns", s, "address", server_mac,
            ],
        );
        let hosts = [
            (
                c, cd, CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6, server_mac,
            ),
            (
                s, sd, SERVER_V4, SERVER_V6, CLIENT_V4, CLIENT_V6, client_mac,
            ),
        ];
        for (ns, dev, v4, v6, peer_v4, peer_v6, peer_mac) in hosts {
            must(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev],
            );
            // nodad: the address is usable at once, not after duplicate detection.
            must(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            );
            // One datagram per packet on the wire: should a sender use UDP
            // GSO, the kernel splits its super-packets before the link, so
            // the rules on the receiving side see (and count) each datagram.
            must(
                "ip",
                &["-n", ns, "link", "set", dev, "gso_max_segs", "1", "up"],
            );
            // Static neighbours: no ARP / neighbour discovery on the path, so
            // no datagram waits in a queue for an address to resolve (a lost
            // first solicitation would hold replies for a second).
            for peer in [peer_v4, peer_v6] {
                must(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "neigh",
                        "replace",
                        peer,
                        "lladdr",
                        peer_mac,
                        "dev",
                        dev,
                        "nud",
                        "permanent",
                    ],
                );
            }
        }
        Ok(net)
    }

    /// Loads an nftables rule set (`nft -f -` syntax) into `ns`.
    pub(crate) fn nft(&self, ns: &str, ruleset: &str) {
        run(
            "ip",
            &["netns", "exec", ns, "nft", "-f", "-"],
            Some(ruleset),
        )
        .unwrap_or_else(|why| panic!("{why}\nrule set:\n{ruleset}"));
    }

    /// The packet counts of the named nftables counters in `ns`.
    pub(crate) fn counters(&self, ns: &str) -> HashMap<String, u64> {
        let text = must(
            "ip",
            &["netns", "exec", ns, "nft", "-j", "list", "counters"],
        );
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("nft -j: {e}: {text}"));
        json["nftables"]
            .as_array()
            .expect("nft -j lists an array")
            .iter()
            .filter_map(|item| {
                let c = item.get("counter")?;
                Some((c["name"].as_str()?.to_owned(), c["packets"].as_u64()?))
            })
            .collect()
    }

    /// The kernel's UDP counters in `ns` (`/proc/net/snmp` for IPv4,
    /// `/proc/net/snmp6` for IPv6), named as in IPv4's file: `InDatagrams`,
    /// `InErrors`, `RcvbufErrors`, `InCsumErrors`, …
    pub(crate) fn udp_counters(&self, ns: &str, v6: bool) -> HashMap<String, u64> {
        let file = if v6 {
            "/proc/net/snmp6"
        } else {
            "/proc/net/snmp"
        };
        let text = must("ip", &["netns", "exec", ns, "cat", file]);
        if v6 {
            text.lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace();
                    let name = words.next()?.strip_prefix("Udp6")?;
                    Some((name.to_owned(), words.next()?.parse().ok()?))
                })
                .collect()
        } else {
            let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
            assert_eq!(rows.len(), 2, "two Udp: lines in {file}:\n{text}");
            rows[0]
                .split_whitespace()
                .zip(rows[1].split_whitespace())
                .skip(1)
                .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
                .collect()
        }
    }

    /// Moves the calling thread into `ns` (network namespaces are per
    /// thread): sockets it opens afterwards live there. Meant for a thread
    /// the test spawns for this purpose and lets end.
    pub(crate) fn enter(ns: &str) {
        let file = File::open(format!("/run/netns/{ns}"))
            .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
        // SAFETY: setns(2) on a namespace file we hold open; it only changes
        // this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
    }
}

/// A namespace pair for `test`, or a visible skip (`None`) where namespaces
/// cannot be made (not root, no ip(8)).
pub(crate) fn test_net(test: &str) -> Option<TestNet> {
    match TestNet::new() {
        Ok(net) => Some(net),
        Err(why) => {
            super::skip(&format!("{test}: {why}"));
            None
        }
    }
}

/// Runs `work` on a thread inside namespace `ns` (namespaces are per thread).
pub(crate) fn in_ns<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        TestNet::enter(&ns);
        work()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth link, and with it
        // the other end.
        for ns in &self.made {
            if let Err(why) = run("ip", &["netns", "del", ns], None) {
                eprintln!("cleanup: {why}");
            }
        }
    }
}
