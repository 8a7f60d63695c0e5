//! Our sender against reflectors written in the test (`fake_reflector`): loss
//! split by direction in rate and flood, a damaged copied sequence number, and
//! the Class of Service TLV telling a forward from a reverse re-mark.

use super::*;

/// One request as a fake reflector sees it, and what it makes of the reply.
struct FakeReply {
    /// The sender's sequence number, copied into the reply (a test may
    /// damage the copy).
    sender_seq: u32,
    /// The TOS byte the request arrived with (Linux only).
    #[cfg_attr(any(not(target_os = "linux"), udp_echo_portable), allow(dead_code))]
    arrived_tos: Option<u8>,
    /// The reflector's sequence number (stateless: the sender's).
    seq: u32,
    /// The request's bytes after the base packet (TLVs), sent back as they are.
    tlvs: Vec<u8>,
}

/// A session-reflector in the test, on a free loopback port: for each
/// unauthenticated request, `answer` decides the reply (it may renumber it
/// or rewrite its TLVs) and returns the TOS byte to send it with, or `None`
/// to drop it. It ends 1 s after the last request (or 10 s without any).
fn fake_reflector(
    mut answer: impl FnMut(&mut FakeReply) -> Option<u8> + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let _ = udp_echo::sys::enable_recv_tos(&socket);
    let thread = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let (mut idle, mut got_any) = (0, false);
        loop {
            let Ok((n, from, tos)) = udp_echo::sys::recv_from_tos(&socket, &mut buf) else {
                idle += 1;
                // Something came and then nothing for a second, or nothing at all.
                if got_any || idle >= 10 {
                    return;
                }
                continue;
            };
            (idle, got_any) = (0, true);
            let sender = SenderPacket::decode(Mode::Open, &buf[..n]).unwrap();
            let mut reply = FakeReply {
                sender_seq: sender.seq,
                arrived_tos: tos,
                seq: sender.seq,
                tlvs: buf[n.min(44)..n].to_vec(),
            };
            let Some(reply_tos) = answer(&mut reply) else {
                continue;
            };
            let now = TimeFormat::Ntp.encode(SystemTime::now());
            let mut out = vec![0u8; 44];
            ReflectedPacket {
                seq: reply.seq,
                timestamp: now,
                error_estimate: TimeFormat::Ntp.error_estimate(),
                ssid: sender.ssid,
                receive_timestamp: now,
                sender_seq: reply.sender_seq,
                sender_timestamp: sender.timestamp,
                sender_error_estimate: sender.error_estimate,
                sender_ttl: 255,
            }
            .encode(Mode::Open, &mut out);
            out.extend_from_slice(&reply.tlvs);
            udp_echo::sys::send_to_tos(&socket, &out, from, reply_tos).unwrap();
        }
    });
    (port, thread)
}

/// A stateful reflector that never sees packet 2 (it does not count it) and
/// whose reply to packet 4 is lost on the way back (counted, not sent).
fn losing_one_each_way() -> impl FnMut(&mut FakeReply) -> Option<u8> + Send + 'static {
    let mut next = 0u32;
    move |reply| {
        if reply.sender_seq == 2 {
            return None;
        }
        reply.seq = next;
        next += 1;
        (reply.sender_seq != 4).then_some(0)
    }
}

#[test]
fn against_a_stateful_reflector_rate_and_flood_split_the_loss_by_direction() {
    for mode in [
        &["-r", "400", "-D", "0.5"][..],
        &["-f", "-w", "4", "-D", "0.3"][..],
    ] {
        let (port, reflector) = fake_reflector(losing_one_each_way());
        let args = [
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "0.3",
                "--json",
            ][..],
            mode,
        ]
        .concat();
        let run = run_client(&args, None);
        reflector.join().unwrap();
        let json = json_of(&run);
        assert_eq!(json["lost"], 2, "{mode:?}: {json}");
        assert_eq!(json["reflector_stateful"], true, "{json}");
        assert_eq!(json["lost_forward"], 1, "{mode:?}: {json}");
        assert_eq!(json["lost_reverse"], 1, "{mode:?}: {json}");
        assert_eq!(json["lost_unattributed"], 0, "{mode:?}: {json}");
    }
}

