//! The Direct Measurement TLV (RFC 8972 §4.5) against stamp-suite's sender
//! (`--direct-measurement`): a stateful reflector fills in its counts of
//! the session, which stamp-suite reads as no loss either way; a stateless
//! one has no session to count and flags the TLV U.

use crate::common;
use crate::stamp::{stamp_suite, suite_summary, suite_tlv_flags};

use common::*;
use udp_echo::stamp::packet::TLV_DIRECT_MEASUREMENT;

#[test]
fn stamp_suites_sender_reads_our_session_counters_from_a_stateful_reflector() {
    let Some(suite) = stamp_suite("stamp-suite sender with Direct Measurement → our reflector")
    else {
        return;
    };
    for stateful in [true, false] {
        let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        if stateful {
            args.push("--stamp-stateful");
        }
        let server = start_server(&args);
        let port = server.addr.port().to_string();
        let run = crate::stamp::suite_sender(
            &suite,
            &port,
            ("5", "20"),
            &["--direct-measurement", "--output-format", "json"],
        );
        let summary = suite_summary(&run);
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        assert_eq!(summary["packets_received"], 5, "{summary}");
        let flags = suite_tlv_flags(&summary, TLV_DIRECT_MEASUREMENT);
        let dm = &summary["measurements"]["direct_measurement"];
        if stateful {
            assert_eq!(flags, (5, 0, 0, 0), "recognized: {summary}");
            let latest = &dm["latest_transmit"];
            assert_eq!(
                (
                    &latest["sender_tx"],
                    &latest["reflector_rx"],
                    &latest["reflector_tx"]
                ),
                (&5.into(), &5.into(), &4.into()),
                "{dm}"
            );
            assert_eq!(
                (&dm["forward_missing"], &dm["reverse_missing"]),
                (&0.into(), &0.into()),
                "{dm}"
            );
        } else {
            assert_eq!(
                flags,
                (5, 5, 0, 0),
                "unrecognized without sessions: {summary}"
            );
        }
    }
}
