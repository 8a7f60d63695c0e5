//! The features no peer tool offers: the port-sharing watch, loss attribution,
//! --find-rate, --pmtu and --doctor.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use socket2::{Domain, Socket, Type};
use udp_echo::net::udp_table;

/// A socket that sets SO_REUSEADDR and binds `addr`, as a hijacker would.
fn co_bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[test]
fn a_socket_that_joins_the_port_is_named_and_counted() {
    let mut server = start_server(&["--port", "0"]);
    let intruder = co_bind(server.addr).expect("SO_REUSEADDR lets a second socket bind");
    let Some(inode) = udp_table::socket_inode(&intruder) else {
        skip("no /proc/self/fd socket links on this system");
        return;
    };
    assert!(
        server.wait_for_stderr(&format!("inode {inode}"), Duration::from_secs(6)),
        "no warning within the watch interval:\n{}",
        server.stderr()
    );
    let warning = server
        .stderr()
        .lines()
        .find(|l| l.contains("shares UDP port"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains(&format!("UDP port {}", server.addr.port())),
        "{warning}"
    );
    assert!(warning.contains("uid "), "{warning}");
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert!(stderr.contains("port sharers 1"), "{stderr}");
    assert_eq!(
        stderr.matches("shares UDP port").count(),
        1,
        "warned once: {stderr}"
    );
}

#[test]
fn exclusive_makes_the_kernel_refuse_a_co_binder() {
    let server = start_server(&["--port", "0", "--exclusive"]);
    let err = co_bind(server.addr).expect_err("an --exclusive server's port cannot be shared");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(echo(&udp_client(), server.addr, b"mine"), b"mine");
}

#[test]
fn loss_in_the_clients_own_receive_buffer_is_told_apart_from_the_path() {
    let server = start_server(&["--port", "0", "--recv-buf", "4M"]);
    let port = server.addr.port().to_string();
    // A tiny client receive buffer and 64 large probes in flight: replies pile
    // up faster than one buffer of ~8 KiB holds, and the kernel drops them here.
    // Without GRO: a coalesced buffer of many replies is taken into an empty
    // queue whatever its size, so GRO would make the overflow a matter of luck.
    let no_gro = [("UDP_ECHO_CLIENT_OFFLOAD", "no-gro")];
    let args = [
        "-p",
        &port,
        "--flood",
        "-w",
        "64",
        "-s",
        "1400",
        "--recv-buf",
        "4K",
        "-D",
        "0.5",
        "-t",
        "0.2",
    ];
    let run = run_client_env(&[&args[..], &["--json"]].concat(), &no_gro);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let Some(mine) = json["client_drops"].as_u64() else {
        skip("no per-socket drop counter on this system");
        return;
    };
    let lost = json["lost"].as_u64().unwrap();
    assert!(
        mine > 0,
        "a 4 KiB buffer overflows under this flood: {json}"
    );
    assert!(mine <= lost, "client drops are part of the loss: {json}");
    let human = run_client_env(&args, &no_gro);
    assert!(
        human
            .stdout_text()
            .contains("dropped in this client's receive buffers"),
        "{}",
        human.stdout_text()
    );
}

#[test]
fn find_rate_finds_the_servers_rate_limit() {
    // The server answers each source 1000 datagrams/s with a burst of one
    // second's budget. A 1 s step that starts with a full bucket (the 1 s
    // settle pause refills it) passes up to 1000 + 1000 = 2000 probes/s, and
    // no step above that can pass; at 1000 and below every step passes. So the
    // answer lies in [1000, 2000], less the 5% bisection precision at the low end.
    let server = start_server(&["--port", "0", "--rate-limit", "1000"]);
    // At most 24 steps of 1 s plus 1 s pauses: bounded, though longer than WAIT.
    let port = server.addr.port().to_string();
    let run = run_client_within(
        &["-p", &port, "--find-rate", "--json"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let answer = json["answer_pps"]
        .as_f64()
        .unwrap_or_else(|| panic!("no answer: {json}"));
    assert!((950.0..=2000.0).contains(&answer), "{json}");
    let steps = json["steps"].as_array().unwrap();
    assert!(steps.len() >= 3 && steps.len() <= 24, "{json}");
    assert_eq!(steps[0]["rate_pps"].as_f64(), Some(1000.0));
    assert!(
        steps.iter().any(|s| s["ok"] == false),
        "a failing step brackets the answer: {json}"
    );
}

#[test]
fn pmtu_on_loopback_fits_the_largest_payload() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "--pmtu", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["largest_payload"], 65507, "{json}");
    assert!(json["limit"].is_null(), "{json}");
}

/// Network namespaces this test creates for itself (its own test hosts, joined
/// by veth links), removed on drop.
struct TestNet {
    namespaces: Vec<String>,
    id: u32,
}

impl TestNet {
    /// Creates one namespace per role, named after the role and this process.
    /// `Err` only when this environment cannot make namespaces at all (not
    /// root, no ip(8), no permission), and the caller skips; any later failure
    /// is a bug in the test and panics.
    fn new(roles: &[&str]) -> Result<TestNet, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("creating network namespaces needs root".into());
        }
        // Unique per test in this process too: tests run in parallel.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let mut net = TestNet {
            namespaces: Vec::new(),
            id: std::process::id() % 100_000 * 10 + n,
        };
        for (i, role) in roles.iter().enumerate() {
            let name = net.ns(role);
            match net.ip(&["netns", "add", &name]) {
                Err(why) if i == 0 => return Err(why),
                other => other.unwrap(),
            }
            net.namespaces.push(name);
            net.ip(&["-n", &net.ns(role), "link", "set", "lo", "up"])
                .unwrap();
        }
        Ok(net)
    }

    fn ns(&self, role: &str) -> String {
        format!("udpecho-{role}{}", self.id)
    }

    /// Runs one ip(8) command; its stderr is the error.
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip(8): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs ip(8) for the set-up after the namespaces exist: failures panic.
    fn must(&self, args: &[&str]) {
        self.ip(args).unwrap_or_else(|why| panic!("{why}"));
    }

    /// A veth link between two roles' namespaces, with addresses and an MTU;
    /// interface names (at most 15 bytes) are unique per link and per test.
    fn link(&self, (a, a_addr): (&str, &str), (b, b_addr): (&str, &str), mtu: u32) {
        let (na, nb) = (self.ns(a), self.ns(b));
        let (va, vb) = (format!("{a}{b}{}", self.id), format!("{b}{a}{}", self.id));
        let mtu = mtu.to_string();
        self.must(&[
            "link", "add", &va, "netns", &na, "type", "veth", "peer", "name", &vb, "netns", &nb,
        ]);
        for (ns, dev, addr) in [(&na, &va, a_addr), (&nb, &vb, b_addr)] {
            self.must(&["-n", ns, "addr", "add", addr, "dev", dev]);
            self.must(&["-n", ns, "link", "set", dev, "mtu", &mtu, "up"]);
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = self.ip(&["netns", "del", ns]);
        }
    }
}

