//! Per-probe records (`--probes FILE`): one line per settled probe and per
//! extra reply, as NDJSON, or CSV when the file name ends in `.csv`.
//!
//! The books ([`super::measure`]) push a [`ProbeRecord`] into a buffer they
//! reserve once; each flow hands full buffers ([`ProbeBatch`]) over a bounded
//! channel to one writer thread ([`write_records`]), which formats them into a
//! `BufWriter`. The measuring threads never format or write: they move a
//! `Vec` of small `Copy` records, once per few hundred probes.
//!
//! Outcomes and the summary: every probe settles once, as `answered`
//! (intact, in time), `truncated`, `corrupt` (its first reply in time was
//! damaged; `rtt_us` set) or `lost`; every further reply is one more record:
//! `late` (first reply after the timeout), `duplicate`, or `corrupt` (a
//! damaged late or repeated copy; `rtt_us` empty). So, with nothing in flight
//! at the end: `sent` = answered + truncated + corrupt with an RTT + lost,
//! `received` = answered + truncated + corrupt with an RTT, `lost`, `late`,
//! `duplicates`, `truncated` and `corrupt` are the counts of their records
//! (a damaged late reply is recorded `corrupt` and counted in `late` too).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{SystemTime, UNIX_EPOCH};

/// What became of a probe, or what one more reply to it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeOutcome {
    /// Its first reply came intact and in time.
    Answered,
    /// No reply within the timeout.
    Lost,
    /// A first reply after the timeout (the probe is lost).
    Late,
    /// Another copy of a reply already seen.
    Duplicate,
    /// A reply whose bytes differ from the probe.
    Corrupt,
    /// A reply in time but shorter than the probe.
    Truncated,
}

impl ProbeOutcome {
    /// Every outcome, in the order the docs list them.
    pub const ALL: [ProbeOutcome; 6] = [
        ProbeOutcome::Answered,
        ProbeOutcome::Lost,
        ProbeOutcome::Late,
        ProbeOutcome::Duplicate,
        ProbeOutcome::Corrupt,
        ProbeOutcome::Truncated,
    ];

    /// The outcome's name in the records.
    pub fn name(self) -> &'static str {
        match self {
            ProbeOutcome::Answered => "answered",
            ProbeOutcome::Lost => "lost",
            ProbeOutcome::Late => "late",
            ProbeOutcome::Duplicate => "duplicate",
            ProbeOutcome::Corrupt => "corrupt",
            ProbeOutcome::Truncated => "truncated",
        }
    }
}

/// One record: a probe settled, or one more reply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRecord {
    /// The probe's sequence number (per flow, from 1).
    pub seq: u64,
    /// The flow (socket) it went out on, from 0.
    pub flow: u32,
    /// When it was sent, ns since the run's start; `None` when no longer
    /// known (a damaged reply to a probe already settled).
    pub sent_ns: Option<u64>,
    /// Round trip in ns, where one was timed.
    pub rtt_ns: Option<u64>,
    /// What it was.
    pub outcome: ProbeOutcome,
    /// Its times are shared with other probes: it left in one send with
    /// others (`sent_ns` is that send's), or its reply came in one receive
    /// buffer with others (one receive time for all). Its `rtt_us` then is
    /// the batch's, not its own.
    pub batch_timed: bool,
    /// The host's own send delay, ns: from the user-space send time to the
    /// kernel's transmit stamp, where one came (ping and rate on Linux);
    /// the round trip then starts at the stamp.
    pub send_delay_ns: Option<u64>,
}

impl ProbeRecord {
    /// `per-batch` when its times are shared with other probes, else `per-probe`.
    pub fn timing(&self) -> &'static str {
        if self.batch_timed {
            "per-batch"
        } else {
            "per-probe"
        }
    }
}

/// Records handed from a flow to the writer thread.
#[derive(Debug)]
pub struct ProbeBatch {
    /// The run's start (the probes' clock origin), ns since the Unix epoch.
    pub origin_unix_ns: u64,
    /// The records, in the order they settled on that flow.
    pub records: Vec<ProbeRecord>,
}

/// How the records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// A header line, then comma-separated values.
    Csv,
}

impl Format {
    /// CSV when the file name ends in `.csv`, NDJSON otherwise (and for `-`).
    pub fn for_path(path: &Path) -> Format {
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv { Format::Csv } else { Format::Ndjson }
    }
}

/// The CSV header line.
pub const CSV_HEADER: &str = "seq,flow,sent_ns,sent_unix_ns,rtt_us,outcome,timing,send_delay_us";