/// Our reflector does not fill in the Class of Service TLV yet (it flags it
/// U): the sender says it cannot tell the direction, instead of guessing.
#[test]
fn a_reflector_that_flags_the_class_of_service_tlv_gets_no_direction_split() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let args = [
        "--stamp",
        "-H",
        "127.0.0.1",
        "-p",
        &port,
        "-c",
        "3",
        "-i",
        "0.01",
    ];
    let json = json_of(&run_client(
        &[&args[..], &["--tos", "EF", "--json"]].concat(),
        None,
    ));
    assert_eq!(
        (json["received"].as_u64(), json["size"].as_u64()),
        (Some(3), Some(52)),
        "{json}"
    );
    if json["dscp_forward_changed"].is_null() {
        assert!(json["dscp_reverse_changed"].is_null(), "{json}");
    } else {
        // The reflector has learnt the TLV: then it re-marks nothing here.
        assert_eq!(json["dscp_forward_changed"], 0, "{json}");
    }
}

/// A reflector that flips the lowest bit of the copied sender sequence
/// number in its reply to packet 3 (so it claims packet 2, already
/// answered): the copied time stamp names packet 3, whose reply is corrupt —
/// not a duplicate of packet 2 with packet 3 lost.
#[test]
fn a_flipped_bit_in_the_copied_sender_sequence_number_is_corrupt_not_a_duplicate() {
    let (port, reflector) = fake_reflector(|reply| {
        if reply.sender_seq == 3 {
            reply.sender_seq ^= 1;
        }
        Some(0)
    });
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "6",
            "-i",
            "0.02",
            "-t",
            "0.5",
            "--json",
        ],
        None,
    );
    reflector.join().unwrap();
    let json = json_of(&run);
    assert_eq!(json["sent"], 6, "{json}");
    assert_eq!(json["received"], 6, "{json}");
    assert_eq!(json["corrupt"], 1, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
}

/// A reflector that returns the request's TLV bytes unchanged (DSCP2 left
/// at 0) has not filled the Class of Service TLV in: no re-mark either way
/// is reported, the direction figures are `null`.
#[test]
fn a_class_of_service_tlv_copied_back_unprocessed_is_no_re_mark() {
    let (port, reflector) = fake_reflector(|_| Some(46 << 2));
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "--tos",
            "EF",
            "-c",
            "3",
            "-i",
            "0.01",
            "--json",
        ],
        None,
    );
    reflector.join().unwrap();
    let json = json_of(&run);
    assert_eq!(json["received"], 3, "{json}");
    assert!(json["dscp_forward_changed"].is_null(), "{json}");
    assert!(json["dscp_reverse_changed"].is_null(), "{json}");
}

/// A CoS-aware reflector in the test that re-marks on purpose: odd packets
/// it claims arrived as CS1 (a forward re-mark) and answers with DSCP1 as
/// asked; even ones arrived as sent, but it answers them CS1 while saying
/// DSCP1 (a reverse re-mark). The sender must tell the two apart.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn the_class_of_service_tlv_tells_a_forward_from_a_reverse_re_mark() {
    use udp_echo::stamp::packet::{ClassOfService, TLV_CLASS_OF_SERVICE, find_tlv};
    let remark = |reply: &mut FakeReply| {
        let (at, value) = find_tlv(&reply.tlvs, TLV_CLASS_OF_SERVICE).expect("a CoS TLV");
        let asked = ClassOfService::from_value(value.try_into().unwrap());
        let arrived = reply.arrived_tos.expect("the request's TOS") >> 2;
        let forward = reply.sender_seq % 2 == 1;
        let cos = ClassOfService {
            dscp1: asked.dscp1,
            dscp2: if forward { 8 } else { arrived },
            ecn: 0,
            rp: 0,
            ..ClassOfService::default()
        };
        reply.tlvs[at..at + 8].copy_from_slice(&cos.tlv());
        // A reflector clears the sender's U flag on a TLV it understood (RFC 8972 §4).
        reply.tlvs[at] = 0;
        Some(if forward { asked.dscp1 << 2 } else { 8 << 2 })
    };
    for mode in [
        &["-c", "6", "-i", "0.01"][..],
        &["-r", "200", "-D", "0.5"][..],
    ] {
        let (port, reflector) = fake_reflector(remark);
        let args = [
            &[
                "--stamp",
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "--tos",
                "EF",
                "--json",
            ][..],
            mode,
        ]
        .concat();
        let run = run_client(&args, None);
        reflector.join().unwrap();
        let json = json_of(&run);
        let received = json["received"].as_u64().unwrap();
        assert_eq!(json["lost"], 0, "{json}");
        assert!(received >= 6, "{json}");
        let odd = received / 2; // packets 1, 3, 5, ... of 0 ..= received - 1
        assert_eq!(json["dscp_forward_changed"], odd, "{mode:?}: {json}");
        assert_eq!(
            json["dscp_reverse_changed"],
            received - odd,
            "{mode:?}: {json}"
        );
        assert_eq!(json["dscp_changed"], received - odd, "{mode:?}: {json}");
        assert_eq!(json["dscp_sent"], 46, "{json}");
    }
}
