//! The STAMP session-sender (RFC 8762, with the RFC 8972 SSID and Class of
//! Service TLV): what STAMP adds to a measured run. The run itself — ping,
//! flood or rate, one session per flow — is the echo modes' (`measure`), with
//! the STAMP codec writing the test packets and reading the replies, so a
//! STAMP run reports everything an echo run does.
//!
//! Beside each flow's books, a `StampBooks` reads every intact reply in time
//! for what only STAMP says: the one-way delay each way (meaningful only when
//! both clocks are synchronised, which the reflector's S bit claims or not);
//! whether the reflector numbers replies per session (stateful, RFC 8762
//! §4.2), which splits the loss by direction; and, with `--tos`, from the
//! Class of Service TLV, on which way a DSCP was re-marked.
//!
//! Here: the session as configured (`StampConfig`, its codec) and the run's
//! `StampSummary`. Beside it: `tlvs.rs` (`--stamp-tlv`'s TLVs), `size.rs`
//! (packet length, `--size` checks), `books.rs` (`StampBooks`, the sum of
//! the flows), `answers.rs` (what came back of `--stamp-tlv`), `owd.rs`,
//! `follow.rs`.

mod answers;
mod books;
mod follow;
mod owd;
mod size;
mod tlvs;

use serde::Serialize;

pub use answers::{
    AccessSummary, AddrAnswers, DirectSummary, LocationSummary, ReturnPathSummary, TlvSummary,
};
pub(crate) use books::{StampBooks, StampFigures, summarize};
pub use follow::FollowUpSummary;
pub use owd::OwdSummary;
pub use size::{check_size, check_size_unresolved, check_size_with, min_packet_len};
pub use tlvs::{ACCESS_REPORT, SenderTlvs};

use super::measure::codec::{Codec, StampCodec};
use crate::client::stats::RunSummary;
use crate::error::Result;
use crate::stamp::packet::ClassOfService;
use crate::stamp::{Mode, StampOptions};
use size::{extra_len, fixed_len};
use std::collections::BTreeMap;

/// A STAMP session as the command line asks for it, free of clap types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampConfig {
    /// Key file, time stamp format.
    pub options: StampOptions,
    /// The RFC 8972 session-sender identifier carried by every packet.
    pub ssid: u16,
    /// `--size`: every packet this long, an Extra Padding TLV making up the
    /// difference (checked by [`check_size`]); `None`: no padding.
    pub size: Option<usize>,
    /// Every packet carries a Follow-Up Telemetry TLV (`--stamp-follow-up`).
    pub follow_up: bool,
    /// The other TLVs every packet carries (`--stamp-tlv`).
    pub tlvs: SenderTlvs,
}

impl StampConfig {
    /// The base packet's mode: authenticated when there is a key file.
    pub fn mode(&self) -> Mode {
        if self.options.key_file.is_some() {
            Mode::Authenticated
        } else {
            Mode::Open
        }
    }

    /// The TLVs every test packet carries, in order, by name.
    pub fn tlv_names(&self, tos: Option<u8>) -> Vec<&'static str> {
        let authenticated = self.mode() == Mode::Authenticated;
        let extra = extra_len(self.follow_up, self.tlvs);
        let padded = self.packet_len(tos) > fixed_len(authenticated, tos, extra, false);
        let mut names = Vec::new();
        if tos.is_some() {
            names.push("Class of Service");
        }
        if self.follow_up {
            names.push("Follow-Up Telemetry");
        }
        names.extend(self.tlvs.names());
        if authenticated && (tos.is_some() || extra > 0 || padded) {
            names.push("HMAC");
        }
        if padded {
            names.push("Extra Padding");
        }
        names
    }

    /// The length of every test packet: `--size`, or the base packet and
    /// the TLVs `tos` needs ([`min_packet_len`]).
    pub fn packet_len(&self, tos: Option<u8>) -> usize {
        self.size.unwrap_or_else(|| {
            let extra = extra_len(self.follow_up, self.tlvs);
            fixed_len(self.mode() == Mode::Authenticated, tos, extra, false)
        })
    }

    /// The codec of this session (the key read now), stamps on the clock
    /// whose 0 is `origin_unix_ns`.
    pub(crate) fn codec(&self, tos: Option<u8>, origin_unix_ns: u64) -> Result<Codec> {
        let key = self.options.key()?;
        Ok(Codec::Stamp(Box::new(StampCodec {
            mode: self.mode(),
            key,
            format: self.options.format(),
            ssid: self.ssid,
            origin_unix_ns,
            // EC1 (draft-ietf-ippm-stamp-cos-ecn): the reply's ECN asked
            // for is the one this packet is sent with.
            cos: tos.map(|tos| ClassOfService {
                dscp1: tos >> 2,
                ec1: tos & 0x03,
                ..ClassOfService::default()
            }),
            follow_up: self.follow_up,
            tlvs: self.tlvs,
            // Once per session: a run's packets all say the same, so a
            // reply's copy of it checks against one value.
            error_estimate: self
                .options
                .format()
                .error_estimate_of(crate::sys::kernel_clock()),
        })))
    }
}