/// Runs the client's `--pmtu` from the `c` namespace against a server in the
/// `s` namespace at `server_ip`: returns the JSON and the human report.
fn pmtu_between(net: &TestNet, server_ip: &str) -> (serde_json::Value, String) {
    let server = start_server_via(
        &["ip", "netns", "exec", &net.ns("s")],
        &["--host", server_ip, "--port", "0"],
    );
    let port = server.addr.port().to_string();
    let client_ns = net.ns("c");
    let args = [
        "netns", "exec", &client_ns, CLIENT, "-H", server_ip, "-p", &port, "--pmtu",
    ];
    let run = run_program("ip", &[&args[..], &["--json"]].concat(), None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let human = run_program("ip", &args, None);
    assert_eq!(human.code(), Some(0), "{}", human.stderr);
    (
        serde_json::from_slice(&run.stdout).unwrap(),
        human.stdout_text(),
    )
}

#[test]
fn pmtu_across_a_1280_byte_link_is_1252_and_names_the_local_limit() {
    let net = match TestNet::new(&["c", "s"]) {
        Ok(net) => net,
        Err(why) => return skip(&why),
    };
    net.link(("c", "10.231.1.1/24"), ("s", "10.231.1.2/24"), 1280);
    let (json, human) = pmtu_between(&net, "10.231.1.2");
    // IPv4: 1280 − 20 (IP header) − 8 (UDP header).
    assert_eq!(json["largest_payload"], 1252, "{json}");
    assert_eq!(json["kernel_path_mtu"], 1280, "{json}");
    assert_eq!(json["limit"]["emsgsize"]["path_mtu"], 1280, "{json}");
    assert!(
        human.contains("largest payload that echoes intact: 1252 bytes"),
        "{human}"
    );
    assert!(human.contains("limit: local EMSGSIZE"), "{human}");
}

#[test]
fn pmtu_learns_a_narrower_link_beyond_a_router_from_icmp() {
    // client —1500— router —1280— server: the client's own interface allows
    // 1472 bytes; only the router's ICMP "fragmentation needed" tells it about
    // the 1280-byte link behind.
    let net = match TestNet::new(&["c", "r", "s"]) {
        Ok(net) => net,
        Err(why) => return skip(&why),
    };
    net.link(("c", "10.232.1.1/24"), ("r", "10.232.1.2/24"), 1500);
    net.link(("r", "10.232.2.1/24"), ("s", "10.232.2.2/24"), 1280);
    net.must(&[
        "-n",
        &net.ns("c"),
        "route",
        "add",
        "default",
        "via",
        "10.232.1.2",
    ]);
    net.must(&[
        "-n",
        &net.ns("s"),
        "route",
        "add",
        "default",
        "via",
        "10.232.2.1",
    ]);
    net.must(&[
        "netns",
        "exec",
        &net.ns("r"),
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    let (json, human) = pmtu_between(&net, "10.232.2.2");
    assert_eq!(json["largest_payload"], 1252, "{json}");
    assert_eq!(
        json["kernel_path_mtu"], 1280,
        "the route learned the router's MTU: {json}"
    );
    let mtus: Vec<u64> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["outcome"]["emsgsize"]["path_mtu"].as_u64())
        .collect();
    assert!(
        mtus.contains(&1500) && mtus.contains(&1280),
        "first the interface's MTU, then the ICMP-learned one: {json}"
    );
    assert!(
        human.contains("largest payload that echoes intact: 1252 bytes"),
        "{human}"
    );
}

#[test]
fn doctor_against_a_running_server_names_it_and_exits_0() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(&["-p", &server.addr.port().to_string(), "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{out}\n{}", run.stderr);
    assert!(
        out.contains(&format!("held by one socket: {}", server.addr)),
        "{out}"
    );
    assert!(out.contains("[ok]     ping: ping against"), "{out}");
    assert!(out.contains("[ok]     flood: flood against"), "{out}");
    assert!(out.contains("not used by UDP"), "{out}");
    assert!(out.contains("\n0 need action, "), "{out}");
}

#[test]
fn doctor_against_a_shared_port_says_so_and_exits_1() {
    let server = start_server(&["--port", "0"]);
    let _intruder = co_bind(server.addr).unwrap();
    let run = run_client(&["-p", &server.addr.port().to_string(), "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{out}\n{}", run.stderr);
    assert!(
        out.contains(&format!(
            "[ACTION] port: UDP port {} is held by 2 sockets",
            server.addr.port()
        )),
        "{out}"
    );
    assert!(out.contains("--exclusive"), "{out}");
}

#[test]
fn doctor_with_no_server_checks_the_host_in_process() {
    let port = closed_port().to_string();
    let run = run_client(&["-p", &port, "--doctor"], None);
    let out = run.stdout_text();
    assert_eq!(
        run.code(),
        Some(0),
        "a healthy host with no server needs no action: {out}\n{}",
        run.stderr
    );
    assert!(out.contains("no echo server answers"), "{out}");
    assert!(
        out.contains("against an in-process server on 127.0.0.1:"),
        "{out}"
    );
}

#[test]
fn doctor_json_lists_every_finding_with_its_severity() {
    let server = start_server(&["--port", "0"]);
    let run = run_client(
        &["-p", &server.addr.port().to_string(), "--doctor", "--json"],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["mode"], "doctor");
    let findings = json["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["topic"] == "port" && f["severity"] == "ok"),
        "{json}"
    );
    assert!(findings.iter().all(|f| f["severity"] != "action"), "{json}");
}
