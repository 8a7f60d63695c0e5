//! `--targets`: the fleet prober end to end on loopback — real servers (echo
//! and STAMP) and a closed port listed in a `file_sd` file (JSON and YAML),
//! scraped over HTTP; reloads that add, keep and remove targets; bad files
//! at start and on reload. Every wait is bounded; every assert counts.

use crate::common;
use crate::metrics::{http_get, promtool, rss_kib, sample};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

mod reload;
mod scale;

/// A running fleet prober: killed on drop; its stderr kept.
pub(crate) struct Fleet {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// Its `/metrics` endpoint (in its namespace, when started in one).
    pub(crate) metrics: SocketAddr,
}

impl Fleet {
    /// Starts `udp-echo-client --targets FILE --metrics 127.0.0.1:0 ARGS`
    /// and reads the endpoint from its `metrics on` line.
    fn start(file: &Path, args: &[&str]) -> Fleet {
        Fleet::start_with(file, args, Stdio::null())
    }

    /// [`start`](Self::start) with stdout going to `stdout`.
    fn start_with(file: &Path, args: &[&str], stdout: Stdio) -> Fleet {
        Fleet::spawn(&[], file, args, stdout)
    }

    /// [`start`](Self::start) under a wrapper that execs the client, e.g.
    /// `ip netns exec NS`.
    pub(crate) fn start_via(wrapper: &[&str], file: &Path, args: &[&str]) -> Fleet {
        Fleet::spawn(wrapper, file, args, Stdio::null())
    }

