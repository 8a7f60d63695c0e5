//! The Direct Measurement TLV (RFC 8972 §4.5, type 5): the sender's and the
//! reflector's packet counters of a session, so that the sender can tell
//! forward from reverse loss by counts rather than by sequence numbers.
//!
//! ```text
//! |                Session-Sender Tx counter (S_TxC)              |
//! |               Session-Reflector Rx counter (R_RxC)            |
//! |               Session-Reflector Tx counter (R_TxC)            |
//! ```
//!
//! The sender puts its transmit count in S_TxC and zeroes the other two; the
//! reflector copies S_TxC and fills in its own counts for the session. Here
//! they come from the stateful reflector's session table
//! ([`Sessions`](super::sessions::Sessions), `--stamp-stateful`), counted in
//! the same place as its sequence numbers: R_RxC the requests of the session
//! it accepted, this one included; R_TxC the replies it built for the session
//! before this one (a reply whose send then fails is in `send errors`, not
//! taken back out of R_TxC). Requests it refused (a wrong HMAC, too short,
//! a reflected packet) are not in-profile and count in neither. A session
//! forgotten after 60 s idle, or evicted, starts again from zero, as its
//! sequence numbers do.
//!
//! A stateless reflector has no session to count: it flags the TLV U (not
//! processed, RFC 8972 §4) and returns it as it came, rather than inventing
//! counters.

/// The Direct Measurement TLV's type (RFC 8972 §4.5).
pub const TLV_DIRECT_MEASUREMENT: u8 = 5;

/// Its value's length: three 32-bit counters (RFC 8972 §4.5: "MUST equal 12").
pub const DIRECT_MEASUREMENT_VALUE_LEN: usize = 12;

/// Its whole length: a 4-byte header and the 12-byte value.
pub const DIRECT_MEASUREMENT_LEN: usize = 16;

/// The three counters of a Direct Measurement TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectMeasurement {
    /// S_TxC: test packets the sender has sent in the session.
    pub sender_tx: u32,
    /// R_RxC: test packets the reflector has received in the session.
    pub reflector_rx: u32,
    /// R_TxC: test packets the reflector has sent in the session.
    pub reflector_tx: u32,
}

impl DirectMeasurement {
    /// The 12 value bytes, in network order.
    pub fn value(&self) -> [u8; DIRECT_MEASUREMENT_VALUE_LEN] {
        let mut v = [0u8; DIRECT_MEASUREMENT_VALUE_LEN];
        v[..4].copy_from_slice(&self.sender_tx.to_be_bytes());
        v[4..8].copy_from_slice(&self.reflector_rx.to_be_bytes());
        v[8..].copy_from_slice(&self.reflector_tx.to_be_bytes());
        v
    }

    /// Reads the 12 value bytes.
    pub fn from_value(v: [u8; DIRECT_MEASUREMENT_VALUE_LEN]) -> DirectMeasurement {
        let word = |at: usize| u32::from_be_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
        DirectMeasurement {
            sender_tx: word(0),
            reflector_rx: word(4),
            reflector_tx: word(8),
        }
    }

    /// The whole TLV as a sender sends it: U set, type 5, length 12, S_TxC
    /// `sender_tx` and the reflector's counters zero.
    pub fn request_tlv(sender_tx: u32) -> [u8; DIRECT_MEASUREMENT_LEN] {
        let mut tlv = [0u8; DIRECT_MEASUREMENT_LEN];
        tlv[..4].copy_from_slice(&super::tlv::sender_header(
            TLV_DIRECT_MEASUREMENT,
            DIRECT_MEASUREMENT_VALUE_LEN,
        ));
        tlv[4..].copy_from_slice(
            &DirectMeasurement {
                sender_tx,
                ..DirectMeasurement::default()
            }
            .value(),
        );
        tlv
    }
}

/// The reflector's counts of the request's session, from its session table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounts {
    /// Requests of the session accepted, this one included.
    pub received: u32,
    /// Replies of the session built before this one.
    pub transmitted: u32,
}

impl SessionCounts {
    /// The counts of the request that got reflector sequence number `seq`
    /// from a session table that numbers each session's replies 0, 1, 2…
    pub fn of_session_seq(seq: u32) -> SessionCounts {
        SessionCounts {
            received: seq.wrapping_add(1),
            transmitted: seq,
        }
    }
}