/// What a STAMP run found: the echo modes' summary plus STAMP's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct StampSummary {
    /// Everything an echo run reports, DSCP figures included.
    #[serde(flatten)]
    pub run: RunSummary,
    /// `"unauthenticated"` or `"authenticated"`.
    pub stamp_mode: &'static str,
    /// Sender → reflector delay: reflector's receive time − our send time,
    /// µs; `None` (invalid) when any reply's time stamps were impossible
    /// (`owd_invalid`).
    pub owd_forward_us: Option<OwdSummary>,
    /// Reflector → sender delay: our receive time (the kernel's where there
    /// is one) − reflector's send time, µs; `None` likewise.
    pub owd_reverse_us: Option<OwdSummary>,
    /// Intact replies in time whose reflector time stamps cannot be true:
    /// sent before received, or held longer than the whole round trip, by
    /// more than [`STAMP_SLACK_NS`], or a day or more from this host's clock
    /// ([`STAMP_MAX_OFFSET_NS`]: no clock). One such reply makes the
    /// reflector's stamps untrustworthy, so the one-way figures are withheld.
    pub owd_invalid: u64,
    /// The reflector's S bit (in its last reply): it claims a clock
    /// synchronised to UTC. One-way delays need both clocks synchronised;
    /// this sender does not claim it (its S bit is clear).
    pub reflector_clock_synchronized: bool,
    /// The error the reflector's last reply claims for its clock (its
    /// error estimate's scale and multiplier), µs, rounded up; `None`
    /// without replies.
    pub reflector_clock_error_us: Option<u64>,
    /// This sender's S bit: set when the kernel says its clock is
    /// synchronised (`adjtimex`, see `stamp::clock_synchronized`).
    pub sender_clock_synchronized: bool,
    /// The error this sender's packets claim for its clock, µs (the
    /// kernel's `esterror`, rounded up to the encoding).
    pub sender_clock_error_us: u64,
    /// Whether the reflector numbers replies per session (its sequence
    /// numbers differ from ours): only then can loss be split by direction.
    pub reflector_stateful: bool,
    /// Test packets that never reached the reflector (stateful reflectors only).
    pub lost_forward: Option<u64>,
    /// Replies the reflector sent that never came back (stateful reflectors only).
    pub lost_reverse: Option<u64>,
    /// Lost packets sent after the last answered one: their direction is unknown.
    pub lost_unattributed: Option<u64>,
    /// Replies whose Class of Service TLV says the request arrived with
    /// another DSCP than sent: re-marked on the way out (`--tos` only;
    /// `None` when the reflector does not support the TLV).
    pub dscp_forward_changed: Option<u64>,
    /// Replies that arrived with another DSCP than the reflector says it
    /// sent them with (DSCP1 asked for, or the DSCP received, by its RP
    /// field): re-marked on the way back (`--tos` only; `None` when the
    /// reflector does not support the TLV or the TOS cannot be read here).
    pub dscp_reverse_changed: Option<u64>,
    /// The ECN codepoints the reflector says the requests arrived with
    /// (the Class of Service TLV's ECN field), replies per value; `None`
    /// without `--tos` or unless every reply carried a filled-in TLV.
    pub ecn_forward_seen: Option<BTreeMap<u8, u64>>,
    /// Replies whose request reached the reflector with another ECN than
    /// sent (CE marked, or bleached, on the way out); `None` likewise.
    pub ecn_forward_changed: Option<u64>,
    /// Replies that arrived with another ECN than the reflector says it
    /// sent them with (EC1 when its RPE is 0b11, Not-ECT when 0b10): changed
    /// on the way back. `None` unless every reply's TLV had RPE filled in
    /// (draft-ietf-ippm-stamp-cos-ecn) and the replies' TOS was read here.
    pub ecn_reverse_changed: Option<u64>,
    /// Replies whose reflector did not send them with the EC1 asked (RPE
    /// 0b10: by its policy, ours by default unless EC1 is Not-ECT).
    pub ecn_refused: Option<u64>,
    /// With `--stamp-follow-up`: the reflector's residence times and the
    /// reverse delays without them, from the Follow-Up Telemetry TLV.
    pub follow_up: Option<FollowUpSummary>,
    /// With `--stamp-tlv`: what came back of those TLVs.
    pub stamp_tlvs: Option<TlvSummary>,
}

/// How far a reflector's own two time stamps may disagree with what is
/// possible (its transmit time before its receive time, or its hold time
/// longer than our round trip) before they count as impossible, ns: a
/// clock stepped or slewed between the two readings, and our clock's rate
/// against its own, stay far below a millisecond.
pub const STAMP_SLACK_NS: i128 = 1_000_000;

/// How far a reflector's clock may be from ours before its stamps are no
/// clock error but no clock at all (unset, or a made-up value), ns: a day.
/// Unsynchronised clocks drift seconds a day and a wrong time zone is
/// hours; the one-way figures of a clock in 1900 or 2036 are not delays.
pub const STAMP_MAX_OFFSET_NS: i128 = 86_400_000_000_000;

#[cfg(test)]
mod tests;
