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

// ---- DNS sources, in a namespace with dnsmasq ----

#[cfg(target_os = "linux")]
mod dns {
    use super::*;
    use crate::common::netns::{self, SERVER_V4, TestNet};

    /// The namespace pair, with dnsmasq on the server host answering
    /// `fleet.test` and the client host's resolv.conf pointing at it
    /// (`ip netns exec` mounts /etc/netns/NS/resolv.conf over /etc's).
    struct Dns {
        net: TestNet,
        dnsmasq: Option<Child>,
        etc: std::path::PathBuf,
        conf: Option<std::path::PathBuf>,
    }

    impl Drop for Dns {
        fn drop(&mut self) {
            if let Some(child) = &mut self.dnsmasq {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&self.etc);
            if let Some(conf) = &self.conf {
                let _ = std::fs::remove_file(conf);
            }
        }
    }

    impl Dns {
        /// The namespaces and the client's resolv.conf (`nameserver`
        /// SERVER_V4, 1 s, 2 attempts), or a skip.
        fn new(test: &str) -> Option<Dns> {
            let net = netns::test_net(test)?;
            let etc = std::path::PathBuf::from(format!("/etc/netns/{}", net.client));
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(
                etc.join("resolv.conf"),
                format!("nameserver {SERVER_V4}\noptions timeout:1 attempts:2\n"),
            )
            .unwrap();
            Some(Dns {
                net,
                dnsmasq: None,
                etc,
                conf: None,
            })
        }

