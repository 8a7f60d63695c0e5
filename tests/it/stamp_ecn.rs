//! draft-ietf-ippm-stamp-cos-ecn's EC1 and RPE fields of the Class of
//! Service TLV, end to end in every loop: the reflector reports the ECN the
//! request arrived with (RFC 8972's ECN field), and sends the reply Not-ECT
//! by default (RPE 0b11 when EC1 asked for Not-ECT, 0b10 otherwise) or, with
//! `--stamp-ecn ec1`, with EC1 (RPE 0b11) — the reply's TOS byte read here.
//! Our sender reports the ECN each way. Linux (IP_RECVTOS).

#![cfg(all(target_os = "linux", not(udp_echo_portable)))]

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use udp_echo::stamp::Mode;
use udp_echo::stamp::packet::{ClassOfService, RPE_SET, RPE_UNABLE};
use udp_echo::sys::{enable_recv_tos, recv_from_tos};

/// Sends a STAMP request with a Class of Service TLV asking DSCP EF and
/// ECN `ec1`, itself marked EF with ECN `ecn`; returns the reply's TLV and
/// TOS byte.
fn ask(server: SocketAddr, ecn: u8, ec1: u8, seq: u32) -> (ClassOfService, Option<u8>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&socket)
        .set_tos_v4(u32::from(0xb8 | ecn))
        .unwrap();
    enable_recv_tos(&socket).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut request = stamp_request(Mode::Open, seq, 44, None, 5);
    request.extend_from_slice(
        &ClassOfService {
            dscp1: 46,
            ec1,
            ..ClassOfService::default()
        }
        .tlv(),
    );
    socket.send_to(&request, server).unwrap();
    let mut buf = [0u8; 256];
    let (n, _, tos) = recv_from_tos(&socket, &mut buf).expect("a reply");
    assert_eq!(n, request.len(), "a reply as long as its request");
    assert_eq!(buf[44..48], [0, 4, 0, 4], "the TLV understood, no flag");
    let value: [u8; 4] = buf[48..52].try_into().unwrap();
    (ClassOfService::from_value(value), tos)
}

#[test]
fn the_reflector_reports_the_arrival_ecn_and_answers_ec1_by_its_policy() {
    for loop_args in [&["--batch", "1"][..], &[][..], &["--no-gro"][..]] {
        for (policy, ec1_honoured) in [(None, false), (Some("ec1"), true)] {
            let mut args = vec!["--stamp", "-H", "127.0.0.1", "-p", "0"];
            args.extend_from_slice(loop_args);
            if let Some(p) = policy {
                args.extend_from_slice(&["--stamp-ecn", p]);
            }
            let server = start_server(&args);
            let case = format!("{args:?}");
            // Arrived ECT(1); EC1 asks for each codepoint in turn.
            for (seq, ec1) in (0..4u8).enumerate() {
                let (cos, tos) = ask(server.addr, 1, ec1, seq as u32);
                assert_eq!((cos.dscp1, cos.dscp2, cos.ecn), (46, 46, 1), "{case}");
                assert_eq!(cos.ec1, ec1, "{case}: EC1 kept");
                let (rpe, ecn) = if ec1_honoured || ec1 == 0 {
                    (RPE_SET, ec1)
                } else {
                    (RPE_UNABLE, 0)
                };
                assert_eq!(cos.rpe, rpe, "{case}: EC1 {ec1}");
                assert_eq!(tos, Some(0xb8 | ecn), "{case}: EC1 {ec1}");
            }
        }
    }
}

#[test]
fn the_sender_reports_ecn_each_way() {
    for policy in ["not-ect", "ec1"] {
        let server = start_server(&[
            "--stamp",
            "--stamp-ecn",
            policy,
            "-H",
            "127.0.0.1",
            "-p",
            "0",
        ]);
        let port = server.addr.port().to_string();
        let run = run_client(
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "4",
                "-i",
                "0.01",
                "--tos",
                "EF",
                "--json",
            ],
            None,
        );
        let json = json_of(&run);
        assert_eq!(json["received"], 4, "{json}");
        assert_eq!(
            json["ecn_forward_seen"],
            serde_json::json!({"0": 4}),
            "{json}"
        );
        assert_eq!(json["ecn_forward_changed"], 0, "{json}");
        assert_eq!(json["ecn_reverse_changed"], 0, "{json}");
        assert_eq!(json["ecn_refused"], 0, "{json}");
        let text = run_client(
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "2",
                "-i",
                "0.01",
                "--tos",
                "EF",
            ],
            None,
        );
        assert!(
            text.stdout_text().contains("ECN by direction (Class of Service TLV): 0 changed on the way out, 0 on the way back"),
            "{}",
            text.stdout_text()
        );
    }
}

/// stamp-suite's reflector reads EC1 and writes RPE where we do: with
/// `--allowed-ecn none` it refuses our EC1 (RPE 0b10), otherwise honours it.
#[test]
fn our_sender_reads_stamp_suites_rpe() {
    let Some(suite) = crate::stamp::stamp_suite("our sender's EC1 → stamp-suite reflector")
    else {
        return;
    };
    for (extra, refused) in [(&[][..], 0), (&["--allowed-ecn", "none"][..], 4)] {
        let reflector = crate::stamp::SuiteReflector::start(&suite, extra);
        let port = reflector.port.to_string();
        let run = run_client(
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "4",
                "-i",
                "0.01",
                "--tos",
                "EF",
                "--json",
            ],
            None,
        );
        let json = json_of(&run);
        assert_eq!(json["received"], 4, "{extra:?}: {json}");
        assert_eq!(json["ecn_refused"], refused, "{extra:?}: {json}");
        assert_eq!(json["ecn_forward_changed"], 0, "{extra:?}: {json}");
        assert_eq!(json["ecn_reverse_changed"], 0, "{extra:?}: {json}");
    }
}
