//! TLVs end to end (RFC 8972): stamp-suite's sender's Class of Service,
//! Timestamp Information, Extra Padding and HMAC TLVs against our reflector;
//! our sender's padding and signed TLVs; `--tlv-mode ignore`.

use super::*;

/// Issue 24's bug: stamp-suite's sender, with a Class of Service TLV (EF),
/// Timestamp Information and Extra Padding, against our reflector through a
/// relay that records the exchange. RFC 8972 §4: a sender sends every TLV
/// with U = 1 and a reflector MUST set U to 0 on each TLV it understood; our
/// reflector used to leave the sender's U, so stamp-suite counted the
/// filled-in CoS TLV as unrecognized. Now stamp-suite recognizes all three,
/// and the bytes say DSCP1 = DSCP2 = 46, RP 0, the reply sent EF, the
/// Timestamp Information sync source local (5) and method software (2) both
/// ways, the padding returned as it came.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn stamp_suites_sender_gets_its_class_of_service_timestamp_and_padding_tlvs_recognized() {
    use udp_echo::stamp::packet::{
        ClassOfService, TLV_CLASS_OF_SERVICE, TLV_EXTRA_PADDING, TLV_TIMESTAMP_INFO, find_tlv,
    };
    let Some(suite) = stamp_suite("stamp-suite sender with TLVs → our reflector") else {
        return;
    };
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let (proxy, relay) = recording_proxy(server.addr.port(), |_| {});
    let port = proxy.to_string();
    let run = suite_sender(
        &suite,
        &port,
        ("3", "20"),
        &[
            "--cos",
            "--dscp",
            "46",
            "--timestamp-info",
            "--extra-padding",
            "30",
            "--output-format",
            "json",
        ],
    );
    let seen = relay.join().unwrap();
    let summary = suite_summary(&run);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(summary["packets_received"], 3, "{summary}");
    for kind in [TLV_EXTRA_PADDING, TLV_TIMESTAMP_INFO, TLV_CLASS_OF_SERVICE] {
        assert_eq!(
            suite_tlv_flags(&summary, kind),
            (3, 0, 0, 0),
            "type {kind}: {summary}"
        );
    }
    assert_eq!(seen.len(), 3);
    for ex in &seen {
        assert_eq!(
            ex.reply.len(),
            ex.request.len(),
            "a reply takes its request's place"
        );
        let (request, reply) = (&ex.request[44..], &ex.reply[44..]);
        let (at, value) = find_tlv(reply, TLV_CLASS_OF_SERVICE).expect("CoS TLV");
        assert_eq!(reply[at], 0, "U, M, I clear");
        let cos = ClassOfService::from_value(value.try_into().unwrap());
        assert_eq!((cos.dscp1, cos.dscp2, cos.ecn, cos.rp), (46, 46, 0, 0));
        assert_eq!(ex.reply_tos.map(|t| t >> 2), Some(46), "the reply goes EF");
        let (at, value) = find_tlv(reply, TLV_TIMESTAMP_INFO).expect("Timestamp Information");
        assert_eq!((reply[at], value), (0, &[5, 2, 5, 2][..]));
        let (at, value) = find_tlv(reply, TLV_EXTRA_PADDING).expect("Extra Padding");
        let (_, sent) = find_tlv(request, TLV_EXTRA_PADDING).unwrap();
        assert_eq!((reply[at], value.len(), value), (0, 30, sent));
    }
}

/// Authenticated mode with HMAC TLVs both ways: stamp-suite's sender signs
/// its TLVs (`--tlv-hmac on`) and checks ours (`--verify-tlv-hmac`). Our
/// reflector verifies the sender's HMAC TLV and signs its reply's; with a
/// relay that flips one bit of the CoS TLV on the way (a middlebox rewriting
/// it, which the base packet's HMAC does not cover), every TLV comes back
/// flagged I and nothing in them is used.
#[test]
fn hmac_tlvs_are_verified_and_signed_both_ways_against_stamp_suites_sender() {
    let Some(suite) = stamp_suite("stamp-suite sender with HMAC TLV → our reflector") else {
        return;
    };
    let key = KeyFile::new("tlv-hmac");
    for flip in [false, true] {
        let server = start_server(&[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "--stamp-key",
            key.path(),
        ]);
        let (proxy, relay) = recording_proxy(server.addr.port(), move |request| {
            if flip && request.len() > 118 {
                request[117] ^= 0x04; // the CoS TLV's DSCP2 field (112 + 4 + 1)
            }
        });
        let port = proxy.to_string();
        let run = suite_sender(
            &suite,
            &port,
            ("3", "20"),
            &[
                "-A",
                "A",
                "--hmac-key-file",
                key.path(),
                "--cos",
                "--dscp",
                "10",
                "--tlv-hmac",
                "on",
                "--verify-tlv-hmac",
                "--output-format",
                "json",
            ],
        );
        let seen = relay.join().unwrap();
        let summary = suite_summary(&run);
        let hmac = &summary["measurements"]["tlv_validation"]["hmac"];
        assert_eq!(
            summary["packets_received"], 3,
            "flip {flip}: {summary}\n{}",
            run.stderr
        );
        assert_eq!(seen.len(), 3);
        for ex in &seen {
            assert_eq!(ex.reply.len(), ex.request.len());
        }
        if flip {
            assert_eq!(
                suite_tlv_flags(&summary, 4).3,
                3,
                "I on the CoS TLV: {summary}"
            );
            assert_eq!(
                suite_tlv_flags(&summary, 8).3,
                3,
                "I on the HMAC TLV: {summary}"
            );
        } else {
            assert_eq!(hmac["verified"], 3, "{summary}");
            assert_eq!(hmac["failed"], 0, "{summary}");
            assert_eq!(suite_tlv_flags(&summary, 4), (3, 0, 0, 0), "{summary}");
        }
    }
}

