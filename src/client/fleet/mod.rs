//! The fleet prober: one process probing many targets continuously
//! (`udp-echo-client --targets FILE|dns+srv:NAME|dns+a:NAME:PORT --metrics ADDR:PORT`).
//!
//! - `targets.rs`: where the targets come from ([`TargetSource`]) and what a
//!   source yields ([`TargetGroup`]: Prometheus `file_sd` groups, targets as
//!   written plus their labels).
//! - `file_sd.rs`: the `file_sd` file, JSON or YAML, bounded and checked as
//!   it is parsed (errors name line and column).
//! - `discover.rs`: the DNS sources (`dns+srv:`, `dns+a:`), without a
//!   resolver library.
//! - `exporter.rs`: `GET /probe?target=HOST:PORT`, the blackbox_exporter
//!   pattern (one short burst per request), and the pure exporter mode.
//! - `spec.rs`: groups → one [`TargetSpec`](spec::TargetSpec) per target:
//!   its settings (`__param_*` labels over the command line's defaults)
//!   and metric labels; the bounds on targets and labels.
//! - `reload.rs`: the loader thread — loads, resolves names, reloads on
//!   change, SIGHUP and `--refresh`, hands each new set to the engine.
//! - `engine.rs`: the one probing thread — a socket per family, a compact
//!   `Books` per target, replies matched by source address.
//! - `schedule.rs`: the heap of send and expiry timers; hashed phases.
//! - `metrics.rs`: `/metrics`, from per-target atomics the engine stores.
//!
//! Threads: the engine (the caller's), the metrics endpoint, and the loader,
//! which is not joined (a lookup stuck in the resolver must not hold a stop).

pub mod discover;
pub mod exporter;
pub mod file_sd;
pub mod spec;
pub mod targets;

pub use targets::{SourceError, TargetGroup, TargetSource};
mod engine;
mod metrics;
mod reload;
mod schedule;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::client::probe::Clock;
use crate::client::probes::unix_now_ns;
use crate::error::{Error, Result};
use crate::net::Family;
use crate::shutdown::Stop;
use crate::stamp::StampOptions;

/// What `--targets` mode was asked to do, free of clap types.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `--targets`.
    pub source: TargetSource,
    /// `--metrics`: where `/metrics` is served.
    pub metrics: SocketAddr,
    /// The settings of every target that does not set its own.
    pub defaults: spec::Defaults,
    /// `--refresh`: how often the source is re-read and names re-resolved.
    pub refresh: Duration,
    /// `-4` / `-6`.
    pub family: Family,
    /// STAMP targets' key file and time format (`--stamp-key`, `--stamp-ptp`).
    pub stamp: StampOptions,
    /// The RFC 8972 SSID of every STAMP target's session.
    pub ssid: u16,
    /// `--recv-buf`, `--send-buf`.
    pub recv_buf: Option<usize>,
    /// `--send-buf`.
    pub send_buf: Option<usize>,
    /// `--probe-allow`: the networks a `/probe` target may be in (empty: any).
    pub probe_allow: Vec<crate::net::cidr::Cidr>,
}

/// Probes the fleet until `stop`: loads the targets (a bad source is an
/// error: exit 2), serves `/metrics`, reloads on change, SIGHUP and
/// `--refresh`. The two lines it writes go to stderr: `metrics on URL` and
/// `fleet: N targets from SOURCE`.
pub fn run(config: &FleetConfig, stop: &Stop) -> Result<()> {
    let key = config.stamp.key()?;
    // Scrape bodies (≈ 2.5 KB a target) go back to the kernel once sent.
    crate::sys::return_large_blocks(1 << 20);
    let (clock, origin_unix_ns) = (Clock::new(), unix_now_ns());
    let fleet_metrics = Arc::new(metrics::FleetMetrics::new(clock, &config.defaults.labels));
    let mut loader = reload::Loader::new(
        config.source.clone(),
        config.defaults.clone(),
        config.family,
        fleet_metrics.process.clone(),
        stop.clone(),
    );
    // The loader's thread does the first load too, so a stop during it (names
    // whose lookups time out one after another) ends the process at once.
    // Not joined: the process exits while a lookup may still hang in it.
    let (first_tx, first_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let refresh = config.refresh;
    std::thread::spawn(move || {
        let first = loader.load();
        let loaded = first.is_ok();
        if first_tx.send(first).is_ok() && loaded {
            loader.watch(&tx, refresh);
        }
    });
    let first = loop {
        match first_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(first)) => break first,
            // A stop during the first load: nothing ran, nothing to say.
            Ok(Err(_)) | Err(_) if stop.is_requested() => return Ok(()),
            Ok(Err(e)) => return Err(Error::Targets(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Io {
                    what: "load the targets",
                    source: std::io::Error::other("the loader thread ended"),
                });
            }
        }
    };
    let listener = crate::metrics::bind(config.metrics)?;
    let bound = listener.local_addr().unwrap_or(config.metrics);
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "metrics on {}", crate::metrics::url(bound));
    let _ = writeln!(
        stderr,
        "fleet: {} targets from {}{}",
        first.set.len(),
        config.source.describe(),
        reload::unresolved_note(first.unresolved)
    );
    let mut engine = engine::Engine::new(
        clock,
        origin_unix_ns,
        engine::StampBase {
            key,
            format: config.stamp.format(),
            ssid: config.ssid,
        },
        engine::SocketConfig {
            recv_buf: config.recv_buf,
            send_buf: config.send_buf,
        },
        Arc::clone(&fleet_metrics),
    );
    engine.apply(first.set);
    std::thread::scope(|scope| {
        let m = &fleet_metrics;
        let listener = &listener;
        scope.spawn(move || {
            // The same endpoint answers blackbox-style `/probe`s too; their
            // counters join the fleet's series.
            let probes = exporter::ProbeHandler::with_allow(&config.probe_allow);
            crate::metrics::http::serve_routes(
                listener,
                stop,
                metrics::FleetMetrics::CONTENT_TYPE,
                &|| {
                    let mut body = m.render();
                    body.push_str(&probes.stats().render());
                    body
                },
                &probes,
            );
        });
        engine.run(&rx, stop);
    });
    Ok(())
}

/// `--list-targets`: the targets `source` gives, one a line (a group's
/// labels after it, `{name="value",…}`, when it has any).
pub fn list(source: &TargetSource) -> std::result::Result<String, SourceError> {
    let mut text = String::new();
    for group in source.load()? {
        let labels: Vec<String> = group
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        for target in &group.targets {
            text.push_str(target);
            if !labels.is_empty() {
                text.push_str(&format!(" {{{}}}", labels.join(",")));
            }
            text.push('\n');
        }
    }
    Ok(text)
}
