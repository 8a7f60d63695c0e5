//! RFC 9503's Return Path through the reflector: a Control Code asking for
//! no reply gets none (and leaves a stateful session's numbering alone),
//! unless its TLVs were not processed or failed their HMAC.

use super::*;
use crate::stamp::return_path::{control_code, control_code_tlv, return_address_tlv};

/// A request of `mode` (signed with `key`) with `tlvs` after its base packet.
fn asking(mode: Mode, seq: u32, key: Option<&Key>, tlvs: &[u8]) -> Vec<u8> {
    let mut req = request(mode, seq, 0, None);
    req.extend_from_slice(tlvs);
    if let Some(key) = key {
        key.sign(&mut req);
    }
    req
}

#[test]
fn no_reply_requested_gets_none_and_same_link_a_reply_as_usual() {
    let mut r = Reflector::new(config(None, false, TimeFormat::Ntp));
    let no_reply = control_code_tlv(control_code::NO_REPLY);
    let req = asking(Mode::Open, 1, None, &no_reply);
    let mut buf = req.clone();
    let refusal = r.reflect_in_place(&mut buf, source(), &arrival(None), SystemTime::now(), 0);
    assert_eq!(refusal, Err(Refusal::NoReply));
    // Reply on the same link: as usual, the TLV and its sub-TLV understood.
    let req = asking(
        Mode::Open,
        2,
        None,
        &control_code_tlv(control_code::SAME_LINK),
    );
    let (reply, meta) = reflect_in_place(&mut r, &req, None).unwrap();
    assert_eq!(meta.to, None, "to the source");
    assert_eq!((reply[OPEN_LEN], reply[OPEN_LEN + 4]), (0, 0));
    // A reserved bit set: not understood, a reply as usual.
    let req = asking(Mode::Open, 3, None, &control_code_tlv(0x100));
    let reply = reflect(&mut r, &req).unwrap();
    assert_eq!(reply[OPEN_LEN], tlv_flags::U);
    // "No reply" in a second Return Path TLV: only the first counts.
    let tlvs = [
        &return_address_tlv("192.0.2.9".parse().unwrap())[..],
        &no_reply,
    ]
    .concat();
    let reply = reflect(&mut r, &asking(Mode::Open, 4, None, &tlvs)).unwrap();
    assert_eq!(
        (reply[OPEN_LEN], reply[OPEN_LEN + 12]),
        (tlv_flags::U, tlv_flags::U)
    );
    // --tlv-mode ignore: not processed, so not honoured; copied back as sent.
    let mut ignoring = config(None, false, TimeFormat::Ntp);
    ignoring.tlv_mode = super::TlvMode::Ignore;
    let mut r = Reflector::new(ignoring);
    let reply = reflect(&mut r, &asking(Mode::Open, 5, None, &no_reply)).unwrap();
    assert_eq!(&reply[OPEN_LEN..], &no_reply[..]);
}

#[test]
fn a_stateful_session_numbers_on_as_if_no_reply_requests_never_came() {
    let mut r = Reflector::new(config(None, true, TimeFormat::Ntp));
    let no_reply = control_code_tlv(control_code::NO_REPLY);
    let seq_of = |r: &mut Reflector, tlvs: &[u8]| {
        reflect(r, &asking(Mode::Open, 9, None, tlvs))
            .map(|reply| ReflectedPacket::decode(Mode::Open, &reply).unwrap().seq)
    };
    assert_eq!(seq_of(&mut r, &[]), Ok(0));
    assert_eq!(seq_of(&mut r, &no_reply), Err(Refusal::NoReply));
    assert_eq!(seq_of(&mut r, &no_reply), Err(Refusal::NoReply));
    assert_eq!(seq_of(&mut r, &[]), Ok(1), "replies numbered without a gap");
}

#[test]
fn authenticated_no_reply_only_with_a_passing_hmac_tlv() {
    let key = key();
    let mut r = Reflector::new(config(Some(key.clone()), false, TimeFormat::Ntp));
    let no_reply = control_code_tlv(control_code::NO_REPLY);
    let seq = 7u32;
    let mut tlvs = no_reply.clone();
    tlvs.extend_from_slice(&[0x80, packet::TLV_HMAC, 0, 16]);
    tlvs.extend_from_slice(&key.tlv_digest(&seq.to_be_bytes(), &no_reply));
    let req = asking(Mode::Authenticated, seq, Some(&key), &tlvs);
    assert_eq!(reflect(&mut r, &req), Err(Refusal::NoReply));
    // Without the HMAC TLV, or with a wrong one: I on every TLV, and a reply.
    let bare = asking(Mode::Authenticated, seq, Some(&key), &no_reply);
    let reply = reflect(&mut r, &bare).unwrap();
    assert_eq!(reply[packet::AUTH_LEN], tlv_flags::I);
    let mut forged = tlvs.clone();
    *forged.last_mut().unwrap() ^= 1;
    let reply = reflect(
        &mut r,
        &asking(Mode::Authenticated, seq, Some(&key), &forged),
    )
    .unwrap();
    assert_eq!(reply[packet::AUTH_LEN], tlv_flags::I);
}