/// Our sender with `--size` (an Extra Padding TLV) and `--tos` (a Class of
/// Service TLV), open and authenticated (then with an HMAC TLV), against our
/// reflector and stamp-suite's (verifying our HMAC TLV). Every reply comes
/// back whole and as long as its request, and with `--tos` the CoS TLV is
/// used (`dscp_forward_changed` 0, not `null`): the reflector understood it
/// (U cleared) and, authenticated, both HMAC TLVs passed — the reflector's
/// check of ours (it would flag I) and ours of its reply.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn our_sender_pads_and_signs_its_tlvs_against_our_reflector_and_stamp_suites() {
    let key = KeyFile::new("pad-sign");
    let suite = stamp_suite("our sender with TLVs → stamp-suite reflector");
    for auth in [false, true] {
        let mut server_args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
        if auth {
            server_args.extend(["--stamp-key", key.path()]);
        }
        let ours = start_server(&server_args);
        let theirs = suite.as_ref().map(|suite| {
            let extra: &[&str] = if auth {
                &[
                    "-A",
                    "A",
                    "--hmac-key-file",
                    key.path(),
                    "--verify-tlv-hmac",
                ]
            } else {
                &[]
            };
            SuiteReflector::start(suite, extra)
        });
        let mut ports = vec![("ours", ours.addr.port())];
        ports.extend(theirs.as_ref().map(|r| ("stamp-suite", r.port)));
        for (name, port) in ports {
            let port = port.to_string();
            for extra in [
                &["--size", "200"][..],
                &["--tos", "EF"],
                &["--tos", "EF", "--size", "300"],
            ] {
                let mut args = [
                    &[
                        "--stamp",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-c",
                        "3",
                        "-i",
                        "0.01",
                        "--json",
                    ][..],
                    extra,
                ]
                .concat();
                if auth {
                    args.extend(["--stamp-key", key.path()]);
                }
                let size = match extra {
                    [.., "--size", n] => n.parse().unwrap(),
                    _ if auth => 140,
                    _ => 52,
                };
                let json = all_answered(&run_client(&args, None), 3, size);
                let case = format!("{name}, auth {auth}, {extra:?}");
                assert_eq!(json["corrupt"], 0, "{case}: {json}");
                if extra.contains(&"--tos") {
                    assert_eq!(json["dscp_forward_changed"], 0, "{case}: {json}");
                    assert_eq!(json["dscp_reverse_changed"], 0, "{case}: {json}");
                }
            }
        }
    }
}

/// `--tlv-mode ignore`: the reflector copies everything after the base
/// packet back as it came (a reflector without TLV support, for testing
/// senders). stamp-suite's sender sees its TLVs come back with its own U
/// flag, i.e. unrecognized, byte for byte; our sender reports no direction
/// of a re-mark (`null`) rather than one read from an unfilled TLV.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn tlv_mode_ignore_sends_every_tlv_back_as_it_came() {
    let server = start_server(&[
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--tlv-mode",
        "ignore",
    ]);
    let port = server.addr.port().to_string();
    let json = all_answered(
        &run_client(
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "3",
                "-i",
                "0.01",
                "--tos",
                "EF",
                "--size",
                "100",
                "--json",
            ],
            None,
        ),
        3,
        100,
    );
    assert!(json["dscp_forward_changed"].is_null(), "{json}");
    let Some(suite) = stamp_suite("stamp-suite sender → our reflector with --tlv-mode ignore")
    else {
        return;
    };
    let (proxy, relay) = recording_proxy(server.addr.port(), |_| {});
    let proxy = proxy.to_string();
    let run = suite_sender(
        &suite,
        &proxy,
        ("3", "20"),
        &[
            "--cos",
            "--dscp",
            "46",
            "--timestamp-info",
            "--output-format",
            "json",
        ],
    );
    let seen = relay.join().unwrap();
    let report = suite_summary(&run);
    assert_eq!(report["packets_received"], 3, "{report}");
    assert_eq!(suite_tlv_flags(&report, 4), (3, 3, 0, 0), "{report}");
    assert_eq!(suite_tlv_flags(&report, 3), (3, 3, 0, 0), "{report}");
    for ex in &seen {
        assert_eq!(ex.reply[44..], ex.request[44..], "TLVs as they came");
    }
    let line = summary(server);
    assert!(line.contains("echoed 6"), "{line}");
}
