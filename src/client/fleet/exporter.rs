//! The blackbox_exporter pattern: `GET /probe?target=HOST:PORT` runs one
//! short burst of probes against the target and answers with that burst's
//! result in the Prometheus text format, so a scrape config written for
//! blackbox_exporter (`__param_target` ← `__address__`, `__address__` ← the
//! exporter) works by changing only the exporter's address.
//!
//! The burst is ping mode of the measure engine (`measure_with`, one
//! checking path for every mode): `count` probes `interval` apart, each
//! checked byte for byte (echo or STAMP), lost when no reply came within
//! `timeout`.
//!
//! Query parameters (all but `target` optional; `module`, which blackbox
//! configs often pass, is accepted and ignored; any other is refused with
//! `400`, so a misspelt one is not silently dropped):
//!
//! | name | default | bounds |
//! |---|---|---|
//! | `target` | – | `HOST:PORT`, `[IPv6]:PORT` |
//! | `mode` | `echo` | `echo`, `stamp` |
//! | `count` | 5 | 1 ..= [`MAX_COUNT`] |
//! | `interval` | 0.1 s | 0 ..= 1 s |
//! | `size` | 64 | 16 ..= [`MAX_SIZE`] bytes (stamp: the STAMP packet's rules) |
//! | `timeout` | 1 s | 0.001 ..= 5 s |
//!
//! The burst ([`ProbeQuery::burst`]: `count` × `interval` + `timeout`, or
//! `count` × `timeout` with `interval` 0) must fit [`MAX_BURST`] and,
//! when Prometheus sends `X-Prometheus-Scrape-Timeout-Seconds`, that timeout
//! less [`SCRAPE_MARGIN`]; otherwise `400` says by how much it does not.
//! At most [`MAX_CONCURRENT`] bursts run at once: one more is answered `503`
//! at once. Each burst runs on its own thread (the HTTP thread never waits
//! for one). `probe_success` is 1 when the target answered correctly: at
//! least one intact reply and no corrupt one (loss alone lowers
//! `probe_udp_echo_loss_ratio`, not success). A target that does not resolve
//! is `probe_success 0` with status 200, as blackbox does.
//!
//! A target given by name is resolved by the system resolver
//! (`getaddrinfo`), which cannot be cancelled and may take its own
//! `timeout` × `attempts` × nameservers × search names (minutes with a
//! silent nameserver). So it runs on a thread of its own, waited for at
//! most [`ProbeQuery::resolve_timeout`]: what the scrape timeout (or
//! [`MAX_BURST`]) leaves after the burst, from [`MIN_RESOLVE`] to
//! [`MAX_RESOLVE`]; longer is `probe_success 0`, and the burst's slot is
//! free again. A resolution left running keeps one of [`MAX_RESOLVING`]
//! places until the resolver gives up; with all taken, a target by name is
//! answered `503` at once, while an address (no resolution) still probes.
//! Threads stay bounded: bursts, resolutions and the answers being written.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::Target;
use crate::client::measure::{self, Hooks, MeasureConfig, MeasureMode};
use crate::client::stamp::{self, StampConfig};
use crate::client::stats::{Counts, Latency};
use crate::metrics::http::{Reply, RequestHead, Response, Routes};
use crate::net::Family;
use crate::net::cidr::{Cidr, unmap};
use crate::shutdown::Stop;
use crate::stamp::StampOptions;

/// The most probes one burst may send.
pub const MAX_COUNT: u64 = 100;
/// The longest a burst may take: `count` × `interval` + `timeout`.
pub const MAX_BURST: Duration = Duration::from_secs(10);
/// What is kept free of Prometheus' scrape timeout, for the answer to travel.
pub const SCRAPE_MARGIN: Duration = Duration::from_millis(500);
/// The most bursts running at once; one more is refused with `503`.
pub const MAX_CONCURRENT: usize = 16;
/// The largest probe a burst sends: a jumbo frame's payload, so a burst of
/// [`MAX_COUNT`] is under 1 MB whoever asks for it.
pub const MAX_SIZE: usize = 9000;
/// The longest per-probe timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(5);
/// The least a name's resolution is waited for, however little the scrape
/// timeout leaves after the burst.
pub const MIN_RESOLVE: Duration = Duration::from_secs(1);
/// The most a name's resolution is waited for.
pub const MAX_RESOLVE: Duration = Duration::from_secs(5);
/// The most name resolutions running at once (each on a thread of its own,
/// which the system resolver may hold past the probe's answer).
pub const MAX_RESOLVING: usize = 16;
/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Echo probes or STAMP test packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// The echo probe format (any echo server).
    Echo,
    /// STAMP (RFC 8762) test packets, unauthenticated.
    Stamp,
}

