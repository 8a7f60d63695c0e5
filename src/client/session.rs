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
use super::measure::{Event, Hooks, MeasureConfig, Summary, measure_with};
use super::plot::Timeline;
use super::probes::{Format, write_records};
use crate::error::{Error, Result};
use crate::metrics::{self, client::ClientMetrics};
use crate::report;
use crate::shutdown::Stop;
use crate::stats::Latency;

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
    let records = match &outputs.probes {
        Some(path) => Some((open_probes(path)?, Format::for_path(path))),
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
            endpoint.as_ref().map(|e| &e.1),
            sink,
        );
        endpoint_stop.request();
        if let Some(writer) = writer {
            match writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
            {
                Ok(n) => log::debug!("{n} probe records written"),
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
        .map_err(|source| Error::Io {
            what: "create the --probes file",
            source,
        })
}

/// The run itself and its report: lines as it goes, the summary, then the
/// histogram and the plot when asked.
fn report_run(
    (target, host): (&Target, &str),
    config: &MeasureConfig,
    outputs: &Outputs,
    stop: &Stop,
    out: &mut dyn Write,
    live: Option<&ClientMetrics>,
    probes: Option<mpsc::SyncSender<super::probes::ProbeBatch>>,
) -> Result<bool> {
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
    let mut on_counts = |counts: &crate::stats::Counts| {
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
                    print(&report::start_line(
                        &super::target_label(host, addr),
                        config,
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
            on_counts: live.map(|_| &mut on_counts as &mut dyn FnMut(&crate::stats::Counts)),
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
    if let (true, Summary::Stamp(stamp)) = (json, &whole) {
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
    if let (Some(path), Some(timeline)) = (&outputs.plot, timeline.into_inner()) {
        let svg = super::plot::svg(summary, &timeline, &latency, &super::plot::utc_now());
        std::fs::write(path, svg).map_err(|source| Error::Io {
            what: "write the --plot file",
            source,
        })?;
    }
    Ok(summary.passed())
}
