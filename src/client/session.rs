//! A measured run (ping, flood, rate) with every output it can have: the
//! report (human lines or `--json`), the `--metrics` endpoint, the `--probes`
//! records, the `--histogram` and the `--plot`.
//!
//! The binary hands over where the report goes (stdout, or stderr when the
//! records take stdout with `--probes -`); the rest runs here: the metrics
//! endpoint and the records' writer are threads scoped to the run.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use super::Target;
use super::measure::{Event, Hooks, MeasureConfig, MeasureMode, MeasureSummary, measure_with};
use super::plot::Timeline;
use super::probes::{Format, write_records};
use crate::client::metrics::ClientMetrics;
use crate::client::report;
use crate::client::stats::Latency;
use crate::error::{Error, Result};
use crate::metrics;
use crate::shutdown::Stop;

/// What a measured run writes besides its summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// The summary as one JSON object instead of the human report.
    pub json: bool,
    /// Serve Prometheus metrics here (ping mode).
    pub metrics: Option<SocketAddr>,
    /// Write per-probe records here (`-`: stdout).
    pub probes: Option<PathBuf>,
    /// Draw the RTT distribution after the summary.
    pub histogram: bool,
    /// Draw RTT over time and its distribution as SVG here.
    pub plot: Option<PathBuf>,
}

impl Outputs {
    /// Whether the records take stdout (`--probes -`): the report then goes to stderr.
    pub fn probes_on_stdout(&self) -> bool {
        self.probes.as_deref() == Some(Path::new("-"))
    }
}

/// Bounded hand-over to the records' writer: a slow disk slows the run
/// rather than growing memory.
const PROBE_BATCHES_IN_FLIGHT: usize = 64;

