//! The lines of the client's tools beside measuring: `--find-rate`,
//! `--pmtu` and `--doctor`.

use std::fmt::Write as _;
use std::time::Duration;

use super::{flows, ms, secs};
use crate::client::doctor::{Finding, Severity};
use crate::client::find_rate::{FindRateSummary, Step};
use crate::client::measure::MeasureConfig;
use crate::client::pmtu::{PmtuOutcome, PmtuStep, PmtuSummary};
use crate::units::count;

/// The first line of `--find-rate`.
pub fn find_rate_start(host: &str, config: &MeasureConfig, max_loss: f64) -> String {
    format!(
        "UDP ECHO FIND-RATE {host}: {} bytes per probe, loss ≤ {max_loss}%, steps of {} s over {}, {} s apart",
        config.size,
        secs(config.duration),
        flows(config.flows),
        secs(crate::client::find_rate::SETTLE),
    )
}

/// One `--find-rate` step.
pub fn find_rate_step(i: usize, step: &Step) -> String {
    format!(
        "step {i:2}: {:>9.0} probes/s  sent {:>9.0}/s  lost {} ({:.2}%{})  p99 {} ms  {}",
        step.rate_pps,
        step.send_rate_pps,
        step.lost,
        step.loss_percent,
        match step.lost_in_client {
            Some(mine) if step.lost > 0 => format!(", {mine} in this client's buffers"),
            _ => String::new(),
        },
        ms(step.p99_us),
        if step.ok { "ok" } else { "too fast" }
    )
}

/// The answer of `--find-rate`.
pub fn find_rate_summary(s: &FindRateSummary) -> String {
    if s.interrupted {
        let so_far = match (s.answer_pps, s.limit_pps) {
            (Some(a), Some(l)) => format!("{a:.0} probes/s passed, {l:.0} probes/s was too fast"),
            (Some(a), None) => format!("{a:.0} probes/s passed, no rate failed yet"),
            (None, Some(l)) => format!("no rate passed, {l:.0} probes/s was too fast"),
            (None, None) => "no step finished".to_owned(),
        };
        let steps = s.steps.len();
        return format!(
            "interrupted after {steps} step{}, before the search ended (loss ≤ {}%): so far {so_far}",
            if steps == 1 { "" } else { "s" },
            s.max_loss_percent
        );
    }
    let limit = s
        .limit_pps
        .map_or("no limit found below the ceiling".to_owned(), |l| {
            format!("{l:.0} probes/s was too fast")
        });
    match s.answer_pps {
        Some(a) => format!(
            "highest rate with loss ≤ {}%: {a:.0} probes/s of {} bytes ({:.1} Mbit/s each way); {limit}",
            s.max_loss_percent,
            s.size,
            a * s.size as f64 * 8.0 / 1e6
        ),
        None => format!("no rate passed (loss ≤ {}%); {limit}", s.max_loss_percent),
    }
}

/// The first line of `--pmtu`.
pub fn pmtu_start(target: &str, min: usize, timeout: Duration) -> String {
    format!(
        "UDP ECHO PMTU {target}: don't-fragment set, payload {min}..{} bytes, timeout {} s",
        crate::client::probe::MAX_SIZE,
        secs(timeout)
    )
}

fn outcome_text(o: &PmtuOutcome) -> String {
    match o {
        PmtuOutcome::Intact => "echoed intact".to_owned(),
        PmtuOutcome::Emsgsize { path_mtu: Some(m) } => {
            format!("too big here (EMSGSIZE: the kernel's path MTU is {m})")
        }
        PmtuOutcome::Emsgsize { path_mtu: None } => "too big here (EMSGSIZE)".to_owned(),
        PmtuOutcome::Silence => format!(
            "no reply in {} tries (dropped on the way?)",
            crate::client::pmtu::SILENT_TRIES
        ),
        PmtuOutcome::Truncation => "came back truncated".to_owned(),
        PmtuOutcome::Corruption => "came back with other bytes".to_owned(),
    }
}

/// One size tried by `--pmtu`.
pub fn pmtu_step(step: &PmtuStep) -> String {
    format!("{:>6} bytes: {}", step.size, outcome_text(&step.outcome))
}

/// The answer of `--pmtu`.
pub fn pmtu_summary(s: &PmtuSummary) -> String {
    let limit = match &s.limit {
        None => "nothing larger exists: the largest UDP payload fits".to_owned(),
        Some(PmtuOutcome::Emsgsize { .. }) => {
            "limit: local EMSGSIZE, the kernel knows the path MTU (from the interface or an ICMP \"fragmentation needed\")".to_owned()
        }
        Some(PmtuOutcome::Silence) => {
            "limit: silence, larger datagrams are dropped on the way without an ICMP error (a PMTU black hole)".to_owned()
        }
        Some(PmtuOutcome::Truncation) => "limit: truncation, larger replies come back cut".to_owned(),
        Some(PmtuOutcome::Corruption) => "limit: corruption, larger replies come back altered".to_owned(),
        Some(PmtuOutcome::Intact) => unreachable!("an intact size is never the limit"),
    };
    let kernel = s
        .kernel_path_mtu
        .map_or(String::new(), |m| format!("; kernel path MTU {m}"));
    match (s.largest_payload, s.proven_mtu) {
        (Some(p), Some(mtu)) => format!(
            "largest payload that echoes intact: {p} bytes (a path MTU of at least {mtu} = {p} + {} bytes of headers){kernel}; {limit}",
            mtu - p
        ),
        _ => format!(
            "not even the smallest payload echoes intact with don't-fragment set{kernel}; {limit}"
        ),
    }
}

/// The `--doctor` report: one line per finding, its fix indented below, and a
/// closing count.
pub fn doctor(target: &str, findings: &[Finding]) -> String {
    let mut out = format!("udp-echo doctor for {target}\n");
    for f in findings {
        let tag = match f.severity {
            Severity::Ok => "[ok]    ",
            Severity::Note => "[note]  ",
            Severity::Action => "[ACTION]",
        };
        let _ = writeln!(out, "{tag} {}: {}", f.topic, f.text);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "         fix: {fix}");
        }
    }
    let actions = findings
        .iter()
        .filter(|f| f.severity == Severity::Action)
        .count();
    let notes = findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .count();
    let _ = write!(
        out,
        "{} action, {}",
        count(actions as u64, "needs", "need"),
        count(notes as u64, "note", "notes")
    );
    out
}

/// The `--doctor --json` object: the target, the mode and every finding.
pub fn doctor_json(target: &str, findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "target": target, "mode": "doctor", "findings": findings })
}