        /// Starts dnsmasq in the server namespace with `config` lines; false
        /// (and a skip) without dnsmasq.
        fn serve(&mut self, config: &str) -> bool {
            if std::process::Command::new("dnsmasq")
                .arg("--version")
                .output()
                .is_err()
            {
                skip("dnsmasq not installed (Debian package dnsmasq-base)");
                return false;
            }
            // Not under /etc/netns/NS: ip netns exec would mount it over /etc.
            let file = std::env::temp_dir().join(format!("{}-dnsmasq.conf", self.net.client));
            std::fs::write(&file, config).unwrap();
            self.conf = Some(file.clone());
            let mut child = common::command("ip")
                .args(["netns", "exec", &self.net.server, "dnsmasq", "--no-daemon"])
                .args([
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--pid-file=",
                ])
                .arg(format!("--listen-address={SERVER_V4}"))
                .arg(format!("--conf-file={}", file.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn dnsmasq");
            // Ready when it answers: ask until it does (bounded).
            let deadline = Instant::now() + WAIT;
            loop {
                let run = self.list("dns+a:ready.fleet.test:1");
                if run.code() == Some(0) {
                    break;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    panic!("dnsmasq exited {status}: {err}");
                }
                assert!(
                    Instant::now() < deadline,
                    "dnsmasq never answered: {}",
                    run.stderr
                );
                thread::sleep(Duration::from_millis(50));
            }
            self.dnsmasq = Some(child);
            true
        }

        /// `udp-echo-client --list-targets SOURCE` in the client namespace.
        fn list(&self, source: &str) -> common::ClientRun {
            common::run_client_in(&self.net.client, &["--list-targets", source])
        }
    }

    /// `local=`: names of fleet.test not listed are NXDOMAIN (not REFUSED).
    const ZONE: &str = "local=/fleet.test/\n\
        host-record=ready.fleet.test,192.0.2.99\n\
        host-record=a.fleet.test,192.0.2.1,2001:db8::1\n\
        host-record=b.fleet.test,192.0.2.2\n\
        srv-host=_echo._udp.fleet.test,b.fleet.test,7002,0,10\n\
        srv-host=_echo._udp.fleet.test,a.fleet.test,7001,0,10\n\
        srv-host=_echo._udp.fleet.test,a.fleet.test,7001,0,10\n";

    #[test]
    fn srv_and_a_records_are_listed_as_targets() {
        let Some(mut dns) = Dns::new("fleet_probe::srv_and_a") else {
            return;
        };
        if !dns.serve(ZONE) {
            return;
        }
        let run = dns.list("dns+srv:_echo._udp.fleet.test");
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        assert_eq!(run.stdout_text(), "a.fleet.test:7001\nb.fleet.test:7002\n");
        let run = dns.list("dns+a:a.fleet.test:7");
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        assert_eq!(run.stdout_text(), "192.0.2.1:7\n[2001:db8::1]:7\n");
    }

    /// 300 SRV records do not fit a 4096-byte datagram: dnsmasq sets TC, and
    /// all 300 arrive only if the client asks again over TCP.
    #[test]
    fn three_hundred_srv_records_come_over_tcp() {
        let Some(mut dns) = Dns::new("fleet_probe::srv_tcp") else {
            return;
        };
        let mut zone = String::from("host-record=ready.fleet.test,192.0.2.99\n");
        for i in 0..300 {
            zone.push_str(&format!(
                "srv-host=_echo._udp.big.fleet.test,pod-{i:03}.big.fleet.test,7,0,10\n"
            ));
        }
        if !dns.serve(&zone) {
            return;
        }
        let run = dns.list("dns+srv:_echo._udp.big.fleet.test");
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        let text = run.stdout_text();
        assert_eq!(text.lines().count(), 300, "{text}");
        assert_eq!(text.lines().next(), Some("pod-000.big.fleet.test:7"));
    }

    #[test]
    fn a_name_that_does_not_exist_is_a_clear_error_and_exit_2() {
        let Some(mut dns) = Dns::new("fleet_probe::nxdomain") else {
            return;
        };
        if !dns.serve(ZONE) {
            return;
        }
        let run = dns.list("dns+srv:_nope._udp.fleet.test");
        assert_eq!(run.code(), Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains("dns+srv:_nope._udp.fleet.test") && run.stderr.contains("NXDOMAIN"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
        let run = dns.list("dns+a:nope.fleet.test:7");
        assert_eq!(run.code(), Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("nope.fleet.test"), "{}", run.stderr);
        // A name that exists but has no SRV records.
        let run = dns.list("dns+srv:a.fleet.test");
        assert_eq!(run.code(), Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("no records"), "{}", run.stderr);
    }

    /// The nameserver is an echo server: it sends every query back, which
    /// is not an answer (QR clear), so the client waits out timeout x
    /// attempts (1 s x 2) and says no server answered.
    #[test]
    fn a_nameserver_that_never_answers_is_an_error_in_bounded_time() {
        let Some(dns) = Dns::new("fleet_probe::silent") else {
            return;
        };
        let wrapper = ["ip", "netns", "exec", dns.net.server.as_str()];
        let _echo = common::start_server_via(&wrapper, &["-H", SERVER_V4, "--port", "53"]);
        let started = Instant::now();
        let run = dns.list("dns+srv:_echo._udp.fleet.test");
        let took = started.elapsed();
        assert_eq!(run.code(), Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains("no answer from 1 nameserver"),
            "{}",
            run.stderr
        );
        // Bounded: 2 s of waiting, far under the harness's own limit.
        assert!(took < Duration::from_secs(8), "{took:?}");
    }

    /// 16 names whose resolution hangs (a nameserver that never answers,
    /// resolver timeout 30 s) neither hold the exporter's bursts past their
    /// bound nor starve it: each is answered `probe_success 0` within the
    /// resolution wait (5 s at most), an address is still probed meanwhile,
    /// and one more name is refused at once while the 16 resolutions run.
    #[test]
    fn hung_name_resolutions_are_bounded_and_starve_nothing() {
        let Some(dns) = Dns::new("fleet_probe::hung_resolution") else {
            return;
        };
        std::fs::write(
            dns.etc.join("resolv.conf"),
            format!("nameserver {SERVER_V4}\noptions timeout:30 attempts:1\n"),
        )
        .unwrap();
        // Open, so no ICMP refusal: the queries are taken in and dropped.
        let _silent = netns::in_ns(&dns.net.server, || {
            std::net::UdpSocket::bind((SERVER_V4, 53)).unwrap()
        });
        let client_ns = dns.net.client.clone();
        let exporter = Exporter::start_via(&["ip", "netns", "exec", &client_ns]);
        let addr = exporter.addr;
        let get_in = |path: String| {
            let ns = client_ns.clone();
            thread::spawn(move || {
                netns::TestNet::enter(&ns);
                let started = Instant::now();
                (try_get(addr, &path, ""), started.elapsed())
            })
        };
        let hung: Vec<_> = (0..16)
            .map(|i| {
                get_in(format!(
                    "/probe?target=hang{i}.fleet.test:7&count=1&timeout=1"
                ))
            })
            .collect();
        // Until all 16 resolutions run (bounded).
        let deadline = Instant::now() + WAIT;
        loop {
            let (metrics, _) = get_in("/metrics".into()).join().unwrap();
            let (_, metrics) = metrics.expect("/metrics");
            if value(&metrics, "udp_echo_exporter_resolutions_running") >= 16.0 {
                break;
            }
            assert!(Instant::now() < deadline, "{metrics}");
            thread::sleep(Duration::from_millis(20));
        }
        let (literal, _) = get_in("/probe?target=127.0.0.1:9&count=1&timeout=0.1".into())
            .join()
            .unwrap();
        let (status, body) = literal.expect("/probe of an address");
        assert_eq!(status, 200, "an address is probed while names hang: {body}");
        let (more, _) = get_in("/probe?target=more.fleet.test:7&count=1&timeout=1".into())
            .join()
            .unwrap();
        let (status, body) = more.expect("/probe of a 17th name");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("being resolved"), "{body}");
        for worker in hung {
            let (answer, took) = worker.join().unwrap();
            let (status, body) = answer.unwrap_or_else(|e| panic!("a hung name: {e}"));
            assert_eq!(status, 200, "{body}");
            assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
            assert_eq!(value(&body, "probe_udp_echo_sent"), 0.0, "{body}");
            // The wait is 5 s at most; the resolver's own would be 30 s.
            assert!(took < Duration::from_secs(9), "{took:?}");
        }
    }
}
