//! The text of what DSCP marks and STAMP add to a run's report: the DSCP line
//! every run may have, and a STAMP session's start and summary lines.

use std::fmt::Write as _;

use super::{ms, summary};
use crate::client::measure::MeasureConfig;
use crate::client::stamp::{FollowUpSummary, StampConfig, StampSummary};
use crate::client::stats::DscpFigures;
use crate::net::dscp::{dscp_name, ecn_name};
use crate::stamp::Mode;

/// What a STAMP run's start line says of its packets:
/// `unauthenticated 44-byte test packets, SSID 7`.
pub(super) fn packets(config: &MeasureConfig, stamp: &StampConfig) -> String {
    format!(
        "{} {}-byte test packets{}, SSID {}",
        match stamp.mode() {
            Mode::Open => "unauthenticated",
            Mode::Authenticated => "authenticated",
        },
        config.size,
        match stamp.tlv_names(config.tos).as_slice() {
            [] => String::new(),
            [one] => format!(
                " with a{} {one} TLV",
                if one.starts_with('E') { "n" } else { "" }
            ),
            [first @ .., last] => format!(" with {} and {last} TLVs", first.join(", ")),
        },
        stamp.ssid
    )
}

/// The DSCP line of a summary, when it has something to say: the probes
/// were marked (`--tos`), or some reply came back with another DSCP.
pub(super) fn dscp_line(d: &DscpFigures) -> Option<String> {
    let changed = d.dscp_changed.unwrap_or(0);
    if !d.marked && changed == 0 {
        return None;
    }
    let sent = format!("DSCP sent {} ({})", d.dscp_sent, dscp_name(d.dscp_sent));
    let (Some(seen), Some(ecn)) = (&d.dscp_seen, &d.ecn_seen) else {
        return Some(format!(
            "{sent}; this system does not report the DSCP the replies came back with"
        ));
    };
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    Some(format!(
        "{sent}; replies arrived with {}; {changed} with another DSCP (dscp_changed); ECN {}",
        list(
            seen.iter()
                .map(|(d, n)| format!("{} ×{n}", dscp_name(*d)))
                .collect()
        ),
        list(
            ecn.iter()
                .map(|(e, n)| format!("{} ×{n}", ecn_name(*e)))
                .collect()
        ),
    ))
}

/// A hint when the target answered, but nothing it sent back was a STAMP
/// reflection (every reply foreign, none received): an echo service sends
/// the test packets back unchanged.
pub fn not_reflections(s: &StampSummary) -> Option<&'static str> {
    (s.run.counts.received == 0 && s.run.counts.foreign > 0)
        .then_some("replies are not STAMP reflections: the target may be an echo service (drop --stamp to measure it)")
}

/// The human summary of a STAMP run: the echo run's block, then one-way
/// delays (with their clock caveat), loss by direction and, with `--tos`,
/// where the DSCP was re-marked.
pub fn stamp_summary(s: &StampSummary) -> String {
    let mode = s.run.mode;
    let mut out =
        summary(&s.run).replacen(&format!(" udp echo {mode} "), &format!(" STAMP {mode} "), 1);
    if let Some(hint) = not_reflections(s) {
        let _ = writeln!(out, "{hint}");
    }
    if s.owd_invalid > 0 {
        let _ = writeln!(
            out,
            "one-way delays: invalid, impossible reflector time stamps in {} (sent before received, held longer than the round trip, or a day or more from this clock): none are shown",
            crate::client::report::count(s.owd_invalid, "reply", "replies")
        );
    }
    for (name, owd) in [
        ("forward", &s.owd_forward_us),
        ("reverse", &s.owd_reverse_us),
    ] {
        if let Some(owd) = owd.filter(|o| o.samples > 0) {
            let _ = writeln!(
                out,
                "one-way {name} min/p50/p99/max = {}/{}/{}/{} ms",
                ms(owd.min),
                ms(owd.p50),
                ms(owd.p99),
                ms(owd.max)
            );
        }
    }
    let claims = |synced: bool| {
        if synced {
            "claims a synchronised clock"
        } else {
            "does not claim a synchronised clock"
        }
    };
    let _ = writeln!(
        out,
        "one-way delays need synchronised clocks: the reflector {} (S bit {}{}), this sender {} (S bit {}, error {} ms, from the kernel)",
        claims(s.reflector_clock_synchronized),
        u8::from(s.reflector_clock_synchronized),
        s.reflector_clock_error_us
            .map_or(String::new(), |us| format!(", error {} ms", ms(us as f64))),
        claims(s.sender_clock_synchronized),
        u8::from(s.sender_clock_synchronized),
        ms(s.sender_clock_error_us as f64),
    );
    match (s.lost_forward, s.lost_reverse, s.lost_unattributed) {
        (Some(f), Some(r), Some(u)) => {
            let _ = writeln!(
                out,
                "loss by direction: {f} forward, {r} reverse{} ({})",
                if u > 0 {
                    format!(", {u} after the last reply (direction unknown)")
                } else {
                    String::new()
                },
                if s.reflector_stateful {
                    "stateful reflector"
                } else {
                    "nothing lost"
                }
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "loss by direction: unknown, the reflector's sequence numbers follow ours (stateless; a stateful reflector tells forward from reverse)"
            );
        }
    }
    if let Some(f) = &s.follow_up {
        let _ = writeln!(out, "{}", follow_up_line(f));
    }
    if let Some(t) = &s.stamp_tlvs {
        tlv_lines(&mut out, t);
    }
    if s.run.dscp.marked {
        let _ = match (s.dscp_forward_changed, s.dscp_reverse_changed) {
            (Some(f), reverse) => writeln!(
                out,
                "DSCP by direction (Class of Service TLV): {f} re-marked on the way out, {}",
                reverse.map_or(
                    "the way back unknown (no TOS of the replies here)".to_owned(),
                    |r| { format!("{r} on the way back") }
                )
            ),
            (None, _) => writeln!(
                out,
                "DSCP by direction: unknown, the reflector does not fill in the Class of Service TLV (RFC 8972 §4.4)"
            ),
        };
        if let (Some(f), Some(seen)) = (s.ecn_forward_changed, &s.ecn_forward_seen) {
            let arrived: Vec<String> = seen
                .iter()
                .map(|(ecn, n)| format!("{} ×{n}", crate::net::dscp::ecn_name(*ecn)))
                .collect();
            let _ = writeln!(
                out,
                "ECN by direction (Class of Service TLV): {f} changed on the way out, {} (arrived {}{})",
                s.ecn_reverse_changed.map_or(
                    "the way back unknown (no RPE from the reflector, or no TOS here)".to_owned(),
                    |r| format!("{r} on the way back")
                ),
                arrived.join(", "),
                match s.ecn_refused {
                    Some(n) if n > 0 => format!("; EC1 refused by the reflector ×{n}"),
                    _ => String::new(),
                }
            );
        }
    }
    out
}

