//! The fleet prober's two loose pieces: `/probe` (the blackbox_exporter
//! pattern, served by `udp-echo-client --metrics ADDR:PORT` with no target)
//! and the DNS sources (`dns+srv:`, `dns+a:`), listed with `--list-targets`
//! inside a network namespace that has a real DNS server (dnsmasq) and its
//! own resolv.conf.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{self, CLIENT, ServerProcess, WAIT, skip, start_server};
use crate::metrics::promtool;

/// A running `udp-echo-client --metrics 127.0.0.1:0` exporter; killed on drop.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Exporter {
    fn start() -> Exporter {
        Exporter::start_with(&[], &[])
    }

    /// The exporter started through `wrapper` (`ip netns exec NS`).
    fn start_via(wrapper: &[&str]) -> Exporter {
        Exporter::start_with(wrapper, &[])
    }

    /// The exporter started through `wrapper`, with `extra` arguments.
    fn start_with(wrapper: &[&str], extra: &[&str]) -> Exporter {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = common::command(program);
                command.args(args).arg(CLIENT);
                command
            }
            None => common::command(CLIENT),
        };
        let mut child = command
            .args(["--metrics", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn udp-echo-client");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        let addr = line
            .trim_end()
            .strip_prefix("metrics on http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!("no `metrics on` line from the exporter: {line:?}");
        };
        Exporter { child, addr }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the exporter ignored SIGTERM");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `GET path` with extra header lines; the status and the body.
fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    try_get(addr, path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn try_get(addr: SocketAddr, path: &str, headers: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    Ok((status, body))
}

/// The value of the sample `name` (no labels) in a text exposition.
fn value(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
        .parse()
        .unwrap()
}

fn echo_server() -> ServerProcess {
    start_server(&["-H", "127.0.0.1", "--port", "0"])
}

#[test]
fn a_probe_of_a_live_server_succeeds_with_every_probe_answered() {
    let server = echo_server();
    let exporter = Exporter::start();
    let path = format!(
        "/probe?target=127.0.0.1:{}&count=5&interval=0.01",
        server.addr.port()
    );
    let (status, body) = get(exporter.addr, &path, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_sent"), 5.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_received"), 5.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_lost"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_corrupt"), 0.0, "{body}");
    assert_eq!(
        value(&body, "probe_udp_echo_rtt_seconds_count"),
        5.0,
        "{body}"
    );
    assert!(
        value(&body, "probe_udp_echo_rtt_max_seconds") > 0.0,
        "{body}"
    );
    if let Some((ok, said)) = promtool(&body) {
        assert!(ok, "promtool check metrics:\n{said}\n{body}");
    }
    // The exporter's own counters say one burst ran.
    let (status, metrics) = get(exporter.addr, "/metrics", "");
    assert_eq!(status, 200);
    assert_eq!(
        value(&metrics, "udp_echo_exporter_probes_total"),
        1.0,
        "{metrics}"
    );
    if let Some((ok, said)) = promtool(&metrics) {
        assert!(ok, "promtool check metrics:\n{said}\n{metrics}");
    }
}

#[test]
fn a_probe_over_ipv6_names_its_target_in_brackets() {
    if !common::has_ipv6_loopback() {
        skip("no IPv6 loopback");
        return;
    }
    let server = start_server(&["-H", "::1", "--port", "0"]);
    let exporter = Exporter::start();
    let path = format!(
        "/probe?target=%5B::1%5D:{}&count=2&interval=0",
        server.addr.port()
    );
    let (status, body) = get(exporter.addr, &path, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_received"), 2.0, "{body}");
    assert_eq!(value(&body, "probe_ip_protocol"), 6.0, "{body}");
}

#[test]
fn a_probe_of_a_closed_port_fails_with_every_probe_lost() {
    let exporter = Exporter::start();
    let port = common::closed_port();
    let path = format!("/probe?target=127.0.0.1:{port}&count=3&interval=0.01&timeout=0.2");
    let (status, body) = get(exporter.addr, &path, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_sent"), 3.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_lost"), 3.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_loss_ratio"), 1.0, "{body}");
}

#[test]
fn a_stamp_probe_of_a_stamp_reflector_succeeds() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "--port", "0"]);
    let exporter = Exporter::start();
    let path = format!(
        "/probe?target=127.0.0.1:{}&mode=stamp&count=4&interval=0.01",
        server.addr.port()
    );
    let (status, body) = get(exporter.addr, &path, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_received"), 4.0, "{body}");
    // Echo probes to the STAMP reflector are not STAMP: no intact reply.
    let path = format!(
        "/probe?target=127.0.0.1:{}&count=2&timeout=0.2",
        server.addr.port()
    );
    let (_, body) = get(exporter.addr, &path, "");
    assert_eq!(value(&body, "probe_udp_echo_received"), 0.0, "{body}");
}

#[test]
fn bad_probe_requests_are_refused_at_once_with_the_reason() {
    let exporter = Exporter::start();
    for (path, reason) in [
        ("/probe?target=127.0.0.1:7&count=100000", "count"),
        ("/probe", "missing parameter target"),
        ("/probe?count=3", "missing parameter target"),
        ("/probe?target=127.0.0.1:7&mode=icmp", "mode"),
        ("/probe?target=127.0.0.1:7&cuont=3", "unknown parameter"),
        ("/probe?target=127.0.0.1", "HOST:PORT"),
        (
            "/probe?target=127.0.0.1:7&count=100&interval=1",
            "over the 10 s",
        ),
    ] {
        let (status, body) = get(exporter.addr, path, "");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(reason), "{path}: {body}");
        assert_eq!(body.lines().count(), 1, "one line: {body}");
    }
    // Prometheus' scrape timeout bounds the burst: 10 x 0.1 + 1 = 2 s.
    let path = "/probe?target=127.0.0.1:7&count=10&interval=0.1";
    let (status, body) = get(
        exporter.addr,
        path,
        "X-Prometheus-Scrape-Timeout-Seconds: 2\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("scrape timeout"), "{body}");
    let (_, metrics) = get(exporter.addr, "/metrics", "");
    assert!(
        metrics.contains("udp_echo_exporter_probes_refused_total{reason=\"bad_request\"} 8"),
        "{metrics}"
    );
    assert_eq!(
        value(&metrics, "udp_echo_exporter_probes_total"),
        0.0,
        "{metrics}"
    );
}

