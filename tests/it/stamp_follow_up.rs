//! The Follow-Up Telemetry TLV (RFC 8972 §4.7): a stateful reflector
//! reports in each reply the kernel transmit time of the session's previous
//! reply. Our sender (`--stamp-follow-up`) turns it into the reflector's
//! residence times, in every server loop; stamp-suite's sender
//! (`--follow-up-telemetry`) reads ours as recognised and matched; our
//! sender takes whatever stamp-suite's reflector says. Judged by counts and
//! by invariants (a residence time within its own round trip), never by
//! how long anything took.

use crate::common;
use crate::stamp::{SuiteReflector, stamp_suite, suite_summary, suite_tlv_flags};

use common::*;
use udp_echo::stamp::followup::TLV_FOLLOW_UP;

const PROBES: u64 = 12;

fn ping_with_follow_up(port: &str) -> serde_json::Value {
    ping_with_follow_up_and(port, &[])
}

fn ping_with_follow_up_and(port: &str, extra: &[&str]) -> serde_json::Value {
    let count = PROBES.to_string();
    let run = run_client(
        &[
            &[
                "--stamp",
                "--stamp-follow-up",
                "-H",
                "127.0.0.1",
                "-p",
                port,
                "-c",
                &count,
                "-i",
                "0.01",
                "--json",
            ][..],
            extra,
        ]
        .concat(),
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    json_of(&run)
}

#[test]
fn every_reply_after_the_first_carries_the_previous_replys_kernel_transmit_time() {
    let key = crate::stamp::KeyFile::new("follow-up-ours");
    let authenticated = ["--stamp-key", key.path()];
    // The plain, batched and GRO loops each book their sends their own way;
    // authenticated, the reflector signs the TLVs after filling them in.
    for (loop_args, auth) in [
        (&["--batch", "1"][..], &[][..]),
        (&["--no-gro"][..], &[][..]),
        (&[][..], &[][..]),
        (&[][..], &authenticated[..]),
    ] {
        let mut args = vec!["--stamp", "--stamp-stateful", "-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(loop_args);
        args.extend_from_slice(auth);
        let server = start_server(&args);
        let json = ping_with_follow_up_and(&server.addr.port().to_string(), auth);
        assert_eq!(json["corrupt"], 0, "{json}");
        assert_eq!(json["received"], PROBES, "{json}");
        let f = &json["follow_up"];
        // The first reply has no previous one; every later one names the
        // reply before it, whose time lies within its own round trip.
        assert_eq!(f["unavailable"], 1, "{loop_args:?}: {f}");
        assert_eq!(f["matched"], PROBES - 1, "{loop_args:?}: {f}");
        assert_eq!(
            (&f["unmatched"], &f["unsupported"], &f["invalid"]),
            (&0.into(), &0.into(), &0.into()),
            "{loop_args:?}: {f}"
        );
        let residence = &f["residence_us"];
        assert_eq!(residence["samples"], PROBES - 1, "{f}");
        assert!(residence["min"].as_f64().unwrap() >= 0.0, "{f}");
        let rtt_max_us = json["rtt_us"]["max"].as_f64().unwrap();
        assert!(
            residence["max"].as_f64().unwrap() <= rtt_max_us,
            "{f} vs rtt {}",
            json["rtt_us"]
        );
    }
}

#[test]
fn a_stateless_reflector_or_threads_sharing_a_socket_report_no_times() {
    for args in [
        &["--stamp", "-H", "127.0.0.1", "-p", "0"][..],
        // Two loops on one socket share its transmit-stamp numbering: none.
        &[
            "--stamp",
            "--stamp-stateful",
            "--exclusive",
            "--threads",
            "2",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
        ][..],
    ] {
        let server = start_server(args);
        let json = ping_with_follow_up(&server.addr.port().to_string());
        let f = &json["follow_up"];
        assert_eq!(f["matched"], 0, "{args:?}: {f}");
        assert_eq!(f["unsupported"], 0, "understood all the same: {f}");
        assert_eq!(
            f["unavailable"].as_u64().unwrap() + f["unmatched"].as_u64().unwrap(),
            PROBES,
            "{f}"
        );
    }
}

#[test]
fn stamp_suites_sender_matches_our_follow_ups_open_and_authenticated() {
    let Some(suite) = stamp_suite("stamp-suite sender with Follow-Up Telemetry → our reflector")
    else {
        return;
    };
    let key = crate::stamp::KeyFile::new("follow-up");
    for auth in [false, true] {
        let mut args = vec!["--stamp", "--stamp-stateful", "-H", "127.0.0.1", "-p", "0"];
        let mut extra = vec!["--follow-up-telemetry", "--output-format", "json"];
        if auth {
            args.extend(["--stamp-key", key.path()]);
            // Its HMAC TLV over the follow-up TLV, and ours over the one we
            // filled in, checked.
            extra.extend([
                "-A",
                "A",
                "--hmac-key-file",
                key.path(),
                "--tlv-hmac",
                "on",
                "--verify-tlv-hmac",
            ]);
        }
        let server = start_server(&args);
        let port = server.addr.port().to_string();
        let run = crate::stamp::suite_sender(&suite, &port, ("6", "20"), &extra);
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
        let summary = suite_summary(&run);
        assert_eq!(
            suite_tlv_flags(&summary, TLV_FOLLOW_UP),
            (6, 0, 0, 0),
            "auth {auth}: recognised, well formed: {summary}"
        );
        if auth {
            let hmac = &summary["measurements"]["tlv_validation"]["hmac"];
            assert_eq!(hmac["verified"], 6, "{hmac}");
        }
        let f = &summary["measurements"]["follow_up"];
        assert_eq!(
            (&f["matched"], &f["unavailable"]),
            (&5.into(), &1.into()),
            "auth {auth}: {f}"
        );
        assert_eq!(f["reverse_delay"]["samples"], 5, "{f}");
    }
}

#[test]
fn our_sender_takes_whatever_stamp_suites_reflector_follows_up_with() {
    let Some(suite) = stamp_suite("our sender with Follow-Up Telemetry → stamp-suite reflector")
    else {
        return;
    };
    for extra in [&[][..], &["--stateful-reflector"][..]] {
        let reflector = SuiteReflector::start(&suite, extra);
        let json = ping_with_follow_up(&reflector.port.to_string());
        assert_eq!(json["received"], PROBES, "{json}");
        let f = &json["follow_up"];
        let counted: u64 = [
            "matched",
            "unmatched",
            "unavailable",
            "unsupported",
            "invalid",
        ]
        .iter()
        .map(|k| f[k].as_u64().unwrap())
        .sum();
        assert_eq!(counted, PROBES, "every reply accounted for: {f}");
    }
}
