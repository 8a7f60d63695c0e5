//! What came back of the `--stamp-tlv` TLVs: counted per flow, summed over
//! the flows and summarised for the report (JSON `stamp_tlvs`).

use serde::Serialize;

use super::SenderTlvs;
use crate::stamp::access;
use crate::stamp::direct::{DirectMeasurement, TLV_DIRECT_MEASUREMENT};
use crate::stamp::location;
use crate::stamp::packet::{find_tlv, tlv_flags};
use crate::stamp::return_path::{TLV_DESTINATION_NODE_ADDRESS, TLV_RETURN_PATH};

/// What came back of the `--stamp-tlv` TLVs, per flow and summed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TlvAnswers {
    /// Direct Measurement filled in, and flagged (U, M, I) or missing.
    dm_filled: u64,
    dm_flagged: u64,
    /// The filled-in counters with the highest S_TxC.
    dm_furthest: Option<DirectMeasurement>,
    location_filled: u64,
    location_flagged: u64,
    /// The last filled-in Location answer.
    location: Option<location::Answer>,
    access_acknowledged: u64,
    access_flagged: u64,
    dna: AddrAnswers,
    return_path: AddrAnswers,
}

/// How an RFC 9503 TLV came back: flags clear (recognised: the address
/// was the reflector's own, the Return Address honoured), U, M, or
/// otherwise (missing, I set, or its HMAC failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AddrAnswers {
    /// Flags clear.
    pub recognised: u64,
    /// U set (and M clear): not this node's address, or not honoured.
    pub unrecognised: u64,
    /// M set: malformed.
    pub malformed: u64,
    /// Missing, I set, or not authentic.
    pub other: u64,
}

impl AddrAnswers {
    fn merge(&mut self, o: &AddrAnswers) {
        self.recognised += o.recognised;
        self.unrecognised += o.unrecognised;
        self.malformed += o.malformed;
        self.other += o.other;
    }

    /// Counts TLV `kind` of reply TLVs `tlvs` (for a Return Path its
    /// Return Address sub-TLV's flags too: honoured only with both clear).
    fn read(&mut self, tlvs: &[u8], kind: u8, authentic: bool) {
        let Some((at, value)) = find_tlv(tlvs, kind).filter(|_| authentic) else {
            self.other += 1;
            return;
        };
        let mut flags = tlvs[at] & FLAGS;
        if kind == TLV_RETURN_PATH && flags == 0 {
            flags = value.first().map_or(tlv_flags::M, |f| f & FLAGS);
        }
        if flags & tlv_flags::M != 0 {
            self.malformed += 1;
        } else if flags == tlv_flags::U {
            self.unrecognised += 1;
        } else if flags == 0 {
            self.recognised += 1;
        } else {
            self.other += 1;
        }
    }
}

impl TlvAnswers {
    pub(super) fn merge(&mut self, other: &TlvAnswers) {
        self.dm_filled += other.dm_filled;
        self.dm_flagged += other.dm_flagged;
        self.location_filled += other.location_filled;
        self.location_flagged += other.location_flagged;
        self.access_acknowledged += other.access_acknowledged;
        self.access_flagged += other.access_flagged;
        self.dna.merge(&other.dna);
        self.return_path.merge(&other.return_path);
        self.location = other.location.or(self.location);
        // Counters are per session: summed over the flows.
        self.dm_furthest = match (self.dm_furthest, other.dm_furthest) {
            (Some(a), Some(b)) => Some(DirectMeasurement {
                sender_tx: a.sender_tx.saturating_add(b.sender_tx),
                reflector_rx: a.reflector_rx.saturating_add(b.reflector_rx),
                reflector_tx: a.reflector_tx.saturating_add(b.reflector_tx),
            }),
            (a, b) => a.or(b),
        };
    }

    /// Reads the `--stamp-tlv` TLVs of a reply's `tlvs` (`authentic`:
    /// their HMAC TLV passed, or there is none to check).
    pub(super) fn read(&mut self, asked: SenderTlvs, tlvs: &[u8], authentic: bool) {
        // A TLV comes back filled in when it is there, authentic and no
        // flag is set; otherwise it counts as flagged (U: not processed).
        let filled = |kind: u8| {
            find_tlv(tlvs, kind)
                .filter(|&(at, _)| authentic && tlvs[at] & FLAGS == 0)
                .map(|(_, value)| value)
        };
        if asked.direct {
            match filled(TLV_DIRECT_MEASUREMENT).and_then(|v| v.try_into().ok()) {
                Some(value) => {
                    let dm = DirectMeasurement::from_value(value);
                    self.dm_filled += 1;
                    if self.dm_furthest.is_none_or(|f| dm.sender_tx >= f.sender_tx) {
                        self.dm_furthest = Some(dm);
                    }
                }
                None => self.dm_flagged += 1,
            }
        }
        if asked.location {
            match filled(location::TLV_LOCATION).and_then(location::read_answer) {
                Some(answer) => {
                    self.location_filled += 1;
                    self.location = Some(answer);
                }
                None => self.location_flagged += 1,
            }
        }
        if asked.access {
            match filled(access::TLV_ACCESS_REPORT) {
                Some(_) => self.access_acknowledged += 1,
                None => self.access_flagged += 1,
            }
        }
        if asked.dna {
            self.dna.read(tlvs, TLV_DESTINATION_NODE_ADDRESS, authentic);
        }
        if asked.return_to.is_some() {
            self.return_path.read(tlvs, TLV_RETURN_PATH, authentic);
        }
    }