/// Runs the measured mode of `config` against `target` with `outputs`, the
/// report written to `out`. Ok(passed) decides the exit code.
pub fn run(
    target: &Target,
    config: &MeasureConfig,
    outputs: &Outputs,
    stop: &Stop,
    out: &mut dyn Write,
) -> Result<bool> {
    // One address for the whole run: its sockets, its lines, its labels.
    let (pinned, peer) = super::pinned(target)?;
    let label = peer.to_string();
    // The output files first: a path that cannot be written is refused before
    // the run, not after it.
    let records = match &outputs.probes {
        Some(path) => Some((open_probes(path)?, Format::for_path(path))),
        None => None,
    };
    let plot = match &outputs.plot {
        Some(path) => Some(File::create(path).map_err(|source| Error::File {
            what: "create the --plot file",
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    if let Some((bytes, text)) = probes_volume(config, outputs) {
        if bytes >= PROBES_WARN_BYTES {
            log::warn!("{text}");
        } else {
            log::info!("{text}");
        }
    }
    let endpoint = match outputs.metrics {
        Some(addr) => {
            let listener = metrics::bind(addr)?;
            let bound = listener.local_addr().unwrap_or(addr);
            // stdout carries the ping lines: the URL goes to stderr, unprefixed.
            let _ = writeln!(io::stderr(), "metrics on {}", metrics::url(bound));
            let dscp_sent = config.tos.unwrap_or(0) >> 2;
            Some((listener, ClientMetrics::new(&label, dscp_sent)))
        }
        None => None,
    };
    let endpoint_stop = Stop::new();
    thread::scope(|scope| {
        if let Some((listener, m)) = &endpoint {
            let endpoint_stop = &endpoint_stop;
            scope.spawn(move || m.serve(listener, endpoint_stop));
        }
        let (sink, writer) = match records {
            Some((file, format)) => {
                let (tx, rx) = mpsc::sync_channel(PROBE_BATCHES_IN_FLIGHT);
                (
                    Some(tx),
                    Some(scope.spawn(move || write_records(rx, file, format))),
                )
            }
            None => (None, None),
        };
        let result = report_run(
            (&pinned, &target.host),
            config,
            outputs,
            stop,
            out,
            Sinks {
                live: endpoint.as_ref().map(|e| &e.1),
                probes: sink,
                plot,
            },
        );
        endpoint_stop.request();
        if let Some(writer) = writer {
            match writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
            {
                // After a volume warning, what it came to.
                Ok(n) => match outputs.probes.as_deref() {
                    Some(path)
                        if !outputs.probes_on_stdout()
                            && probes_volume(config, outputs).is_some() =>
                    {
                        let size = std::fs::metadata(path).map_or(0, |m| m.len());
                        log::info!(
                            "{n} probe records, {}, written to {}",
                            format_bytes(size),
                            path.display()
                        );
                    }
                    _ => log::debug!("{n} probe records written"),
                },
                Err(e) => log::warn!("probe records incomplete: {e}"),
            }
        }
        result
    })
}

/// Opens the `--probes` destination: `-` is stdout.
fn open_probes(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    File::create(path)
        .map(|f| Box::new(f) as Box<dyn Write + Send>)
        .map_err(|source| Error::File {
            what: "create the --probes file",
            path: path.to_owned(),
            source,
        })
}

/// A file size as people say it: `870 bytes`, `5.5 MB`, `1.2 GB` (powers of 1000).
fn format_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n < 1e3 => format!("{n} bytes"),
        _ if n < 1e6 => format!("{:.1} kB", n / 1e3),
        _ if n < 1e9 => format!("{:.1} MB", n / 1e6),
        _ => format!("{:.1} GB", n / 1e9),
    }
}

/// Bytes per `--probes` record, roughly (measured: CSV rows 53-57, NDJSON
/// lines 131-137 with `send_delay_us`, growing with the sequence number).
fn record_bytes(format: Format) -> f64 {
    match format {
        Format::Csv => 56.0,
        Format::Ndjson => 135.0,
    }
}

/// The probes per second the volume warning assumes for a flood, which runs
/// as fast as replies come: a loopback flood with GSO and GRO reaches it.
const FLOOD_PPS_ASSUMED: f64 = 1e6;

/// From this estimate on, the volume line is a warning.
const PROBES_WARN_BYTES: u64 = 10_000_000;

/// What `--probes` will write in flood and rate mode, whose records come by
/// the hundred thousand per second: the bytes expected and the line that
/// says so. `None` in ping mode (a record per interval) and without `--probes`.
fn probes_volume(config: &MeasureConfig, outputs: &Outputs) -> Option<(u64, String)> {
    let path = outputs.probes.as_deref()?;
    let format = Format::for_path(path);
    let secs = config.duration.as_secs_f64();
    let per_record = record_bytes(format);
    let (pps, how) = match config.mode {
        MeasureMode::Ping { .. } => return None,
        MeasureMode::Rate { pps } => (pps, format!("{pps} probes/s")),
        MeasureMode::Flood { .. } => (
            FLOOD_PPS_ASSUMED,
            "a flood as fast as replies come (1 million probes/s on loopback)".to_owned(),
        ),
    };
    let total = (pps * secs * per_record) as u64;
    let text = format!(
        "--probes {}: {how} for {secs} s writes about {} (a record of ~{per_record:.0} bytes per probe)",
        path.display(),
        format_bytes(total)
    );
    Some((total, text))
}

/// Where a run's results go besides the report.
struct Sinks<'a> {
    /// The metrics endpoint's counters.
    live: Option<&'a ClientMetrics>,
    /// The records' writer thread.
    probes: Option<mpsc::SyncSender<super::probes::ProbeBatch>>,
    /// The `--plot` file, created before the run.
    plot: Option<File>,
}

/// The run itself and its report: lines as it goes, the summary, then the
/// histogram and the plot when asked.
fn report_run(
    (target, host): (&Target, &str),
    config: &MeasureConfig,
    outputs: &Outputs,
    stop: &Stop,
    out: &mut dyn Write,
    sinks: Sinks<'_>,
) -> Result<bool> {
    let Sinks { live, probes, plot } = sinks;
    let json = outputs.json;
    let out = RefCell::new(out);
    // A closed report stream ends the run like Ctrl-C: nobody is reading any more.
    let print = |text: &str| {
        if !json && writeln!(out.borrow_mut(), "{text}").is_err() {
            stop.request();
        }
    };
    let timeline = RefCell::new(outputs.plot.as_ref().map(|_| Timeline::new(config.timeout)));
    let mut latency = Latency::new();
    let mut peer = String::new();
    let mut on_counts = |counts: &crate::client::stats::Counts| {
        if let Some(m) = live {
            m.counts(counts);
        }
    };
    let mut whole = measure_with(
        target,
        config,
        stop,
        Hooks {
            on_event: &mut |event| {
                if let Some(m) = live {
                    m.event(&event);
                }
                if let Some(t) = timeline.borrow_mut().as_mut() {
                    t.event(&event);
                }
                if let Event::Start { peer: addr } = event {
                    peer = addr.to_string();
                    // As sized for this peer (`--stamp-tlv dna`).
                    let sized = config.for_peer(addr.ip());
                    print(&report::start_line(
                        &super::target_label(host, addr),
                        sized.as_ref().unwrap_or(config),
                    ));
                } else {
                    print(&report::ping_event(&event, &peer));
                }
            },
            on_interval: &mut |interval| {
                if let Some(t) = timeline.borrow_mut().as_mut() {
                    t.interval(interval);
                }
                print(&report::interval_line(interval));
            },
            on_counts: live
                .map(|_| &mut on_counts as &mut dyn FnMut(&crate::client::stats::Counts)),
            probes,
            latency: Some(&mut latency),
        },
    )?;
    whole.set_host(host);
    let summary = whole.run();
    // JSON on stdout stays one object: an outage is also said on stderr.
    if let (true, Some(line)) = (json && summary.had_outage(), report::silence(summary)) {
        // The log prefix says "warning: " already.
        log::warn!("{}", line.strip_prefix("warning: ").unwrap_or(&line));
    }
    // Likewise that the target answered, but not as a STAMP reflector.
    if let (true, MeasureSummary::Stamp(stamp)) = (json, &whole) {
        if let Some(hint) = report::not_reflections(stamp) {
            log::warn!("{hint}");
        }
    }
    let out = out.into_inner();
    // In human mode the summary is the stream's last line: like the others, it
    // may find the stream closed, and the probes still decide the exit code.
    let text = if json {
        report::json(&whole)
    } else {
        report::any_summary(&whole)
    };
    let written = writeln!(out, "{}", text.trim_end());
    if let (Err(source), true) = (written, json) {
        return Err(Error::Io {
            what: "write the result to stdout",
            source,
        });
    }
    if outputs.histogram {
        let width = report::terminal_width();
        let text = report::histogram(&latency, width);
        // After a JSON object the histogram would spoil it: stderr then.
        let _ = if json {
            writeln!(io::stderr(), "{}", text.trim_end())
        } else {
            writeln!(out, "{}", text.trim_end())
        };
    }
    if let (Some(path), Some(mut file), Some(timeline)) =
        (&outputs.plot, plot, timeline.into_inner())
    {
        let svg = super::plot::svg(summary, &timeline, &latency, &super::plot::utc_now());
        file.write_all(svg.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|source| Error::File {
                what: "write the --plot file",
                path: path.clone(),
                source,
            })?;
        log::info!("plot written to {}", path.display());
    }
    Ok(summary.passed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn volume(mode: MeasureMode, secs: u64, probes: &str) -> Option<(u64, String)> {
        let config = MeasureConfig {
            mode,
            size: 64,
            timeout: Duration::from_secs(1),
            duration: Duration::from_secs(secs),
            flows: 1,
            stamp: None,
            tos: None,
        };
        let outputs = Outputs {
            probes: Some(PathBuf::from(probes)),
            ..Outputs::default()
        };
        probes_volume(&config, &outputs)
    }

    #[test]
    fn the_probes_volume_is_estimated_for_flood_and_rate_only() {
        let (bytes, text) = volume(MeasureMode::Rate { pps: 20000.0 }, 5, "run.csv").unwrap();
        assert_eq!(bytes, 5_600_000);
        assert!(
            text.contains("--probes run.csv: 20000 probes/s for 5 s writes about 5.6 MB"),
            "{text}"
        );
        let (bytes, text) = volume(MeasureMode::Flood { window: 32 }, 5, "run.ndjson").unwrap();
        assert!(bytes >= PROBES_WARN_BYTES, "{text}");
        assert!(text.contains("675.0 MB"), "{text}");
        let ping = MeasureMode::Ping {
            count: Some(3),
            interval: Duration::from_secs(1),
        };
        assert_eq!(volume(ping, 5, "run.csv"), None);
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(format_bytes(870), "870 bytes");
        assert_eq!(format_bytes(57_500), "57.5 kB");
        assert_eq!(format_bytes(330_000_000), "330.0 MB");
        assert_eq!(format_bytes(1_200_000_000), "1.2 GB");
    }
}
