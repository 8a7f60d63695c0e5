//! The reflector against valid, hostile and odd input: round trips, every
//! truncation and bit flip of a valid packet, wrong keys, TLVs; by area in
//! the submodules (`clock`: time stamps and the S bit; `return_path`: RFC
//! 9503's Control Code; `tlv`: the TLV pass).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::packet::{HMAC_AT, OPEN_LEN, tlv_flags};
use super::time::NTP_UNIX_OFFSET;
use super::*;

mod clock;
mod return_path;
mod tlv;

fn source() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 40000))
}

/// The reflector's TLV context of an unauthenticated request that arrived with `tos`.
fn cx(tos: Option<u8>) -> packet::TlvContext<'static> {
    packet::TlvContext {
        arrived_tos: tos,
        ecn_policy: packet::EcnPolicy::NotEct,
        timestamp_info: packet::TimestampInfo::REFLECTOR,
        key: None,
        seq: [0; 4],
        session: None,
        location: None,
        follow_up: None,
        sent_to: None,
        return_path: None,
    }
}

fn key() -> Key {
    Key::from_bytes(b"0123456789abcdef0123").unwrap()
}

fn config(key: Option<Key>, stateful: bool, format: TimeFormat) -> ReflectorConfig {
    ReflectorConfig {
        key,
        stateful,
        format,
        tlv_mode: super::TlvMode::Process,
        ..ReflectorConfig::default()
    }
}

/// A sender packet of `mode` with sequence `seq`, sent a millisecond ago.
fn request(mode: Mode, seq: u32, ssid: u16, key: Option<&Key>) -> Vec<u8> {
    let mut buf = vec![0u8; mode.base_len()];
    let sent = SystemTime::now() - Duration::from_millis(1);
    SenderPacket {
        seq,
        timestamp: TimeFormat::Ntp.encode(sent),
        error_estimate: TimeFormat::Ntp.error_estimate(),
        ssid,
    }
    .encode(mode, &mut buf);
    if let Some(key) = key {
        key.sign(&mut buf);
    }
    buf
}

fn reflect(r: &mut Reflector, req: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = vec![0u8; req.len().max(AUTH_LEN_FOR_TESTS)];
    let now = SystemTime::now();
    let len = r.reflect(req, source(), now, 0, 255, &mut out)?;
    out.truncate(len);
    Ok(out)
}

const AUTH_LEN_FOR_TESTS: usize = packet::AUTH_LEN;

#[test]
fn a_stateless_reflector_copies_what_rfc_8762_says() {
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        let mut r = Reflector::new(config(key.clone(), false, TimeFormat::Ntp));
        let req = request(mode, 41, 0xbeef, key.as_ref());
        let sender = SenderPacket::decode(mode, &req).unwrap();
        let reply = reflect(&mut r, &req).unwrap();
        assert_eq!(reply.len(), mode.base_len());
        let got = ReflectedPacket::decode(mode, &reply).unwrap();
        assert_eq!(got.seq, 41, "stateless: the sender's sequence number");
        assert_eq!(got.sender_seq, 41);
        assert_eq!(got.ssid, 0xbeef);
        assert_eq!(got.sender_timestamp, sender.timestamp);
        assert_eq!(got.sender_error_estimate, sender.error_estimate);
        assert_eq!(got.sender_ttl, 255);
        let turnaround = TimeFormat::Ntp.diff_ns(got.timestamp, got.receive_timestamp);
        assert!((0..1_000_000_000).contains(&turnaround), "{turnaround}");
        if let Some(key) = &key {
            assert!(key.verify(&reply), "the reply is signed");
        }
    }
}

