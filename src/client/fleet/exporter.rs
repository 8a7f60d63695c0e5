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

mod query;
mod render;
pub use query::{ProbeMode, ProbeQuery, decode};
pub use render::render;

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
        // Unauthenticated, NTP time stamps: a sender's defaults.
        options: StampOptions::default(),
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