/// One `/probe` request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeQuery {
    /// The host as given (brackets removed).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Echo or STAMP.
    pub mode: ProbeMode,
    /// Probes in the burst.
    pub count: u64,
    /// From one probe to the next.
    pub interval: Duration,
    /// Probe size in bytes; `None`: the mode's default.
    pub size: Option<usize>,
    /// How long each probe waits for its reply.
    pub timeout: Duration,
    /// How long a name's resolution is waited for (see the module doc).
    pub resolve_timeout: Duration,
}

impl ProbeQuery {
    /// Reads a query string (`target=…&count=…`, percent-encoded) and the
    /// scrape timeout Prometheus sent, if any. `Err` is the one-line reason
    /// a `400` gives.
    pub fn parse(query: &str, scrape_timeout: Option<&str>) -> Result<ProbeQuery, String> {
        let mut target = None;
        let mut probe = ProbeQuery {
            host: String::new(),
            port: 0,
            mode: ProbeMode::Echo,
            count: 5,
            interval: Duration::from_millis(100),
            size: None,
            timeout: Duration::from_secs(1),
            resolve_timeout: MAX_RESOLVE,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            let number = |max: f64| -> Result<f64, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && (0.0..=max).contains(v))
                    .ok_or_else(|| format!("{key}={value:?}: expected a number from 0 to {max}"))
            };
            match key.as_str() {
                "target" => target = Some(value.clone()),
                "mode" => {
                    probe.mode = match value.as_str() {
                        "echo" => ProbeMode::Echo,
                        "stamp" => ProbeMode::Stamp,
                        _ => return Err(format!("mode={value:?}: expected echo or stamp")),
                    }
                }
                "count" => {
                    probe.count = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=MAX_COUNT).contains(n))
                        .ok_or_else(|| {
                            format!("count={value:?}: expected 1 to {MAX_COUNT} probes")
                        })?;
                }
                "interval" => probe.interval = Duration::from_secs_f64(number(1.0)?),
                "timeout" => {
                    let secs = number(MAX_TIMEOUT.as_secs_f64())?;
                    if secs < 0.001 {
                        return Err(format!("timeout={value:?}: at least 0.001 s"));
                    }
                    probe.timeout = Duration::from_secs_f64(secs);
                }
                "size" => {
                    let size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (crate::client::probe::MIN_SIZE..=MAX_SIZE).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "size={value:?}: expected {} to {MAX_SIZE} bytes",
                                crate::client::probe::MIN_SIZE
                            )
                        })?;
                    probe.size = Some(size);
                }
                // blackbox_exporter's module: configs written for it pass one.
                "module" => {}
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        let target = target.ok_or("missing parameter target (HOST:PORT)")?;
        (probe.host, probe.port) = split_host_port(&target)?;
        if let (ProbeMode::Stamp, Some(size)) = (probe.mode, probe.size) {
            stamp::check_size(false, None, false, size).map_err(|e| e.replace("--size", "size"))?;
        }
        let burst = probe.burst();
        if burst > MAX_BURST {
            return Err(format!(
                "the burst takes up to {:.3} s (count x interval + timeout; interval 0: count x timeout), over the {} s allowed",
                burst.as_secs_f64(),
                MAX_BURST.as_secs()
            ));
        }
        let mut budget = MAX_BURST;
        if let Some(header) = scrape_timeout {
            let scrape = header
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    format!("X-Prometheus-Scrape-Timeout-Seconds {header:?} is not a number")
                })?;
            budget = Duration::from_secs_f64(scrape.min(3600.0)).saturating_sub(SCRAPE_MARGIN);
            if burst > budget {
                return Err(format!(
                    "the burst takes up to {:.3} s (count x interval + timeout; interval 0: count x timeout), over the scrape timeout of {scrape} s less {} s",
                    burst.as_secs_f64(),
                    SCRAPE_MARGIN.as_secs_f64()
                ));
            }
        }
        probe.resolve_timeout = budget.saturating_sub(burst).clamp(MIN_RESOLVE, MAX_RESOLVE);
        Ok(probe)
    }

    /// Whether the target is a name, which the system resolver must resolve
    /// (an address literal is not asked about).
    pub fn is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }

    /// The longest the burst can take: `count` × `interval` + `timeout`, or
    /// with `interval` 0 (the next probe when the last one's reply or timeout
    /// came) `count` × `timeout`.
    pub fn burst(&self) -> Duration {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        if self.interval.is_zero() {
            self.timeout.saturating_mul(count)
        } else {
            self.interval.saturating_mul(count) + self.timeout
        }
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`; the port is required (a UDP service has no
/// default one).
fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("target={text:?}: expected HOST:PORT or [IPv6]:PORT");
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':').ok_or_else(bad)?)
        }
        None => {
            let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad());
            }
            (host, port)
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(bad)?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Percent-decodes one query component (`+` is a space), as UTF-8.
pub fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{text:?}: a bad percent escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{text:?}: not UTF-8 once decoded"))
}

/// What one burst gave.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The address probed, if the name resolved.
    pub peer: Option<SocketAddr>,
    /// The burst's counts (all zero when it could not start).
    pub counts: Counts,
    /// Round trips of intact replies.
    pub latency: Latency,
    /// From the request to the end of the burst.
    pub duration: Duration,
}

impl ProbeResult {
    /// Whether the target answered correctly: at least one intact reply,
    /// and none corrupt.
    pub fn success(&self) -> bool {
        self.counts.received > 0 && self.counts.corrupt == 0
    }
}

/// Runs one burst as `query` says. Never fails: a name that does not
/// resolve (in [`ProbeQuery::resolve_timeout`]), or a socket that cannot be
/// made, is a burst with nothing received (logged at debug). A name's
/// resolution runs on a thread holding `resolving` (a place among
/// [`MAX_RESOLVING`]) until the resolver returns, however late.
pub fn run(query: &ProbeQuery, resolving: Option<Resolving>) -> ProbeResult {
    let started = Instant::now();
    let pinned = pin(&target_of(query), query, resolving);
    burst(query, pinned, started, &Stop::new())
}

/// What the measure engine probes for `query`: its host and port.
fn target_of(query: &ProbeQuery) -> Target {
    Target {
        host: query.host.clone(),
        port: query.port,
        family: Family::Any,
        bind: None,
        recv_buf: None,
        send_buf: None,
        timeout: query.timeout,
        interface: None,
    }
}

/// The burst of `query` at `pinned` (the target resolved, or why not),
/// timed from `started`, cut short when `stop` is raised.
fn burst(
    query: &ProbeQuery,
    pinned: crate::Result<(Target, SocketAddr)>,
    started: Instant,
    stop: &Stop,
) -> ProbeResult {
    let mut latency = Latency::new();
    let mut peer = None;
    let burst = pinned.and_then(|(pinned, resolved)| {
        peer = Some(resolved);
        let config = config_for(query);
        let hooks = Hooks {
            on_event: &mut |_| {},
            on_interval: &mut |_| {},
            on_counts: None,
            probes: None,
            latency: Some(&mut latency),
        };
        measure::measure_with(&pinned, &config, stop, hooks)
    });
    let counts = match burst {
        Ok(summary) => summary.into_run().counts,
        Err(e) => {
            log::debug!("probe {}:{}: {e}", query.host, query.port);
            Counts::default()
        }
    };
    ProbeResult {
        peer,
        counts,
        latency,
        duration: started.elapsed(),
    }
}

/// `target` resolved and pinned ([`crate::client::pinned`]): at once for an
/// address; for a name on a thread of its own (holding `resolving`), waited
/// for at most `query.resolve_timeout`.
fn pin(
    target: &Target,
    query: &ProbeQuery,
    resolving: Option<Resolving>,
) -> crate::Result<(Target, SocketAddr)> {
    let Some(place) = resolving.filter(|_| query.is_name()) else {
        return crate::client::pinned(target);
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let asked = target.clone();
    let spawned = std::thread::Builder::new()
        .name("probe-resolve".into())
        .spawn(move || {
            let _place = place;
            let _ = tx.send(crate::client::pinned(&asked));
        });
    let gave_up = |why: String| crate::Error::Resolve {
        host: target.host.clone(),
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, why),
    };
    if let Err(e) = spawned {
        return Err(gave_up(format!("no thread to resolve it: {e}")));
    }
    rx.recv_timeout(query.resolve_timeout).unwrap_or_else(|_| {
        Err(gave_up(format!(
            "not resolved in {:.1} s",
            query.resolve_timeout.as_secs_f64()
        )))
    })
}

/// The measure engine's configuration for a burst.
fn config_for(query: &ProbeQuery) -> MeasureConfig {
    let stamp = (query.mode == ProbeMode::Stamp).then(|| StampConfig {
        options: StampOptions {
            key_file: None,
            key_dir: None,
            stateful: false,
            ptp: false,
            tlv_ignore: false,
            location: Default::default(),
            return_allow: Default::default(),
        },
        size: query.size,
        follow_up: false,
        tlvs: Default::default(),
        ssid: (std::process::id() as u16).max(1),
    });
    MeasureConfig {
        mode: MeasureMode::Ping {
            count: Some(query.count),
            interval: query.interval,
        },
        size: stamp
            .as_ref()
            .map_or(query.size.unwrap_or(64), |s| s.packet_len(None)),
        timeout: query.timeout,
        duration: query.burst(),
        flows: 1,
        stamp,
        tos: None,
    }
}

/// The quantiles the RTT summary gives.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// A burst's result in the Prometheus text format (blackbox's
/// `probe_success` and `probe_duration_seconds`, then `probe_udp_echo_*`).
pub fn render(result: &ProbeResult) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    };
    let c = &result.counts;
    gauge(
        "probe_success",
        "Whether the target answered correctly: an intact reply and none corrupt.",
        u8::from(result.success()).into(),
    );
    gauge(
        "probe_duration_seconds",
        "How long the probe took, resolution included.",
        result.duration.as_secs_f64(),
    );
    if let Some(peer) = result.peer {
        gauge(
            "probe_ip_protocol",
            "The IP version the target was probed over.",
            if peer.is_ipv4() { 4.0 } else { 6.0 },
        );
    }
    gauge(
        "probe_udp_echo_sent",
        "Probes sent in the burst.",
        c.sent as f64,
    );
    gauge(
        "probe_udp_echo_received",
        "Probes answered by an intact reply in time.",
        c.received as f64,
    );
    gauge(
        "probe_udp_echo_lost",
        "Probes with no reply within the timeout.",
        c.lost as f64,
    );
    gauge(
        "probe_udp_echo_duplicate",
        "Extra copies of replies.",
        c.duplicates as f64,
    );
    gauge(
        "probe_udp_echo_corrupt",
        "Replies whose bytes differ from the probe.",
        c.corrupt as f64,
    );
    gauge(
        "probe_udp_echo_late",
        "Replies that came after their probe's timeout.",
        c.late as f64,
    );
    gauge(
        "probe_udp_echo_reordered",
        "Replies that came out of order.",
        c.reordered as f64,
    );
    let loss = if c.sent == 0 {
        1.0
    } else {
        c.lost as f64 / c.sent as f64
    };
    gauge(
        "probe_udp_echo_loss_ratio",
        "Lost probes / probes sent (1 if none was sent).",
        loss,
    );
    let rtt = result.latency.summary();
    let secs = |us: f64| us / 1e6;
    gauge(
        "probe_udp_echo_rtt_min_seconds",
        "The shortest round trip (0: none).",
        secs(rtt.min),
    );
    gauge(
        "probe_udp_echo_rtt_avg_seconds",
        "The mean round trip (0: none).",
        secs(rtt.mean),
    );
    gauge(
        "probe_udp_echo_rtt_max_seconds",
        "The longest round trip (0: none).",
        secs(rtt.max),
    );
    let name = "probe_udp_echo_rtt_seconds";
    let _ = write!(
        out,
        "# HELP {name} Round trips of the burst's intact replies.\n# TYPE {name} summary\n"
    );
    for q in QUANTILES {
        let value = result.latency.quantile_ns(q) as f64 / 1e9;
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value}");
    }
    let sum_s = rtt.mean * rtt.samples as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum_s}\n{name}_count {}", rtt.samples);
    out
}

/// The exporter's own counters, for its `/metrics`.
#[derive(Debug, Default)]
pub struct ExporterStats {
    probes: AtomicU64,
    refused_busy: AtomicU64,
    refused_bad: AtomicU64,
    refused_not_allowed: AtomicU64,
    running: AtomicUsize,
    resolving: AtomicUsize,
}

/// One of [`MAX_RESOLVING`] places for a name's resolution; freed when
/// dropped (the resolver returned, or the probe never needed it).
pub struct Resolving(Arc<ExporterStats>);

impl Drop for Resolving {
    fn drop(&mut self) {
        self.0.resolving.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ExporterStats {
    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP udp_echo_exporter_probes_total Bursts run for /probe requests.\n\
             # TYPE udp_echo_exporter_probes_total counter\n\
             udp_echo_exporter_probes_total {}\n\
             # HELP udp_echo_exporter_probes_refused_total /probe requests refused, by reason.\n\
             # TYPE udp_echo_exporter_probes_refused_total counter\n\
             udp_echo_exporter_probes_refused_total{{reason=\"busy\"}} {}\n\
             udp_echo_exporter_probes_refused_total{{reason=\"bad_request\"}} {}\n\
             udp_echo_exporter_probes_refused_total{{reason=\"not_allowed\"}} {}\n\
             # HELP udp_echo_exporter_probes_running Bursts running now.\n\
             # TYPE udp_echo_exporter_probes_running gauge\n\
             udp_echo_exporter_probes_running {}\n\
             # HELP udp_echo_exporter_resolutions_running Target names being resolved now (some past their probe's answer).\n\
             # TYPE udp_echo_exporter_resolutions_running gauge\n\
             udp_echo_exporter_resolutions_running {}\n",
            get(&self.probes),
            get(&self.refused_busy),
            get(&self.refused_bad),
            get(&self.refused_not_allowed),
            self.running.load(Ordering::Relaxed),
            self.resolving.load(Ordering::Relaxed),
        )
    }
}

/// Serves `/probe` ([`Routes`]): checks the query, refuses beyond
/// [`MAX_CONCURRENT`] running bursts, and hands the burst to a thread.
#[derive(Debug, Clone, Default)]
pub struct ProbeHandler {
    stats: Arc<ExporterStats>,
    /// `--probe-allow`: the networks a target may be in; empty: any.
    allow: Arc<[Cidr]>,
}

/// One running burst's slot; freed when dropped (the burst ended, or its
/// job was dropped unrun).
struct Slot(Arc<ExporterStats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ProbeHandler {
    /// A handler with its counters at zero.
    pub fn new() -> ProbeHandler {
        ProbeHandler::default()
    }

    /// A handler that probes only addresses inside `allow` (empty: any).
    pub fn with_allow(allow: &[Cidr]) -> ProbeHandler {
        ProbeHandler {
            allow: allow.into(),
            ..ProbeHandler::default()
        }
    }

    /// The counters it keeps (probes run, refused), for a `/metrics`.
    pub fn stats(&self) -> &ExporterStats {
        &self.stats
    }

    /// The reply to a `/probe` query: `400` for a bad one, `503` when
    /// [`MAX_CONCURRENT`] bursts are running, else the burst, to be run on
    /// its own thread.
    pub fn probe(&self, query: &str, scrape_timeout: Option<&str>) -> Reply {
        let query = match ProbeQuery::parse(query, scrape_timeout) {
            Ok(query) => query,
            Err(reason) => {
                self.stats.refused_bad.fetch_add(1, Ordering::Relaxed);
                return Reply::Now(Response::text(400, &reason));
            }
        };
        if let Ok(ip) = query.host.parse::<std::net::IpAddr>() {
            if let Some(refused) = not_allowed(&self.allow, &self.stats, &query, ip) {
                return Reply::Now(refused);
            }
        }
        let resolving = if query.is_name() {
            let taken =
                self.stats
                    .resolving
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < MAX_RESOLVING).then_some(n + 1)
                    });
            if taken.is_err() {
                self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                return Reply::Now(Response::text(
                    503,
                    &format!(
                        "{MAX_RESOLVING} target names are being resolved already; try again (or give an address)"
                    ),
                ));
            }
            Some(Resolving(Arc::clone(&self.stats)))
        } else {
            None
        };
        // An address takes its burst's place at once; a name once it is
        // resolved, so names that hang keep no address from being probed.
        let slot = match resolving {
            Some(_) => None,
            None => match take_slot(&self.stats) {
                Ok(slot) => Some(slot),
                Err(busy) => return Reply::Now(busy),
            },
        };
        let stats = Arc::clone(&self.stats);
        let allow = Arc::clone(&self.allow);
        // `gone`: the client went away (the HTTP server's watch): the burst
        // ends early, its place free for others.
        Reply::Later(Box::new(move |gone: &Stop| {
            let started = Instant::now();
            let pinned = pin(&target_of(&query), &query, resolving);
            if let Ok((_, peer)) = &pinned {
                if let Some(refused) = not_allowed(&allow, &stats, &query, peer.ip()) {
                    return refused;
                }
            }
            let slot = match slot.map_or_else(|| take_slot(&stats), Ok) {
                Ok(slot) => slot,
                Err(busy) => return busy,
            };
            let result = burst(&query, pinned, started, gone);
            slot.0.probes.fetch_add(1, Ordering::Relaxed);
            drop(slot);
            Response {
                status: 200,
                content_type: CONTENT_TYPE.into(),
                body: render(&result),
            }
        }))
    }
}

/// The `403` for a target at `ip` outside `allow` (counted), if it is.
fn not_allowed(
    allow: &[Cidr],
    stats: &ExporterStats,
    query: &ProbeQuery,
    ip: std::net::IpAddr,
) -> Option<Response> {
    let ip = unmap(ip);
    if allow.is_empty() || allow.iter().any(|net| net.contains(ip)) {
        return None;
    }
    stats.refused_not_allowed.fetch_add(1, Ordering::Relaxed);
    Some(Response::text(
        403,
        &format!(
            "target {}:{} ({ip}) is outside --probe-allow",
            query.host, query.port
        ),
    ))
}

/// One of [`MAX_CONCURRENT`] bursts' places, or the `503` that says none is
/// free (counted).
fn take_slot(stats: &Arc<ExporterStats>) -> Result<Slot, Response> {
    let taken = stats
        .running
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CONCURRENT).then_some(n + 1)
        });
    if taken.is_err() {
        stats.refused_busy.fetch_add(1, Ordering::Relaxed);
        return Err(Response::text(
            503,
            &format!("{MAX_CONCURRENT} probes are running already; try again"),
        ));
    }
    Ok(Slot(Arc::clone(stats)))
}

impl Routes for ProbeHandler {
    fn route(&self, request: &RequestHead<'_>) -> Option<Reply> {
        (request.path == "/probe").then(|| {
            self.probe(
                request.query,
                request.header("X-Prometheus-Scrape-Timeout-Seconds"),
            )
        })
    }
}

/// The pure exporter (`udp-echo-client --metrics ADDR:PORT`, no target):
/// binds `addr`, writes `metrics on URL` to `out`, then serves `/probe`
/// (targets inside `allow` only, when given) and, at `/metrics`, its own
/// counters until `stop`. Listening beyond loopback with no `allow`, it
/// warns: whoever reaches it can make this host send UDP anywhere.
pub fn serve_at(
    addr: SocketAddr,
    allow: &[Cidr],
    stop: &Stop,
    out: &mut dyn std::io::Write,
) -> crate::Result<()> {
    let listener = crate::metrics::bind(addr)?;
    let bound = listener.local_addr().unwrap_or(addr);
    writeln!(out, "metrics on {}", crate::metrics::url(bound))
        .and_then(|()| out.flush())
        .map_err(|source| crate::Error::Io {
            what: "write the metrics address to stdout",
            source,
        })?;
    if allow.is_empty() && !bound.ip().is_loopback() {
        log::warn!(
            "/probe on {bound}: whoever reaches it can make this host send UDP to any address; \
             --probe-allow CIDR limits the targets, or listen on an address only Prometheus reaches"
        );
    }
    let handler = ProbeHandler::with_allow(allow);
    crate::metrics::http::serve_routes(
        &listener,
        stop,
        CONTENT_TYPE,
        &|| handler.stats().render(),
        &handler,
    );
    Ok(())
}

#[cfg(test)]
mod tests;
