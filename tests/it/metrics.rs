//! `--metrics`: the Prometheus endpoints of the server and the client, end to
//! end on loopback, checked by `promtool` where it is installed, and against
//! hostile HTTP clients.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

mod hostile;

/// One HTTP GET of `path`; returns the status code and the body.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the metrics port");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("a whole response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// The `metrics on http://ADDR/metrics` line of a server started with `--metrics`.
pub(crate) fn metrics_addr(server: &ServerProcess) -> SocketAddr {
    let url = server
        .wait_for_stdout_line("metrics on ", WAIT)
        .unwrap_or_else(|| panic!("no `metrics on` line; stderr:\n{}", server.stderr()));
    url.strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("bad metrics URL {url:?}"))
}

/// The value of the sample whose name and labels are exactly `series`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `series` reaches `want` (the loops publish after each batch).
pub(crate) fn scrape_until(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        if sample(&body, series) == Some(want) || Instant::now() >= deadline {
            return body;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `promtool check metrics` on `text`; `None` (and a visible skip) without promtool.
pub(crate) fn promtool(text: &str) -> Option<(bool, String)> {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        skip("promtool not installed (Debian package prometheus): the exposition is not linted");
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), said))
}

/// The resident set of process `pid` in KiB, from `/proc/PID/status`.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn the_server_announces_its_metrics_as_the_second_stdout_line_and_passes_promtool() {
    let server = start_server(&["--port", "0", "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    let socket = udp_client();
    for _ in 0..5 {
        assert_eq!(echo(&socket, server.addr, &[7u8; 100]), [7u8; 100]);
    }
    let body = scrape_until(metrics, "udp_echo_server_echoed_datagrams_total", 5.0);
    for (series, want) in [
        ("udp_echo_server_received_datagrams_total", 5.0),
        ("udp_echo_server_received_bytes_total", 500.0),
        ("udp_echo_server_echoed_datagrams_total", 5.0),
        ("udp_echo_server_echoed_bytes_total", 500.0),
        (
            "udp_echo_server_dropped_datagrams_total{reason=\"loop\"}",
            0.0,
        ),
        ("udp_echo_server_send_errors_total", 0.0),
        ("udp_echo_server_threads", 1.0),
        ("udp_echo_server_build_info{version=\"0.1.0\"}", 1.0),
    ] {
        assert_eq!(sample(&body, series), Some(want), "{series} in\n{body}");
    }
    for name in [
        "udp_echo_server_receive_buffer_bytes",
        "udp_echo_server_send_buffer_bytes",
        "udp_echo_server_start_time_seconds",
    ] {
        assert!(
            sample(&body, name).is_some_and(|v| v > 0.0),
            "{name} in\n{body}"
        );
    }
    if let Some((ok, said)) = promtool(&body) {
        assert!(ok, "promtool check metrics:\n{said}\n{body}");
    }
    let (status, _) = http_get(metrics, "/");
    assert_eq!(status, 404, "only /metrics is served");
    // Every drop reason the endpoint exports is listed in docs/metrics.md.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `udp_echo_server_dropped_datagrams_total{reason}`"))
        .expect("docs/metrics.md has a row for the drop counter");
    let reasons: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("udp_echo_server_dropped_datagrams_total{reason=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(reasons.len() >= 6, "{body}");
    for reason in reasons {
        assert!(
            row.contains(&format!("`{reason}`")),
            "{reason} not in {row}"
        );
    }
}

#[test]
fn drops_are_counted_by_reason() {
    let refusing = start_server(&[
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
        "--allow",
        "10.0.0.0/8",
    ]);
    let metrics = metrics_addr(&refusing);
    let socket = udp_client();
    for _ in 0..3 {
        socket.send_to(b"not from 10/8", refusing.addr).unwrap();
    }
    let series = "udp_echo_server_dropped_datagrams_total{reason=\"not-allowed\"}";
    let body = scrape_until(metrics, series, 3.0);
    assert_eq!(sample(&body, series), Some(3.0), "{body}");
    assert_eq!(
        sample(&body, "udp_echo_server_echoed_datagrams_total"),
        Some(0.0),
        "{body}"
    );

    // A budget of 2 a second: a burst of 10 gets at most a few echoes.
    let limited = start_server(&[
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
        "--rate-limit",
        "2",
    ]);
    let metrics = metrics_addr(&limited);
    for _ in 0..10 {
        socket.send_to(b"burst", limited.addr).unwrap();
    }
    let body = scrape_until(metrics, "udp_echo_server_received_datagrams_total", 10.0);
    let echoed = sample(&body, "udp_echo_server_echoed_datagrams_total").unwrap();
    let limited = sample(
        &body,
        "udp_echo_server_dropped_datagrams_total{reason=\"rate-limited\"}",
    )
    .unwrap();
    assert_eq!(echoed + limited, 10.0, "{body}");
    assert!(limited >= 6.0, "{body}");
}

/// Kills the client on drop, so a failing test leaves nothing running.
struct Running(std::process::Child);

/// Starts `udp-echo-client -c 0 -i INTERVAL --metrics 127.0.0.1:0` against
/// `port` and returns it (killed on drop) with its endpoint, read from its
/// first stderr line.
fn continuous_ping(port: &str, interval: &str) -> (Running, SocketAddr) {
    let mut child = common::command(CLIENT)
        .args(["-H", "127.0.0.1", "-p", port, "-c", "0", "-i", interval])
        .args(["-t", "0.5", "--metrics", "127.0.0.1:0", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn udp-echo-client");
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("the client's first stderr line");
    let metrics = line
        .trim_end()
        .strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("first stderr line: {line:?}"));
    (running, metrics)
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_continuous_ping_exposes_losses_and_the_rtt_histogram() {
    // Probes 1..=20: every 2nd dropped. Later ones come back truncated: still
    // answers (no more losses) but no round trip for the histogram, so the
    // figures after probe 20 stay put while the run goes on.
    let (peer, _server) = fake_server(10_000, |datagram| {
        let seq = u64::from_be_bytes(datagram[..8].try_into().unwrap());
        match seq {
            1..=20 if seq % 2 == 0 => None,
            1..=20 => Some(datagram.to_vec()),
            _ => Some(datagram[..20].to_vec()),
        }
    });
    let port = peer.port().to_string();
    let (running, metrics) = continuous_ping(&port, "0.01");
    let target = format!("{{target=\"127.0.0.1:{port}\"}}");
    let series = |name: &str| format!("udp_echo_client_{name}{target}");
    scrape_until(metrics, &series("probes_lost_total"), 10.0);
    // Past probe 20 and its timeout: nothing more can be lost or timed.
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (_, body) = http_get(metrics, "/metrics");
        if sample(&body, &series("probes_sent_total")).is_some_and(|s| s >= 40.0)
            || Instant::now() >= deadline
        {
            break body;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        sample(&body, &series("probes_lost_total")),
        Some(10.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, &series("rtt_seconds_count")),
        Some(10.0),
        "{body}"
    );
    assert!(
        sample(&body, &series("replies_truncated_total")).is_some_and(|t| t >= 10.0),
        "{body}"
    );
    let le_10s =
        format!("udp_echo_client_rtt_seconds_bucket{{target=\"127.0.0.1:{port}\",le=\"10\"}}");
    assert_eq!(sample(&body, &le_10s), Some(10.0), "{body}");
    assert!(
        sample(&body, &series("last_reply_age_seconds")).is_some_and(|a| a < 5.0),
        "{body}"
    );
    if let Some((ok, said)) = promtool(&body) {
        assert!(ok, "promtool check metrics:\n{said}\n{body}");
    }
    drop(running);
}

#[test]
fn metrics_outside_ping_mode_are_a_usage_error() {
    let run = run_client(&["-p", "9", "-f", "--metrics", "127.0.0.1:0"], None);
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    let run = run_client(&["-p", "9", "--metrics", "127.0.0.1:0"], None);
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
}
