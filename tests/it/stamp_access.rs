//! The Access Report TLV (RFC 8972 §4.6) against stamp-suite's sender
//! (`--access-report`): our reflector returns it as it came with U clear,
//! which the sender takes as the acknowledgement that disarms its
//! retransmission timer.

use crate::common;
use crate::stamp::{stamp_suite, suite_summary, suite_tlv_flags};

use common::*;
use udp_echo::stamp::access::TLV_ACCESS_REPORT;

#[test]
fn stamp_suites_access_report_is_acknowledged() {
    let Some(suite) = stamp_suite("stamp-suite sender with Access Report → our reflector") else {
        return;
    };
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let run = crate::stamp::suite_sender(
        &suite,
        &port,
        ("3", "20"),
        &[
            "--access-report",
            "2",
            "--access-return-code",
            "1",
            "--output-format",
            "json",
        ],
    );
    let summary = suite_summary(&run);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(summary["packets_received"], 3, "{summary}");
    let (observed, unrecognized, malformed, integrity) =
        suite_tlv_flags(&summary, TLV_ACCESS_REPORT);
    assert!(observed >= 1, "{summary}");
    assert_eq!((unrecognized, malformed, integrity), (0, 0, 0), "{summary}");
}
