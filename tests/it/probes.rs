//! `--probes`, `--histogram` and `--plot`: per-probe records that add up to
//! the summary in every measured mode, the terminal histogram, and the SVG.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::*;

mod charts;

/// A scratch file name for this test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("udp-echo-{}-{name}", std::process::id()));
        Scratch(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `python3 -c script file`; `None` (and a visible skip) without python3.
fn python(script: &str, file: &str) -> Option<String> {
    let Ok(out) = Command::new("python3").args(["-c", script, file]).output() else {
        skip("python3 not installed: the CSV and SVG are not parsed by an independent reader");
        return None;
    };
    assert!(
        out.status.success(),
        "python3 failed on {file}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Counts per outcome, and how many `corrupt` records carry an RTT.
fn tally(records: &[(String, bool)]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for (outcome, has_rtt) in records {
        *counts.entry(outcome.clone()).or_insert(0) += 1;
        if outcome == "corrupt" && *has_rtt {
            *counts.entry("corrupt_in_time".to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// NDJSON records: (outcome, has an RTT).
fn ndjson(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(
                v["seq"].as_u64().is_some() && v["flow"].as_u64().is_some(),
                "{line}"
            );
            let lost = v["outcome"] == "lost";
            assert_eq!(
                v["rtt_us"].is_null(),
                lost || v["outcome"] == "duplicate",
                "{line}"
            );
            assert!(
                v["sent_ns"].as_u64().is_some() && v["sent_unix_ns"].as_u64().is_some(),
                "{line}"
            );
            (
                v["outcome"].as_str().unwrap().to_owned(),
                !v["rtt_us"].is_null(),
            )
        })
        .collect()
}

/// The summary's counts equal the records': every probe settles once, every
/// extra reply is one more record.
fn assert_adds_up(summary: &serde_json::Value, records: &[(String, bool)]) {
    let t = tally(records);
    let n = |k: &str| t.get(k).copied().unwrap_or(0);
    let s = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    assert_eq!(s("in_flight"), 0, "{summary}");
    let settled = n("answered") + n("truncated") + n("corrupt_in_time");
    assert_eq!(s("received"), settled, "received: {t:?} {summary}");
    assert_eq!(s("lost"), n("lost"), "lost: {t:?} {summary}");
    assert_eq!(s("sent"), settled + n("lost"), "sent: {t:?} {summary}");
    assert_eq!(s("duplicates"), n("duplicate"), "{t:?} {summary}");
    assert_eq!(s("truncated"), n("truncated"), "{t:?} {summary}");
    assert_eq!(s("corrupt"), n("corrupt"), "{t:?} {summary}");
    assert_eq!(s("late"), n("late"), "{t:?} {summary}");
    assert_eq!(
        summary["rtt_us"]["samples"].as_u64(),
        Some(n("answered")),
        "{summary}"
    );
}

fn json_summary(run: &ClientRun) -> serde_json::Value {
    serde_json::from_str(run.stdout_text().trim())
        .unwrap_or_else(|e| panic!("{e}: stdout {:?} stderr {}", run.stdout_text(), run.stderr))
}

/// A peer that drops every 2nd probe (by sequence number).
fn every_second_dropped() -> (std::net::SocketAddr, std::thread::JoinHandle<usize>) {
    fake_server(1000, |d| {
        let seq = u64::from_be_bytes(d[..8].try_into().unwrap());
        (seq % 2 == 1).then(|| d.to_vec())
    })
}

#[test]
fn ping_records_add_up_to_the_summary_with_losses() {
    let (peer, _server) = every_second_dropped();
    let file = Scratch::new("ping.ndjson");
    let port = peer.port().to_string();
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "20",
            "-i",
            "0.01",
            "-t",
            "0.5",
            "--json",
            "--probes",
            file.arg(),
        ],
        None,
    );
    let summary = json_summary(&run);
    let records = ndjson(&file.text());
    assert_eq!(records.len(), 20, "{}", file.text());
    assert_adds_up(&summary, &records);
    assert_eq!(summary["lost"], 10);
}

#[test]
fn rate_and_flood_records_add_up_to_the_summary_and_csv_parses() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let file = Scratch::new("rate.ndjson");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "2000",
            "-D",
            "0.5",
            "--flows",
            "2",
            "--json",
            "--probes",
            file.arg(),
        ],
        None,
    );
    let summary = json_summary(&run);
    let records = ndjson(&file.text());
    assert!(records.len() >= 500, "{} records", records.len());
    assert_adds_up(&summary, &records);

    let csv = Scratch::new("flood.csv");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-f",
            "-D",
            "0.5",
            "--json",
            "--probes",
            csv.arg(),
        ],
        None,
    );
    let summary = json_summary(&run);
    let text = csv.text();
    assert!(
        text.starts_with("seq,flow,sent_ns,sent_unix_ns,rtt_us,outcome,timing,send_delay_us\n"),
        "{}",
        &text[..100.min(text.len())]
    );
    let records: Vec<(String, bool)> = text
        .lines()
        .skip(1)
        .map(|row| {
            let cols: Vec<&str> = row.split(',').collect();
            assert_eq!(cols.len(), 8, "{row}");
            assert!(["per-probe", "per-batch"].contains(&cols[6]), "{row}");
            (cols[5].to_owned(), !cols[4].is_empty())
        })
        .collect();
    assert_adds_up(&summary, &records);
    // An independent CSV reader sees the same rows and columns.
    let script = "import csv,sys,collections\nrows=list(csv.DictReader(open(sys.argv[1])))\nprint(len(rows), collections.Counter(r['outcome'] for r in rows)['answered'], all(r['seq'].isdigit() for r in rows))";
    if let Some(out) = python(script, csv.arg()) {
        let answered = records.iter().filter(|r| r.0 == "answered").count();
        assert_eq!(out.trim(), format!("{} {answered} True", records.len()));
    }
}