/// Now, ns since the Unix epoch.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Appends one record as a line (with its newline) to `line`.
pub fn format_record(line: &mut String, format: Format, origin_unix_ns: u64, r: &ProbeRecord) {
    let unix = r.sent_ns.map(|ns| origin_unix_ns + ns);
    // µs with three decimals from integers: float formatting would be most
    // of the writer's time in a flood.
    let rtt_us = r.rtt_ns.map(Micros);
    let delay_us = r.send_delay_ns.map(Micros);
    let _ = match format {
        Format::Ndjson => {
            let _ = write!(line, "{{\"seq\":{},\"flow\":{},", r.seq, r.flow);
            match (r.sent_ns, unix) {
                (Some(ns), Some(unix)) => write!(line, "\"sent_ns\":{ns},\"sent_unix_ns\":{unix},"),
                _ => write!(line, "\"sent_ns\":null,\"sent_unix_ns\":null,"),
            }
            .and_then(|()| match rtt_us {
                Some(us) => write!(line, "\"rtt_us\":{us},"),
                None => write!(line, "\"rtt_us\":null,"),
            })
            .and_then(|()| {
                write!(
                    line,
                    "\"outcome\":\"{}\",\"timing\":\"{}\",",
                    r.outcome.name(),
                    r.timing()
                )
            })
            .and_then(|()| match delay_us {
                Some(us) => writeln!(line, "\"send_delay_us\":{us}}}"),
                None => writeln!(line, "\"send_delay_us\":null}}"),
            })
        }
        Format::Csv => {
            let _ = write!(line, "{},{},", r.seq, r.flow);
            if let (Some(ns), Some(unix)) = (r.sent_ns, unix) {
                let _ = write!(line, "{ns},{unix}");
            } else {
                line.push(',');
            }
            line.push(',');
            if let Some(us) = rtt_us {
                let _ = write!(line, "{us}");
            }
            let _ = write!(line, ",{},{},", r.outcome.name(), r.timing());
            match delay_us {
                Some(us) => writeln!(line, "{us}"),
                None => writeln!(line),
            }
        }
    };
}

/// Nanoseconds shown as microseconds with three decimals.
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// The writer thread: formats every batch from `batches` into `out` until
/// every sender is gone, then flushes. Returns how many records it wrote.
pub fn write_records(
    batches: Receiver<ProbeBatch>,
    out: impl Write,
    format: Format,
) -> io::Result<u64> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut line = String::with_capacity(256);
    let mut written = 0;
    for batch in batches {
        for record in &batch.records {
            line.clear();
            format_record(&mut line, format, batch.origin_unix_ns, record);
            out.write_all(line.as_bytes())?;
            written += 1;
        }
        // Records appear as they settle when the run is slow (ping):
        // a flush per batch, and a batch holds hundreds in a fast run.
        out.flush()?;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: ProbeOutcome, sent: Option<u64>, rtt: Option<u64>) -> ProbeRecord {
        ProbeRecord {
            seq: 7,
            flow: 1,
            sent_ns: sent,
            rtt_ns: rtt,
            outcome,
            batch_timed: false,
            send_delay_ns: None,
        }
    }

    #[test]
    fn records_are_ndjson_lines_or_csv_rows() {
        let mut line = String::new();
        let r = record(ProbeOutcome::Answered, Some(1_000), Some(52_100));
        format_record(&mut line, Format::Ndjson, 5_000, &r);
        assert_eq!(
            line,
            "{\"seq\":7,\"flow\":1,\"sent_ns\":1000,\"sent_unix_ns\":6000,\"rtt_us\":52.100,\"outcome\":\"answered\",\"timing\":\"per-probe\",\"send_delay_us\":null}\n"
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["outcome"], "answered");
        line.clear();
        format_record(
            &mut line,
            Format::Csv,
            5_000,
            &record(ProbeOutcome::Lost, Some(1_000), None),
        );
        assert_eq!(line, "7,1,1000,6000,,lost,per-probe,\n");
        line.clear();
        format_record(
            &mut line,
            Format::Ndjson,
            5_000,
            &record(ProbeOutcome::Corrupt, None, None),
        );
        assert!(
            line.contains(
                "\"sent_ns\":null,\"sent_unix_ns\":null,\"rtt_us\":null,\"outcome\":\"corrupt\",\"timing\":\"per-probe\""
            ),
            "{line}"
        );
        line.clear();
        let mut r = record(ProbeOutcome::Corrupt, None, Some(1_000_001));
        r.batch_timed = true;
        format_record(&mut line, Format::Csv, 5_000, &r);
        assert_eq!(line, "7,1,,,1000.001,corrupt,per-batch,\n");
        // A probe timed from its kernel transmit stamp carries its send delay.
        line.clear();
        let mut r = record(ProbeOutcome::Answered, Some(1_000), Some(52_100));
        r.send_delay_ns = Some(2_345);
        format_record(&mut line, Format::Csv, 5_000, &r);
        assert_eq!(line, "7,1,1000,6000,52.100,answered,per-probe,2.345\n");
        line.clear();
        format_record(&mut line, Format::Ndjson, 5_000, &r);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["send_delay_us"], 2.345);
    }

    #[test]
    fn the_format_follows_the_file_name() {
        assert_eq!(Format::for_path(Path::new("run.csv")), Format::Csv);
        assert_eq!(Format::for_path(Path::new("RUN.CSV")), Format::Csv);
        assert_eq!(Format::for_path(Path::new("run.ndjson")), Format::Ndjson);
        assert_eq!(Format::for_path(Path::new("-")), Format::Ndjson);
    }
}