/// The reflector's answer to a well-formed Direct Measurement TLV, whose
/// 12-byte `value` is rewritten in place; returns the TLV's flags. With the
/// session's `counts`: S_TxC kept, R_RxC and R_TxC written, flags clear.
/// Without (a stateless reflector): left as it came, flagged U.
pub fn reflect(value: &mut [u8], counts: Option<SessionCounts>) -> u8 {
    match counts {
        Some(counts) if value.len() == DIRECT_MEASUREMENT_VALUE_LEN => {
            value[4..8].copy_from_slice(&counts.received.to_be_bytes());
            value[8..12].copy_from_slice(&counts.transmitted.to_be_bytes());
            0
        }
        _ => super::tlv::tlv_flags::U,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8972 §4.5, Figure 8: flags, type 5, length 12, then S_TxC,
    /// R_RxC, R_TxC, each 32 bits in network order.
    #[test]
    fn the_layout_is_the_rfcs() {
        assert_eq!(
            DirectMeasurement::request_tlv(0x0102_0304),
            [
                0x80, 5, 0, 12, // U, type 5, length 12
                1, 2, 3, 4, // S_TxC
                0, 0, 0, 0, // R_RxC: zero from the sender
                0, 0, 0, 0, // R_TxC: zero from the sender
            ]
        );
        let dm = DirectMeasurement {
            sender_tx: 7,
            reflector_rx: 0x0a0b_0c0d,
            reflector_tx: 0xffff_fffe,
        };
        assert_eq!(
            dm.value(),
            [0, 0, 0, 7, 0x0a, 0x0b, 0x0c, 0x0d, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(DirectMeasurement::from_value(dm.value()), dm);
    }

    #[test]
    fn the_reflector_keeps_s_txc_and_writes_its_counts_or_flags_u_without_a_session() {
        let mut value = DirectMeasurement::request_tlv(41)[4..].to_vec();
        let flags = reflect(&mut value, Some(SessionCounts::of_session_seq(9)));
        assert_eq!(flags, 0);
        let dm = DirectMeasurement::from_value(value.clone().try_into().unwrap());
        assert_eq!(
            (dm.sender_tx, dm.reflector_rx, dm.reflector_tx),
            (41, 10, 9)
        );
        let before = value.clone();
        assert_eq!(reflect(&mut value, None), super::super::tlv::tlv_flags::U);
        assert_eq!(value, before, "stateless: left as it came");
        let wrapped = SessionCounts::of_session_seq(u32::MAX);
        assert_eq!((wrapped.received, wrapped.transmitted), (0, u32::MAX));
    }

    /// An unauthenticated request of `ssid` with one Direct Measurement TLV.
    fn request(ssid: u16, sender_tx: u32) -> Vec<u8> {
        use crate::stamp::{Mode, SenderPacket};
        let mut buf = vec![0u8; Mode::Open.base_len()];
        SenderPacket {
            seq: sender_tx,
            timestamp: 0,
            error_estimate: 0,
            ssid,
        }
        .encode(Mode::Open, &mut buf);
        buf.extend_from_slice(&DirectMeasurement::request_tlv(sender_tx));
        buf
    }

    #[test]
    fn a_stateful_reflector_counts_each_session_and_a_stateless_one_flags_u() {
        use crate::stamp::{Reflector, ReflectorConfig};
        use std::net::SocketAddr;
        use std::time::SystemTime;
        let source = SocketAddr::from(([192, 0, 2, 1], 4000));
        let answer = |r: &mut Reflector, ssid: u16, tx: u32| {
            let req = request(ssid, tx);
            let mut out = vec![0u8; req.len()];
            let len = r
                .reflect(&req, source, SystemTime::now(), 0, 64, &mut out)
                .unwrap();
            assert_eq!(len, req.len(), "the reply takes the request's place");
            let flags = out[44];
            let dm = DirectMeasurement::from_value(out[48..60].try_into().unwrap());
            (flags, dm.sender_tx, dm.reflector_rx, dm.reflector_tx)
        };
        let mut stateful = Reflector::new(ReflectorConfig {
            stateful: true,
            ..ReflectorConfig::default()
        });
        assert_eq!(answer(&mut stateful, 1, 1), (0, 1, 1, 0));
        assert_eq!(answer(&mut stateful, 1, 2), (0, 2, 2, 1));
        assert_eq!(
            answer(&mut stateful, 2, 1),
            (0, 1, 1, 0),
            "another SSID, another session"
        );
        // The sender lost one on the way (S_TxC 4, R_RxC 3): forward loss.
        assert_eq!(answer(&mut stateful, 1, 4), (0, 4, 3, 2));
        let mut stateless = Reflector::new(ReflectorConfig::default());
        assert_eq!(
            answer(&mut stateless, 1, 1),
            (super::super::tlv::tlv_flags::U, 1, 0, 0)
        );
    }
}