#[test]
fn records_on_stdout_send_the_report_to_stderr() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "3",
            "-i",
            "0.01",
            "--probes",
            "-",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let records = ndjson(&run.stdout_text());
    assert_eq!(records.len(), 3, "{}", run.stdout_text());
    assert!(
        run.stderr.contains("3 probes sent, 3 received"),
        "{}",
        run.stderr
    );
}

#[test]
fn output_files_are_checked_before_the_run_and_named_in_errors() {
    // A silent target that counts what reaches it: nothing may.
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let port = target.local_addr().unwrap().port().to_string();
    let missing = std::env::temp_dir().join(format!("udp-echo-{}-no-such-dir", std::process::id()));
    for (option, file) in [("--plot", "x.svg"), ("--probes", "x.csv")] {
        let path = missing.join(file);
        let path = path.to_str().unwrap();
        // Ten probes a second apart: the run would take 9 s, the refusal none.
        let run = run_client(
            &["-H", "127.0.0.1", "-p", &port, "-c", "10", option, path],
            None,
        );
        assert_eq!(run.code(), Some(2), "{option}: {}", run.stderr);
        assert!(
            run.stderr.contains(path),
            "{option} names the path: {}",
            run.stderr
        );
        assert!(
            !run.stdout_text().contains("probes sent"),
            "{option}: measured first"
        );
        let mut buf = [0; 2048];
        assert!(target.recv(&mut buf).is_err(), "{option}: a probe was sent");
    }
    // Another extension than .svg would hold SVG under a wrong name.
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(
        &["-H", "127.0.0.1", "-p", &port, "-c", "1", "--plot", "x.png"],
        None,
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains(".svg"), "{}", run.stderr);
    // Where the plot went is said on stderr.
    let file = Scratch::new("said.svg");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "1",
            "--plot",
            file.arg(),
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("plot written to {}", file.arg())),
        "{}",
        run.stderr
    );
    assert!(file.text().starts_with("<svg"), "{}", file.text());
}

#[test]
fn probes_in_flood_and_rate_mode_warn_of_the_volume_and_say_what_it_came_to() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let file = Scratch::new("volume.csv");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-f",
            "-D",
            "0.3",
            "--probes",
            file.arg(),
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning: --probes"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {}", run.stderr);
    assert!(
        warnings[0].contains(file.arg()) && warnings[0].contains(" MB"),
        "{}",
        warnings[0]
    );
    // At the end: the records and bytes the file really holds.
    let rows = file.text().lines().count() as u64 - 1;
    let bytes = std::fs::metadata(&file.0).unwrap().len();
    let end = format!(
        "{rows} probe records, {:.1} MB, written to {}",
        bytes as f64 / 1e6,
        file.arg()
    );
    assert!(run.stderr.contains(&end), "{end}:\n{}", run.stderr);
    // An open-loop run's estimate is its own: 1000 probes/s for 0.5 s of ~135 bytes.
    let ndjson = Scratch::new("volume.ndjson");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "1000",
            "-D",
            "0.5",
            "--probes",
            ndjson.arg(),
        ],
        None,
    );
    assert!(
        run.stderr
            .contains("1000 probes/s for 0.5 s writes about 67.5 kB"),
        "{}",
        run.stderr
    );
    // Ping mode writes a record per interval: nothing to warn about.
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "2",
            "-i",
            "0",
            "--probes",
            ndjson.arg(),
        ],
        None,
    );
    assert!(!run.stderr.contains("--probes"), "{}", run.stderr);
}