#[test]
fn a_target_that_does_not_resolve_is_a_failed_probe() {
    let exporter = Exporter::start();
    let (status, body) = get(exporter.addr, "/probe?target=no-such-host.invalid:7", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_udp_echo_sent"), 0.0, "{body}");
}

/// 100 concurrent bursts of 2 s each: every request gets 200 or 503 (never
/// a hang or a reset), at most 16 run at once, `/metrics` is answered while
/// they run, and the exporter stays up.
#[test]
fn a_hundred_concurrent_probes_are_answered_or_refused() {
    let mut exporter = Exporter::start();
    // A socket that never answers (and, open, draws no ICMP refusal): each
    // burst waits out its 2 s timeout, so they overlap.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let addr = exporter.addr;
    let path = format!("/probe?target=127.0.0.1:{port}&count=1&timeout=2");
    let workers: Vec<_> = (0..100)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || try_get(addr, &path, ""))
        })
        .collect();
    // While they run, a scrape of /metrics is answered at once.
    let (status, metrics) = get(addr, "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        value(&metrics, "udp_echo_exporter_probes_running") <= 16.0,
        "{metrics}"
    );
    let mut by_status = std::collections::BTreeMap::new();
    for w in workers {
        let (status, body) = w
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("a request failed: {e}"));
        assert!(status == 200 || status == 503, "{status}: {body}");
        *by_status.entry(status).or_insert(0) += 1;
    }
    let ok = by_status.get(&200).copied().unwrap_or(0);
    let busy = by_status.get(&503).copied().unwrap_or(0);
    assert_eq!(ok + busy, 100, "{by_status:?}");
    assert!(ok >= 1 && busy >= 1, "{by_status:?}");
    assert!(exporter.is_running());
    let (_, metrics) = get(addr, "/metrics", "");
    assert_eq!(
        value(&metrics, "udp_echo_exporter_probes_total"),
        ok as f64,
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "udp_echo_exporter_probes_refused_total{{reason=\"busy\"}} {busy}"
        )),
        "{metrics}"
    );
    // SIGTERM stops it, exit 0.
    assert_eq!(exporter.terminate().code(), Some(0));
}

/// `--probe-allow 127.0.0.2/32`: an address outside it, given as such or
/// by a name that resolves to it, is refused with 403 and not one datagram
/// is sent to it; one inside is probed.
#[test]
fn probe_allow_refuses_targets_outside_it_and_sends_nothing() {
    let exporter = Exporter::start_with(&[], &["--probe-allow", "127.0.0.2/32"]);
    let outside = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    outside
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = outside.local_addr().unwrap().port();
    for target in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, body) = get(
            exporter.addr,
            &format!("/probe?target={target}&count=3&interval=0.01"),
            "",
        );
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("--probe-allow"), "{body}");
    }
    let mut buf = [0u8; 2048];
    assert!(
        outside.recv_from(&mut buf).is_err(),
        "a target outside --probe-allow was sent a datagram"
    );
    let inside = start_server(&["-H", "127.0.0.2", "--port", "0"]);
    let (status, body) = get(
        exporter.addr,
        &format!(
            "/probe?target=127.0.0.2:{}&count=2&interval=0.01",
            inside.addr.port()
        ),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    let (_, metrics) = get(exporter.addr, "/metrics", "");
    assert!(
        metrics.contains("udp_echo_exporter_probes_refused_total{reason=\"not_allowed\"} 2"),
        "{metrics}"
    );
}

/// 16 clients ask for 10 s bursts against a silent socket and hang up at
/// once: each burst ends when its client goes (blackbox_exporter cancels a
/// probe whose request was cancelled too), so the 16 places are free again
/// in well under a burst's time, not taken for 10 s by nobody.
#[test]
fn bursts_whose_clients_hang_up_end_early() {
    let exporter = Exporter::start();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let running = || {
        let (_, metrics) = get(exporter.addr, "/metrics", "");
        value(&metrics, "udp_echo_exporter_probes_running")
    };
    let wait_for = |want: f64| {
        let deadline = Instant::now() + WAIT;
        while running() != want {
            assert!(Instant::now() < deadline, "never {want} running");
            thread::sleep(Duration::from_millis(20));
        }
    };
    let clients: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&exporter.addr, WAIT).unwrap();
            write!(
                stream,
                "GET /probe?target=127.0.0.1:{port}&count=2&interval=0&timeout=5 HTTP/1.1\r\n\r\n"
            )
            .unwrap();
            stream
        })
        .collect();
    wait_for(16.0);
    drop(clients);
    let hung_up = Instant::now();
    wait_for(0.0);
    let took = hung_up.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the bursts ran {took:?} after their clients left (10 s each)"
    );
    let (status, body) = get(
        exporter.addr,
        &format!("/probe?target=127.0.0.1:{port}&count=1&timeout=0.05"),
        "",
    );
    assert_eq!(status, 200, "{body}");
}

#[cfg(target_os = "linux")]
mod dns;