#[test]
fn a_stateful_reflector_numbers_each_session() {
    let mut r = Reflector::new(config(None, true, TimeFormat::Ptp));
    for (i, seq) in [100u32, 105, 106].into_iter().enumerate() {
        let reply = reflect(&mut r, &request(Mode::Open, seq, 1, None)).unwrap();
        let got = ReflectedPacket::decode(Mode::Open, &reply).unwrap();
        assert_eq!((got.seq, got.sender_seq), (i as u32, seq));
        assert_eq!(got.error_estimate & Z_BIT, Z_BIT, "PTP: Z set");
    }
    let other = reflect(&mut r, &request(Mode::Open, 9, 2, None)).unwrap();
    assert_eq!(ReflectedPacket::decode(Mode::Open, &other).unwrap().seq, 0);
}

#[test]
fn requests_shorter_than_the_base_packet_are_refused_never_amplified() {
    // A 14-byte TWAMP-Light request answered with 44 bytes is 3.14×
    // amplification for a spoofed source: every length under the base
    // packet is refused as short, in both modes.
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        let mut r = Reflector::new(config(key.clone(), false, TimeFormat::Ntp));
        let full = request(mode, 3, 0, key.as_ref());
        for len in 0..mode.base_len() {
            assert_eq!(
                reflect(&mut r, &full[..len]),
                Err(Refusal::Short),
                "{mode:?} {len}"
            );
        }
        let reply = reflect(&mut r, &full).unwrap();
        assert_eq!(reply.len(), full.len());
    }
}

#[test]
fn a_wrong_key_or_no_hmac_is_dropped_as_malformed() {
    let mut r = Reflector::new(config(Some(key()), false, TimeFormat::Ntp));
    let other = Key::from_bytes(b"another key of 16+").unwrap();
    let req = request(Mode::Authenticated, 1, 0, Some(&other));
    assert_eq!(reflect(&mut r, &req), Err(Refusal::Malformed));
    let unsigned = request(Mode::Authenticated, 1, 0, None);
    assert_eq!(reflect(&mut r, &unsigned), Err(Refusal::Malformed));
    let open = request(Mode::Open, 1, 0, None);
    assert_eq!(
        reflect(&mut r, &open),
        Err(Refusal::Short),
        "44 < 112 bytes"
    );
}

#[test]
fn a_reply_sent_back_to_the_reflector_is_not_answered() {
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        let mut r = Reflector::new(config(key.clone(), false, TimeFormat::Ntp));
        let reply = reflect(&mut r, &request(mode, 1, 0, key.as_ref())).unwrap();
        assert_eq!(reflect(&mut r, &reply), Err(Refusal::Reflected), "{mode:?}");
    }
}