    fn spawn(wrapper: &[&str], file: &Path, args: &[&str], stdout: Stdio) -> Fleet {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = common::command(program);
                c.args(rest).arg(CLIENT);
                c
            }
            None => common::command(CLIENT),
        };
        let mut child = command
            .arg("--targets")
            .arg(file)
            .args(["--metrics", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn udp-echo-client");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .strip_prefix("metrics on http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                {
                    let _ = tx.send(addr.to_owned());
                }
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut fleet = Fleet {
            child,
            stderr,
            metrics: "127.0.0.1:9".parse().unwrap(),
        };
        let addr = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no `metrics on` line; stderr:\n{}", fleet.stderr()));
        fleet.metrics = addr.parse().unwrap();
        fleet
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn scrape(&self) -> String {
        let (status, body) = http_get(self.metrics, "/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Scrapes until `done` holds (or `WAIT` passes); returns the last body.
    fn scrape_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let body = self.scrape();
            if done(&body) || Instant::now() >= deadline {
                return body;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of this test's own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("udp-echo-fleet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Writes `text` to `name` as editors do: a new file renamed over the old.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The series `name` of `target` (with the labels `rest`, as written after it).
fn series(name: &str, target: &str, rest: &str) -> String {
    format!("udp_echo_client_{name}{{target=\"{target}\"{rest}}}")
}

fn value(body: &str, name: &str, target: &str, rest: &str) -> Option<f64> {
    sample(body, &series(name, target, rest))
}

#[test]
fn a_json_file_of_echo_stamp_and_closed_targets_is_probed_and_labelled() {
    let echo = start_server(&["--port", "0"]);
    let stamp = start_server(&["--stamp", "--port", "0"]);
    let closed = format!("127.0.0.1:{}", closed_port());
    let (e, s) = (echo.addr.to_string(), stamp.addr.to_string());
    let dir = Dir::new("json");
    let file = dir.write(
        "targets.json",
        &format!(
            r#"[
  {{"targets": ["{e}"], "labels": {{"site": "a", "__meta_ignored": "x", "__param_tos": "EF"}}}},
  {{"targets": ["{s}"], "labels": {{"site": "b", "__param_mode": "stamp"}}}},
  {{"targets": ["{closed}"], "labels": {{"site": "c"}}}}
]"#
        ),
    );
    let fleet = Fleet::start(&file, &["-i", "0.05", "-t", "0.5"]);
    let targets = [
        (&e, ",site=\"a\""),
        (&s, ",site=\"b\""),
        (&closed, ",site=\"c\""),
    ];
    let body = fleet.scrape_until(|b| {
        targets
            .iter()
            .all(|(t, l)| value(b, "probes_sent_total", t, l).is_some_and(|n| n >= 20.0))
            && value(b, "probes_lost_total", &closed, ",site=\"c\"").is_some_and(|n| n > 0.0)
    });
    let stderr = fleet.stderr();
    assert!(stderr.contains("fleet: 3 targets from"), "{stderr}");
    for (t, l) in targets {
        let v = |name: &str| {
            value(&body, name, t, l).unwrap_or_else(|| panic!("{name} of {t} missing:\n{body}"))
        };
        let (sent, received, lost) = (
            v("probes_sent_total"),
            v("probes_received_total"),
            v("probes_lost_total"),
        );
        assert!(sent >= 20.0, "{t}: sent {sent}\n{body}");
        assert_eq!(v("replies_corrupt_total"), 0.0, "{t}");
        // The echo server reflects the DSCP it got (EF for the first target).
        assert_eq!(v("replies_dscp_changed_total"), 0.0, "{t}");
        assert_eq!(v("replies_duplicate_total"), 0.0, "{t}");
        if t == &closed {
            assert_eq!(received, 0.0, "{t}");
            assert!(lost > 0.0, "{t}: nothing lost\n{body}");
        } else {
            // Loopback answers in microseconds: at most the probe just sent
            // is still in flight, and nothing is lost.
            assert_eq!(lost, 0.0, "{t}\n{body}");
            assert!(
                sent - received <= 1.0,
                "{t}: sent {sent}, received {received}"
            );
            assert_eq!(v("rtt_seconds_count"), received, "{t}");
        }
    }
    // The __meta_ label is not a metric label; the STAMP target has its own figures.
    assert!(!body.contains("__meta_ignored"), "{body}");
    assert!(
        value(&body, "stamp_owd_forward_samples_total", &s, ",site=\"b\"").is_some_and(|n| n > 0.0),
        "{body}"
    );
    assert!(!body.contains(&series(
        "stamp_owd_forward_samples_total",
        &e,
        ",site=\"a\""
    )));
    assert_eq!(sample(&body, "udp_echo_client_fleet_targets"), Some(3.0));
    assert_eq!(
        sample(&body, "udp_echo_client_fleet_replies_foreign_total"),
        Some(0.0)
    );
    if let Some((ok, said)) = promtool(&body) {
        assert!(ok, "promtool check metrics:\n{said}\n{body}");
    }
}

#[test]
fn a_yaml_file_is_read_as_yaml() {
    let echo = start_server(&["--port", "0"]);
    let e = echo.addr.to_string();
    let dir = Dir::new("yaml");
    let file = dir.write(
        "targets.yaml",
        &format!("# a comment\n- targets:\n    - {e}\n  labels:\n    site: y\n    __param_interval: 50ms\n"),
    );
    let fleet = Fleet::start(&file, &[]);
    // 50 ms from the file, not the default 1 s: ten probes within a second or so.
    let body = fleet.scrape_until(|b| {
        value(b, "probes_received_total", &e, ",site=\"y\"").is_some_and(|n| n >= 10.0)
    });
    assert!(
        value(&body, "probes_received_total", &e, ",site=\"y\"").is_some_and(|n| n >= 10.0),
        "{body}"
    );
}

/// A target that cannot be resolved as asked (here: an IPv6 address under
/// `-4`, which needs no DNS) is counted and logged once; the others run.
#[test]
fn an_unresolved_target_is_counted_and_the_others_run() {
    let echo = start_server(&["--port", "0"]);
    let e = echo.addr.to_string();
    let dir = Dir::new("unresolved");
    let file = dir.write(
        "targets.json",
        &format!("[{{\"targets\": [\"{e}\", \"[::1]:7\"]}}]"),
    );
    let fleet = Fleet::start(&file, &["-4", "-i", "0.05"]);
    let body =
        fleet.scrape_until(|b| value(b, "probes_received_total", &e, "").is_some_and(|n| n >= 5.0));
    assert!(
        value(&body, "probes_received_total", &e, "").is_some_and(|n| n >= 5.0),
        "{body}"
    );
    assert_eq!(sample(&body, "udp_echo_client_fleet_targets"), Some(1.0));
    assert_eq!(
        sample(&body, "udp_echo_client_fleet_targets_unresolved"),
        Some(1.0)
    );
    assert!(!body.contains("[::1]:7"), "{body}");
    let stderr = fleet.stderr();
    assert!(
        stderr.contains("fleet: 1 targets from") && stderr.contains("1 not resolved"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("\"[::1]:7\"").count(), 1, "{stderr}");
}

/// SIGTERM (or SIGINT) stops the fleet at once, exit 0, and nothing was
/// written to stdout from start to end.
#[test]
fn a_signal_stops_the_fleet_quietly() {
    let echo = start_server(&["--port", "0"]);
    let e = echo.addr.to_string();
    let dir = Dir::new("signal");
    let file = dir.write("targets.json", &format!("[{{\"targets\": [\"{e}\"]}}]"));
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut fleet = Fleet::start_with(&file, &["-i", "0.05"], Stdio::piped());
        fleet.scrape_until(|b| value(b, "probes_received_total", &e, "").is_some_and(|n| n >= 3.0));
        let pid = libc::pid_t::try_from(fleet.child.id()).unwrap();
        // SAFETY: kill(2) has no memory effects; the pid is our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = fleet.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after signal {signal}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "signal {signal}: {status:?}\n{}",
            fleet.stderr()
        );
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut fleet.child.stdout.take().unwrap(), &mut stdout)
            .unwrap();
        assert_eq!(stdout, "", "signal {signal}");
    }
}

/// A datagram from an address that is no target is counted process-wide as
/// foreign and books nothing for any target.
#[test]
fn a_datagram_from_no_target_is_foreign() {
    // A reflector that answers each probe, and also sends one stray
    // datagram to the prober from a socket of its own.
    let reflector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stray = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    reflector
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = reflector.local_addr().unwrap().to_string();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut strays = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((n, from)) = reflector.recv_from(&mut buf) else {
                continue;
            };
            reflector.send_to(&buf[..n], from).unwrap();
            if strays < 5 {
                stray.send_to(&buf[..n], from).unwrap();
                strays += 1;
            }
        }
    });
    let dir = Dir::new("foreign");
    let file = dir.write("targets.json", &format!("[{{\"targets\": [\"{addr}\"]}}]"));
    let fleet = Fleet::start(&file, &["-i", "0.05"]);
    let body = fleet.scrape_until(|b| {
        sample(b, "udp_echo_client_fleet_replies_foreign_total") == Some(5.0)
            && value(b, "probes_received_total", &addr, "").is_some_and(|n| n >= 10.0)
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
    assert_eq!(
        sample(&body, "udp_echo_client_fleet_replies_foreign_total"),
        Some(5.0),
        "{body}"
    );
    for name in [
        "replies_duplicate_total",
        "replies_corrupt_total",
        "probes_lost_total",
    ] {
        assert_eq!(value(&body, name, &addr, ""), Some(0.0), "{name}\n{body}");
    }
}

/// The fleet's endpoint serves `/probe` too, and `--probe-allow` holds
/// there as on the exporter: a target outside it is refused with 403.
#[test]
fn probe_allow_holds_on_the_fleets_probe() {
    let echo = start_server(&["--port", "0"]);
    let e = echo.addr.to_string();
    let dir = Dir::new("probe-allow");
    let file = dir.write("targets.json", &format!("[{{\"targets\": [\"{e}\"]}}]"));
    let fleet = Fleet::start(&file, &["--probe-allow", "127.0.0.2/32"]);
    let (status, body) = http_get(fleet.metrics, &format!("/probe?target={e}&count=1"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--probe-allow"), "{body}");
}
