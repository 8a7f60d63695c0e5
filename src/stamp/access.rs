//! The Access Report TLV (RFC 8972 §4.6, type 6): a sender (a 5G residential
//! gateway, in the RFC's use case) tells the reflector that one of its
//! access networks went up or down, and re-sends until the reply carries
//! the TLV back.
//!
//! ```text
//! | ID (4) | Resv (4) |  Return Code  |           Reserved            |
//! ```
//!
//! The reflector returns it with the Access ID and Return Code as they came
//! (RFC 8972 §4.6: "MUST set the value of the Access ID and Return Code
//! fields equal to the values ... it has received"), U clear: that reply is
//! the sender's acknowledgement. It acts on nothing — this reflector steers
//! no traffic. An Access ID other than 1 (3GPP) or 2 (non-3GPP) "MUST be
//! discarded": such a TLV is flagged U (not processed) and left as it came,
//! as stamp-suite does.

/// The Access Report TLV's type (RFC 8972 §4.6).
pub const TLV_ACCESS_REPORT: u8 = 6;

/// Its value's length (RFC 8972 §4.6: "set equal to the value 4").
pub const ACCESS_REPORT_VALUE_LEN: usize = 4;

/// The Access IDs the RFC defines: 3GPP network and non-3GPP network.
pub const ACCESS_IDS: [u8; 2] = [1, 2];

/// The reflector's answer to a well-formed Access Report TLV (its 4-byte
/// `value`, returned unchanged); returns the TLV's flags: 0, or U for an
/// Access ID the RFC does not define.
pub fn reflect(value: &[u8]) -> u8 {
    if value
        .first()
        .is_some_and(|b| ACCESS_IDS.contains(&(b >> 4)))
    {
        0
    } else {
        super::tlv::tlv_flags::U
    }
}

/// The whole TLV as a sender sends it: U set, type 6, length 4, the Access
/// ID in the high nibble, the Return Code, the reserved bits zero.
pub fn request_tlv(access_id: u8, return_code: u8) -> [u8; 8] {
    let h = super::tlv::sender_header(TLV_ACCESS_REPORT, ACCESS_REPORT_VALUE_LEN);
    [
        h[0],
        h[1],
        h[2],
        h[3],
        (access_id & 0x0f) << 4,
        return_code,
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8972 §4.6, Figure 9: flags, type 6, length 4; ID in the high
    /// nibble of the first value byte, Return Code, 16 reserved bits.
    #[test]
    fn the_layout_is_the_rfcs_and_only_ids_1_and_2_are_acknowledged() {
        assert_eq!(request_tlv(2, 1), [0x80, 6, 0, 4, 0x20, 1, 0, 0]);
        assert_eq!(reflect(&request_tlv(1, 2)[4..]), 0);
        assert_eq!(reflect(&request_tlv(2, 1)[4..]), 0);
        for id in [0, 3, 15] {
            assert_eq!(
                reflect(&request_tlv(id, 1)[4..]),
                super::super::tlv::tlv_flags::U
            );
        }
    }

    #[test]
    fn the_reflector_returns_it_as_it_came_with_u_clear() {
        use crate::stamp::{Mode, Reflector, ReflectorConfig, SenderPacket};
        use std::time::SystemTime;
        let mut req = vec![0u8; Mode::Open.base_len()];
        SenderPacket {
            seq: 1,
            timestamp: 0,
            error_estimate: 0,
            ssid: 3,
        }
        .encode(Mode::Open, &mut req);
        req.extend_from_slice(&request_tlv(1, 2));
        let mut out = vec![0u8; req.len()];
        let source = "192.0.2.9:5000".parse().unwrap();
        let mut r = Reflector::new(ReflectorConfig::default());
        let len = r
            .reflect(&req, source, SystemTime::now(), 0, 64, &mut out)
            .unwrap();
        assert_eq!(out[44..len], [0, 6, 0, 4, 0x10, 2, 0, 0]);
    }
}