/// Every prefix of a valid packet, and the packet with any one bit flipped:
/// answered or refused, never a panic; in authenticated mode, every flip of
/// an authenticated byte is refused.
#[test]
fn every_truncation_and_bit_flip_is_answered_or_refused() {
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        for stateful in [false, true] {
            let mut r = Reflector::new(config(key.clone(), stateful, TimeFormat::Ntp));
            let mut req = request(mode, 77, 5, key.as_ref());
            req.extend_from_slice(&[0, 1, 0, 4, 1, 2, 3, 4]);
            for len in 0..=req.len() {
                let result = reflect(&mut r, &req[..len]);
                assert_eq!(result.is_ok(), len >= mode.base_len(), "{mode:?} len {len}");
            }
            for bit in 0..req.len() * 8 {
                let mut flipped = req.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let result = reflect(&mut r, &flipped);
                if mode == Mode::Authenticated && bit / 8 < HMAC_AT + 16 {
                    assert_eq!(result, Err(Refusal::Malformed), "bit {bit}");
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_reflector(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        authenticated in any::<bool>(),
        stateful in any::<bool>(),
    ) {
        let key = authenticated.then(key);
        let mut r = Reflector::new(config(key, stateful, TimeFormat::Ntp));
        if let Ok(reply) = reflect(&mut r, &data) {
            prop_assert_eq!(reply.len(), data.len(), "never longer than the request");
        }
    }

    /// A well-formed base packet followed by a chain of TLVs of every type
    /// the reflector knows and some it does not, lengths right and wrong,
    /// any flags, signed with an HMAC TLV (authenticated) or not, then one
    /// bit flipped anywhere after the base packet: always answered, the
    /// reply as long as the request; a chain that was signed and survived
    /// unflipped comes back signed by the reflector.
    #[test]
    fn tlv_chains_are_answered_in_place_whatever_their_shape(
        tlvs in proptest::collection::vec(
            (any::<u8>(), prop_oneof![Just(1u8), Just(3), Just(4), Just(8), Just(200)], 0usize..24),
            0..5,
        ),
        authenticated in any::<bool>(),
        signed in any::<bool>(),
        flip in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let key = key();
        let mode = if authenticated { Mode::Authenticated } else { Mode::Open };
        let mut req = request(mode, 5, 1, None);
        let base = req.len();
        for (flags, kind, len) in &tlvs {
            req.extend_from_slice(&[*flags, *kind, 0, *len as u8]);
            req.extend(std::iter::repeat_n(0x5a, *len));
        }
        let hmac_at = (authenticated && signed).then(|| req.len() - base);
        if let Some(at) = hmac_at {
            req.extend_from_slice(&packet::sender_header(packet::TLV_HMAC, 16));
            req.extend_from_slice(&[0; 16]);
            let (head, tail) = req.split_at_mut(base);
            packet::sign_hmac_tlv(tail, at, &head[..4], &key);
        }
        let flipped = flip.filter(|_| req.len() > base).map(|i| {
            let bit = i.index((req.len() - base) * 8);
            req[base + bit / 8] ^= 1 << (bit % 8);
        });
        if authenticated {
            key.sign(&mut req);
        }
        let mut r = Reflector::new(config(authenticated.then(|| key.clone()), false, TimeFormat::Ntp));
        let (reply, _) = reflect_in_place(&mut r, &req, Some(0)).expect("answered");
        prop_assert_eq!(reply.len(), req.len());
        let well_formed = tlvs.iter().all(|&(_, kind, len)| match kind {
            3 => len >= 4,
            4 => len == 4,
            8 => len == 16,
            _ => true,
        });
        if let (Some(at), None, true) = (hmac_at, flipped, well_formed) {
            // No other HMAC TLV before ours: the chain's own type-8 TLVs
            // would be taken for it.
            if !tlvs.iter().any(|&(_, kind, _)| kind == 8) {
                prop_assert_eq!(reply[base + at], 0, "the reply's HMAC TLV, U clear");
                prop_assert!(packet::tlvs_authentic(&reply[base..], &reply[..4], &key));
            }
        }
    }

    #[test]
    fn tlv_walks_never_panic(mut tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let walked = packet::reflect_tlvs(&mut tail, &cx(None)).walked;
        prop_assert!(walked <= tail.len() / 4);
    }
}

fn arrival(tos: Option<u8>) -> Arrival {
    Arrival {
        received: SystemTime::now(),
        tos,
        ttl: Some(61),
        destination: None,
    }
}

/// Reflects `req` in place in a buffer of its reply's length.
fn reflect_in_place(
    r: &mut Reflector,
    req: &[u8],
    tos: Option<u8>,
) -> Result<(Vec<u8>, Reply), Refusal> {
    let mut buf = req.to_vec();
    let reply = r.reflect_in_place(&mut buf, source(), &arrival(tos), SystemTime::now(), 0)?;
    assert_eq!(reply.len, buf.len());
    Ok((buf, reply))
}

#[test]
fn in_place_the_reply_takes_the_requests_place_with_its_ttl() {
    for (mode, key) in [(Mode::Open, None), (Mode::Authenticated, Some(key()))] {
        let mut r = Reflector::new(config(key.clone(), false, TimeFormat::Ntp));
        let mut req = request(mode, 12, 0x77, key.as_ref());
        req.extend_from_slice(&[0, 1, 0, 4, 9, 9, 9, 9]);
        let (reply, meta) = reflect_in_place(&mut r, &req, Some(0xb8)).unwrap();
        assert_eq!(reply.len(), req.len());
        assert_eq!(meta.tos, None, "no CoS TLV: the caller reflects the DSCP");
        let got = ReflectedPacket::decode(mode, &reply).unwrap();
        assert_eq!((got.seq, got.sender_seq, got.ssid), (12, 12, 0x77));
        assert_eq!(got.sender_ttl, 61);
        assert_eq!(&reply[mode.base_len()..], &req[mode.base_len()..]);
        if let Some(key) = &key {
            assert!(key.verify(&reply));
        }
    }
    // A short request: refused, left as it came.
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let req = request(Mode::Open, 5, 0, None);
    let mut buf = req[..20].to_vec();
    let refusal = r.reflect_in_place(&mut buf, source(), &arrival(None), SystemTime::now(), 0);
    assert_eq!(refusal, Err(Refusal::Short));
    assert_eq!(buf, &req[..20]);
}

#[test]
fn a_refused_request_is_left_as_it_came() {
    let mut r = Reflector::new(config(Some(key()), false, TimeFormat::Ntp));
    let wrong = Key::from_bytes(b"another key of 16+").unwrap();
    let mut bad = request(Mode::Authenticated, 1, 0, Some(&wrong));
    bad.extend_from_slice(&[0, 200, 0, 0]);
    let mut buf = bad.clone();
    let refusal = r.reflect_in_place(&mut buf, source(), &arrival(None), SystemTime::now(), 0);
    assert_eq!(refusal, Err(Refusal::Malformed));
    assert_eq!(buf, bad, "nothing overwritten before the HMAC was checked");
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let (reply, _) = reflect_in_place(&mut r, &request(Mode::Open, 1, 0, None), None).unwrap();
    let mut buf = reply.clone();
    let refusal = r.reflect_in_place(&mut buf, source(), &arrival(None), SystemTime::now(), 0);
    assert_eq!(refusal, Err(Refusal::Reflected));
    assert_eq!(buf, reply);
}

/// Two reflectors that write different time formats, or whose clocks
/// disagree by hours, must still refuse each other's replies; and from the
/// STAMP port, where reflectors live, any time stamp in the MBZ fields is a
/// reply (the loop one forged packet from 862 to 862 would start).
#[test]
fn replies_of_reflectors_in_the_other_format_or_hours_off_are_refused() {
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    for writer in [TimeFormat::Ntp, TimeFormat::Ptp] {
        for offset in [0i64, 3 * 3600, -5 * 3600, 23 * 3600] {
            let their_now = if offset >= 0 {
                now + Duration::from_secs(offset as u64)
            } else {
                now - Duration::from_secs(offset.unsigned_abs())
            };
            let mut r = Reflector::new(config(None, false, writer));
            let mut out = vec![0u8; OPEN_LEN];
            let len = r
                .reflect(
                    &request(Mode::Open, 1, 0, None),
                    source(),
                    their_now,
                    0,
                    64,
                    &mut out,
                )
                .unwrap();
            let reply = &out[..len];
            // The reader writes the other format, or the same: it must not matter.
            for port in [40000, 862] {
                assert!(
                    looks_reflected(Mode::Open, reply, port, now_secs),
                    "{writer:?} reply, clock {offset} s off, from port {port}"
                );
            }
        }
    }
    // A reflector two days off answering a sender two days off: neither
    // stamp is ours or near, so not from 862 it is taken for a request (it
    // cannot be a loop through us: our own transmit time is not in it).
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let old = now - Duration::from_secs(2 * 86_400);
    let mut stale = request(Mode::Open, 1, 0, None);
    stale[4..12].copy_from_slice(&TimeFormat::Ntp.encode(old).to_be_bytes());
    let mut out = vec![0u8; OPEN_LEN];
    let len = r.reflect(&stale, source(), old, 0, 64, &mut out).unwrap();
    let reply = out[..len].to_vec();
    assert!(!looks_reflected(Mode::Open, &reply, 40000, now_secs));
    assert!(looks_reflected(Mode::Open, &reply, 862, now_secs));
    // Our own transmit time coming back through a reflector whose clock is
    // two days off, in the other format: refused.
    let mut ours = reply.clone();
    ours[28..36].copy_from_slice(&TimeFormat::Ptp.encode(now).to_be_bytes());
    assert!(looks_reflected(Mode::Open, &ours, 40000, now_secs));
    // A sender's packet is never a reply, from any port; random TWAMP-Light
    // padding is not one either, except from the STAMP port.
    let sender = request(Mode::Open, 1, 0, None);
    assert!(!looks_reflected(Mode::Open, &sender, 862, now_secs));
    assert!(!looks_reflected(Mode::Open, &sender, 40000, now_secs));
    let mut padded = sender.clone();
    for (i, b) in padded[16..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(77);
    }
    assert!(!looks_reflected(Mode::Open, &padded, 40000, now_secs));
    assert!(looks_reflected(Mode::Open, &padded, 862, now_secs));
}

#[test]
fn follow_up_reports_the_sessions_previous_reply_and_its_kernel_time() {
    use super::followup::{FollowUp, TxTag};
    let with_follow_up = |seq: u32| {
        let mut req = request(Mode::Open, seq, 4, None);
        req.extend_from_slice(&FollowUp::request_tlv());
        req
    };
    let value = |reply: &[u8]| {
        assert_eq!(reply[44], 0, "understood: U, M, I clear");
        FollowUp::from_value(&reply[48..64]).unwrap()
    };
    for format in [TimeFormat::Ntp, TimeFormat::Ptp] {
        let mut r = Reflector::new(config(None, true, format));
        let (first, reply) = reflect_in_place(&mut r, &with_follow_up(10), None).unwrap();
        assert_eq!(value(&first), FollowUp::default(), "no previous reply");
        let tag = reply.follow_up.unwrap();
        assert_eq!(
            tag,
            TxTag {
                source: source(),
                ssid: 4,
                seq: 0
            }
        );
        // No stamp read for reply 0: its number, no time.
        let (second, reply) = reflect_in_place(&mut r, &with_follow_up(11), None).unwrap();
        assert_eq!(value(&second), FollowUp::previous(1, None));
        // Reply 1's kernel stamp read: reply 2 carries it, as sent, in the format.
        let tx_ns = 1_790_000_000_123_456_789;
        r.transmitted(reply.follow_up.unwrap(), tx_ns);
        r.transmitted(tag, 5); // reply 0's stamp, late: not the last reply, dropped
        let (third, _) = reflect_in_place(&mut r, &with_follow_up(12), None).unwrap();
        let f = value(&third);
        assert_eq!((f.seq, f.mode), (1, 2));
        let wire = format.encode(UNIX_EPOCH + Duration::from_nanos(tx_ns));
        assert_eq!(f.timestamp, wire);
    }
    // Stateless: understood, all zero, no stamp wanted.
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let mut req = with_follow_up(3);
    req[48..60].fill(0xee);
    let (reply, tag) = reflect_in_place(&mut r, &req, None).unwrap();
    assert_eq!(value(&reply), FollowUp::default());
    assert_eq!(tag.follow_up, None);
    // A stateful reply without the TLV wants no stamp either.
    let mut r = Reflector::new(config(None, true, TimeFormat::Ntp));
    let (_, plain) = reflect_in_place(&mut r, &request(Mode::Open, 1, 4, None), None).unwrap();
    assert_eq!(plain.follow_up, None);
    // A wrong length: M, left as it came.
    let mut bad = request(Mode::Open, 3, 4, None);
    bad.extend_from_slice(&[0x80, 7, 0, 12]);
    bad.extend_from_slice(&[0xaa; 12]);
    let (reply, _) = reflect_in_place(&mut r, &bad, None).unwrap();
    assert_eq!(reply[44], super::tlv::tlv_flags::M);
    assert_eq!(&reply[48..], &[0xaa; 12]);
}