/// The follow-up line of a STAMP summary (`--stamp-follow-up`): the
/// reflector's residence times and the reverse delays without them, or why
/// there are none.
fn follow_up_line(f: &FollowUpSummary) -> String {
    let counts = format!(
        "{} matched, {} without a time, {} unmatched, {} not filled in, {} invalid",
        f.matched, f.unavailable, f.unmatched, f.unsupported, f.invalid
    );
    if f.matched == 0 {
        return format!(
            "follow-up (RFC 8972 §4.7): no transmit times ({counts}; a stateful reflector with kernel transmit stamps fills them in)"
        );
    }
    let (r, o) = (&f.residence_us, &f.owd_reverse_us);
    format!(
        "follow-up (RFC 8972 §4.7): reflector residence p50/max = {}/{} ms; one-way reverse without it p50/max = {}/{} ms ({counts})",
        ms(r.p50),
        ms(r.max),
        ms(o.p50),
        ms(o.max)
    )
}

/// The `--stamp-tlv` lines: what the reflector answered, flagged ones
/// counted (a reflector may not process a TLV: U is its answer, not an
/// error).
fn tlv_lines(out: &mut String, t: &crate::client::stamp::TlvSummary) {
    if let Some(d) = &t.direct_measurement {
        let _ = match (
            d.sent,
            d.reflector_received,
            d.reflector_sent,
            d.lost_forward,
        ) {
            (Some(sent), Some(rx), Some(tx), Some(lost)) => writeln!(
                out,
                "Direct Measurement (RFC 8972 §4.5): at our packet {sent} the reflector had received {rx} and sent {tx} before it ({lost} lost on the way out by its count); {} filled in, {} flagged",
                d.filled, d.flagged
            ),
            _ => writeln!(
                out,
                "Direct Measurement (RFC 8972 §4.5): not filled in by the reflector ({} flagged: a stateless reflector keeps no counters)",
                d.flagged
            ),
        };
    }
    if let Some(l) = &t.location {
        let _ = match (&l.source, &l.destination) {
            (Some(src), Some(dst)) => writeln!(
                out,
                "Location (RFC 8972 §4.2): the reflector saw our packets from {src} to {dst}; {} filled in, {} flagged",
                l.filled, l.flagged
            ),
            _ => writeln!(
                out,
                "Location (RFC 8972 §4.2): not filled in by the reflector ({} flagged)",
                l.flagged
            ),
        };
    }
    if let Some(a) = &t.access_report {
        let _ = writeln!(
            out,
            "Access Report (RFC 8972 §4.6): {} acknowledged, {} flagged",
            a.acknowledged, a.flagged
        );
    }
    if let Some(d) = &t.destination_node_address {
        let _ = writeln!(
            out,
            "Destination Node Address (RFC 9503 §3): {} recognised, {} flagged U (not the reflector's address), {} M, {} other",
            d.recognised, d.unrecognised, d.malformed, d.other
        );
    }
    if let Some(r) = &t.return_path {
        let a = &r.answers;
        let _ = writeln!(
            out,
            "Return Path (RFC 9503 §4) to {}: {} honoured, {} flagged U (not honoured: replied to the source), {} M, {} other",
            r.address, a.recognised, a.unrecognised, a.malformed, a.other
        );
    }
}