    pub(super) fn summary(&self, asked: SenderTlvs) -> TlvSummary {
        TlvSummary {
            direct_measurement: asked.direct.then(|| DirectSummary {
                filled: self.dm_filled,
                flagged: self.dm_flagged,
                sent: self.dm_furthest.map(|d| u64::from(d.sender_tx)),
                reflector_received: self.dm_furthest.map(|d| u64::from(d.reflector_rx)),
                reflector_sent: self.dm_furthest.map(|d| u64::from(d.reflector_tx)),
                lost_forward: self
                    .dm_furthest
                    .map(|d| u64::from(d.sender_tx.saturating_sub(d.reflector_rx))),
            }),
            location: asked.location.then(|| LocationSummary {
                filled: self.location_filled,
                flagged: self.location_flagged,
                source: self.location.map(|l| seen_addr(l.source_ip, l.source_port)),
                destination: self
                    .location
                    .map(|l| seen_addr(l.destination_ip, l.destination_port)),
            }),
            access_report: asked.access.then_some(AccessSummary {
                acknowledged: self.access_acknowledged,
                flagged: self.access_flagged,
            }),
            destination_node_address: asked.dna.then_some(self.dna),
            return_path: asked.return_to.map(|ip| ReturnPathSummary {
                address: ip.to_string(),
                answers: self.return_path,
            }),
        }
    }
}

/// An address and port as a Location TLV gave them: `ip:port`, `[ip]:port`,
/// or `?:port` when the address was withheld or not answered.
fn seen_addr(ip: Option<std::net::IpAddr>, port: u16) -> String {
    match ip {
        Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        None => format!("?:{port}"),
    }
}

/// What the reflector answered to `--stamp-tlv`'s TLVs (JSON `stamp_tlvs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlvSummary {
    /// `dm`: the reflector's counters; `None` when not sent.
    pub direct_measurement: Option<DirectSummary>,
    /// `location`: the addresses it saw; `None` when not sent.
    pub location: Option<LocationSummary>,
    /// `access`: acknowledged or not; `None` when not sent.
    pub access_report: Option<AccessSummary>,
    /// `dna`: recognised (the target is the reflector's address) or not.
    pub destination_node_address: Option<AddrAnswers>,
    /// `return-path=ADDR`: honoured or not.
    pub return_path: Option<ReturnPathSummary>,
}

/// Return Path (RFC 9503 §4) as it came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnPathSummary {
    /// The Return Address sent.
    pub address: String,
    /// `recognised`: honoured (TLV and sub-TLV flags clear).
    #[serde(flatten)]
    pub answers: AddrAnswers,
}

/// Direct Measurement (RFC 8972 §4.5) as it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirectSummary {
    /// Replies with the TLV filled in.
    pub filled: u64,
    /// Replies with it flagged U, M or I (a stateless reflector of ours
    /// keeps no counters: U), or without it.
    pub flagged: u64,
    /// S_TxC of the filled-in reply with the highest: our packets sent by
    /// then (summed over flows).
    pub sent: Option<u64>,
    /// R_RxC in that reply: the reflector's count of our packets received.
    pub reflector_received: Option<u64>,
    /// R_TxC in that reply: the replies it had sent before it.
    pub reflector_sent: Option<u64>,
    /// `sent` − `reflector_received`: lost on the way out by then, by the
    /// reflector's own count.
    pub lost_forward: Option<u64>,
}

/// Location (RFC 8972 §4.2) as it came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationSummary {
    /// Replies with the TLV filled in.
    pub filled: u64,
    /// Replies with it flagged, or without it.
    pub flagged: u64,
    /// Where the reflector saw the last answered request come from (behind
    /// a NAT: its public address and port).
    pub source: Option<String>,
    /// Where it saw that request sent to.
    pub destination: Option<String>,
}

/// Access Report (RFC 8972 §4.6) as it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AccessSummary {
    /// Replies that returned it, U clear: the report acknowledged.
    pub acknowledged: u64,
    /// Replies with it flagged, or without it.
    pub flagged: u64,
}

/// The flags that say a reflector did not fill a TLV in (RFC 8972 §4).
pub(super) const FLAGS: u8 = tlv_flags::U | tlv_flags::M | tlv_flags::I;
