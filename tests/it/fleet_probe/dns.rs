//! The DNS sources (`dns+srv:`, `dns+a:`), listed with `--list-targets`
//! inside a network namespace with a real DNS server (dnsmasq) and its own
//! resolv.conf.

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
