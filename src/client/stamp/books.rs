//! A flow's STAMP figures (`StampBooks`), read from every intact reply in
//! time as the books' codec decoded it, and their sum over the flows: the
//! run's `StampSummary`.

use super::answers::{FLAGS, TlvAnswers};
use super::follow::FollowBooks;
use super::owd::Owd;
use super::{STAMP_MAX_OFFSET_NS, STAMP_SLACK_NS};
use super::{SenderTlvs, StampSummary};
use crate::client::measure::codec::{Codec, Decoded, unix_ns_exact};
use crate::client::probe::Check;
use crate::client::stats::RunSummary;
use crate::stamp::Key;
use crate::stamp::followup::{FollowUp, TLV_FOLLOW_UP};
use crate::stamp::packet::{ClassOfService, TLV_CLASS_OF_SERVICE};
use crate::stamp::packet::{RPE_SET, RPE_UNABLE, find_tlv, tlvs_authentic};
use crate::stamp::{Mode, S_BIT, TimeFormat, error_estimate_us};

/// Unix time in ns (signed) of a reflector's time stamp in `format`.
fn unix_ns(format: TimeFormat, t: u64) -> i128 {
    i128::from(unix_ns_exact(format, t))
}

/// One STAMP session's figures as the fleet prober exports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StampFigures {
    /// Sender → reflector delays: how many, and their sum in seconds.
    pub(crate) forward: (u64, f64),
    /// Reflector → sender delays: how many, and their sum in seconds.
    pub(crate) reverse: (u64, f64),
    /// Replies whose time stamps cannot be true (not in the delays).
    pub(crate) invalid: u64,
    /// Loss (forward, reverse, unattributed); `None` for a stateless
    /// reflector once something was lost.
    pub(crate) lost_split: Option<(u64, u64, u64)>,
}

/// Per-flow STAMP figures, fed with every reply the books matched.
pub(crate) struct StampBooks {
    mode: Mode,
    /// Unix ns of the books' clock at 0: our send and receive times in UTC.
    origin_unix_ns: u64,
    /// The CoS TLV the packets carry (`--tos`): DSCP1 and EC1.
    cos_sent: Option<ClassOfService>,
    /// Authenticated mode's key: a reply's TLVs are used only when they
    /// pass their HMAC TLV (RFC 8972 §4.8).
    key: Option<Key>,
    forward: Owd,
    reverse: Owd,
    /// Replies whose time stamps cannot be true (not recorded above).
    impossible: u64,
    synchronized: bool,
    /// The last reply's error estimate, and our own.
    their_error_estimate: Option<u16>,
    our_error_estimate: u16,
    stateful: bool,
    /// (reflector seq, our seq), both from 0, of the reply with the highest
    /// reflector sequence number.
    pub(super) furthest: Option<(u64, u64)>,
    /// Intact replies in time whose reflector sequence number is known.
    answered: u64,
    /// Replies with a CoS TLV the reflector filled in, and with one it
    /// flagged (U, M) or dropped.
    cos_supported: u64,
    cos_unsupported: u64,
    forward_changed: u64,
    reverse_changed: u64,
    /// Replies whose reverse re-mark could be judged (TOS read here).
    reverse_judged: u64,
    /// ECN by the CoS TLV: as the reflector received it (per codepoint),
    /// changed on the way out, changed on the way back (of those judged:
    /// RPE filled in and TOS read here), refused (RPE 0b10).
    ecn_forward: [u64; 4],
    ecn_forward_changed: u64,
    ecn_reverse_changed: u64,
    ecn_reverse_judged: u64,
    ecn_refused: u64,
    /// `--stamp-follow-up`: the follow-up figures.
    follow: Option<FollowBooks>,
    /// `--stamp-tlv`: what came back of those TLVs.
    tlvs: SenderTlvs,
    answers: TlvAnswers,
}

impl StampBooks {
    /// Figures for one flow of `codec`'s session (`None` for echo probes).
    pub(crate) fn for_codec(codec: &Codec) -> Option<StampBooks> {
        StampBooks::build(codec, Owd::new)
    }

    /// [`for_codec`](Self::for_codec) keeping only the one-way delays'
    /// counts and sums (the fleet prober: no histograms per target).
    pub(crate) fn compact(codec: &Codec) -> Option<StampBooks> {
        StampBooks::build(codec, Owd::sums_only)
    }

    /// What the fleet prober exports of one target's session, given its
    /// books' `lost` and `in_flight`.
    pub(crate) fn figures(&self, lost: u64, in_flight: u64) -> StampFigures {
        StampFigures {
            forward: self.forward.count_and_sum_seconds(),
            reverse: self.reverse.count_and_sum_seconds(),
            invalid: self.impossible,
            lost_split: self.split(lost, in_flight),
        }
    }

    fn build(codec: &Codec, owd: fn() -> Owd) -> Option<StampBooks> {
        let Codec::Stamp(s) = codec else { return None };
        Some(StampBooks {
            mode: s.mode,
            origin_unix_ns: s.origin_unix_ns,
            cos_sent: s.cos,
            key: s.key.clone(),
            forward: owd(),
            reverse: owd(),
            impossible: 0,
            synchronized: false,
            their_error_estimate: None,
            our_error_estimate: s.error_estimate,
            stateful: false,
            furthest: None,
            answered: 0,
            cos_supported: 0,
            cos_unsupported: 0,
            forward_changed: 0,
            reverse_changed: 0,
            reverse_judged: 0,
            ecn_forward: [0; 4],
            ecn_forward_changed: 0,
            ecn_reverse_changed: 0,
            ecn_reverse_judged: 0,
            ecn_refused: 0,
            follow: s.follow_up.then(FollowBooks::new),
            tlvs: s.tlvs,
            answers: TlvAnswers::default(),
        })
    }

    /// [`reply_decoded`](Self::reply_decoded) of `bytes`, decoded for the
    /// asking.
    #[cfg(test)]
    pub(crate) fn reply(
        &mut self,
        bytes: &[u8],
        seq: u64,
        check: Check,
        at_ns: u64,
        tos: Option<u8>,
    ) {
        let decoded = Decoded::stamp(self.mode, bytes);
        self.reply_decoded(&decoded, seq, check, at_ns, tos);
    }

    /// Reads `decoded`, the reply to probe `seq` (the books' number, from
    /// 1), an intact one in time, sent at `sent_ns` and received at `at_ns`
    /// (the books' clock) with `tos` (when readable): the packet as the
    /// books' codec decoded it, not decoded again.
    pub(crate) fn reply_decoded(
        &mut self,
        decoded: &Decoded,
        seq: u64,
        check: Check,
        at_ns: u64,
        tos: Option<u8>,
    ) {
        let Check::Intact { sent_ns, .. } = check else {
            return;
        };
        let (Some(reply), bytes) = (decoded.packet, decoded.bytes) else {
            return;
        };
        let theirs = TimeFormat::of_error_estimate(reply.error_estimate);
        let origin = i128::from(self.origin_unix_ns);
        let sent = origin + i128::from(sent_ns);
        let received = origin + i128::from(at_ns);
        let (their_rx, their_tx) = (
            unix_ns(theirs, reply.receive_timestamp),
            unix_ns(theirs, reply.timestamp),
        );
        // The reflector's hold time is on its clock alone: it must lie
        // within our round trip, whatever the offset between the clocks.
        let hold = their_tx - their_rx;
        let rtt = received - sent;
        let unset = (their_rx - sent).abs() > STAMP_MAX_OFFSET_NS;
        if unset || hold < -STAMP_SLACK_NS || hold > rtt + STAMP_SLACK_NS {
            self.impossible += 1;
        } else {
            self.forward.record(clamp(their_rx - sent));
            self.reverse.record(clamp(received - their_tx));
        }
        self.synchronized = reply.error_estimate & S_BIT != 0;
        self.their_error_estimate = Some(reply.error_estimate);
        if reply.seq != reply.sender_seq {
            self.stateful = true;
        }
        // The reflector has received at most as many packets as we sent up
        // to this one: its number unwraps below ours.
        let ours = seq - 1;
        let back = u64::from((ours as u32).wrapping_sub(reply.seq));
        if let Some(theirs_seq) = ours.checked_sub(back) {
            self.answered += 1;
            if self.furthest.is_none_or(|(r, _)| theirs_seq >= r) {
                self.furthest = Some((theirs_seq, ours));
            }
        }
        let tlvs = &bytes[self.mode.base_len()..];
        // RFC 8972 §4.8: TLVs whose HMAC TLV fails are not used.
        let authentic = self
            .key
            .as_ref()
            .is_none_or(|key| tlvs_authentic(tlvs, &bytes[..4], key));
        if let Some(follow) = &mut self.follow {
            let value = find_tlv(tlvs, TLV_FOLLOW_UP)
                .filter(|&(at, _)| authentic && tlvs[at] & FLAGS == 0)
                .and_then(|(_, value)| FollowUp::from_value(value));
            follow.reply(
                reply.seq,
                (their_rx, sent, received),
                value,
                theirs,
                unix_ns,
            );
        }
        if !self.tlvs.is_empty() {
            self.answers.read(self.tlvs, tlvs, authentic);
        }
        if let Some(sent) = self.cos_sent {
            if !authentic {
                self.cos_unsupported += 1;
                return;
            }
            self.class_of_service(tlvs, sent, tos);
        }
    }

    /// Reads the Class of Service TLV of a reply to a packet that carried
    /// `sent` (DSCP1 and EC1 are its DSCP and ECN).
    fn class_of_service(&mut self, tlvs: &[u8], sent: ClassOfService, tos: Option<u8>) {
        let Some((at, value)) = find_tlv(tlvs, TLV_CLASS_OF_SERVICE) else {
            self.cos_unsupported += 1;
            return;
        };
        if tlvs[at] & FLAGS != 0 || value.len() < 4 {
            self.cos_unsupported += 1;
            return;
        }
        // Sent back byte for byte (DSCP2 still 0, as sent): copied, not
        // filled in — unless the packet really arrived as CS0 / Not-ECT,
        // which reads the same and is taken as not supported too.
        let sent_value = sent.tlv();
        if sent.dscp1 != 0 && value[..4] == sent_value[4..8] {
            self.cos_unsupported += 1;
            return;
        }
        let cos = ClassOfService::from_value([value[0], value[1], value[2], value[3]]);
        self.cos_supported += 1;
        self.forward_changed += u64::from(cos.dscp2 != sent.dscp1);
        self.ecn_forward[usize::from(cos.ecn & 0x03)] += 1;
        self.ecn_forward_changed += u64::from(cos.ecn != sent.ec1);
        self.ecn_refused += u64::from(cos.rpe == RPE_UNABLE);
        if let Some(tos) = tos {
            let expected = if cos.rp == 0 { cos.dscp1 } else { cos.dscp2 };
            self.reverse_judged += 1;
            self.reverse_changed += u64::from(tos >> 2 != expected);
            // The ECN the reflector says the reply left with.
            let ecn = match cos.rpe {
                RPE_SET => Some(cos.ec1),
                RPE_UNABLE => Some(0),
                _ => None,
            };
            if let Some(ecn) = ecn {
                self.ecn_reverse_judged += 1;
                self.ecn_reverse_changed += u64::from(tos & 0x03 != ecn);
            }
        }
    }

    /// This flow's loss by direction, given its books' `lost` and
    /// `in_flight`: (forward, reverse, unknown), or `None` when the reflector
    /// is stateless and something was lost.
    ///
    /// A stateful reflector numbers what it receives: the reply with its
    /// highest number r, to our packet s, says it received r + 1 packets of
    /// our first s + 1 (forward: the rest), and every reply we got carries a
    /// number up to r (reverse: r + 1 minus those). Packets after s are lost
    /// one way or the other, nobody can say which.
    fn split(&self, lost: u64, in_flight: u64) -> Option<(u64, u64, u64)> {
        match (self.stateful, self.furthest) {
            (true, Some((r, s))) => {
                let reached = r + 1;
                let forward = (s + 1).saturating_sub(reached);
                let reverse = reached.saturating_sub(self.answered);
                Some((forward, reverse, lost.saturating_sub(forward + reverse)))
            }
            // No loss at all: none either way, whatever the reflector.
            _ if lost == 0 && in_flight == 0 => Some((0, 0, 0)),
            _ => None,
        }
    }
}

fn clamp(ns: i128) -> i64 {
    ns.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// The STAMP summary of a run: `run`, and each flow's STAMP figures with
/// its books' lost and in-flight counts.
pub(crate) fn summarize(run: RunSummary, flows: &[(&StampBooks, u64, u64)]) -> StampSummary {
    let mut forward = Owd::new();
    let mut reverse = Owd::new();
    let mut impossible = 0;
    let mut split = Some((0, 0, 0));
    let (mut cos_supported, mut cos_unsupported) = (0, 0);
    let (mut forward_changed, mut reverse_changed, mut reverse_judged) = (0, 0, 0);
    let mut ecn_forward = [0u64; 4];
    let (mut ecn_forward_changed, mut ecn_reverse_changed) = (0, 0);
    let (mut ecn_reverse_judged, mut ecn_refused) = (0, 0);
    let mut follow: Option<FollowBooks> = None;
    let mut answers = TlvAnswers::default();
    for &(books, lost, in_flight) in flows {
        if let Some(theirs) = &books.follow {
            follow.get_or_insert_with(FollowBooks::new).merge(theirs);
        }
        answers.merge(&books.answers);
        forward.merge(&books.forward);
        reverse.merge(&books.reverse);
        impossible += books.impossible;
        split = match (split, books.split(lost, in_flight)) {
            (Some((f, r, u)), Some((f2, r2, u2))) => Some((f + f2, r + r2, u + u2)),
            _ => None,
        };
        cos_supported += books.cos_supported;
        cos_unsupported += books.cos_unsupported;
        forward_changed += books.forward_changed;
        reverse_changed += books.reverse_changed;
        reverse_judged += books.reverse_judged;
        for (sum, n) in ecn_forward.iter_mut().zip(books.ecn_forward) {
            *sum += n;
        }
        ecn_forward_changed += books.ecn_forward_changed;
        ecn_reverse_changed += books.ecn_reverse_changed;
        ecn_reverse_judged += books.ecn_reverse_judged;
        ecn_refused += books.ecn_refused;
    }
    let mode = flows.first().map_or(Mode::Open, |f| f.0.mode);
    // The TLV says something only when every reply carried it filled in.
    let cos = cos_supported > 0 && cos_unsupported == 0;
    StampSummary {
        run,
        stamp_mode: match mode {
            Mode::Open => "unauthenticated",
            Mode::Authenticated => "authenticated",
        },
        owd_forward_us: (impossible == 0).then(|| forward.summary()),
        owd_reverse_us: (impossible == 0).then(|| reverse.summary()),
        owd_invalid: impossible,
        reflector_clock_synchronized: flows.iter().any(|f| f.0.synchronized),
        reflector_clock_error_us: flows
            .iter()
            .filter_map(|f| f.0.their_error_estimate)
            .map(error_estimate_us)
            .max(),
        sender_clock_synchronized: flows
            .first()
            .is_some_and(|f| f.0.our_error_estimate & S_BIT != 0),
        sender_clock_error_us: flows
            .first()
            .map_or(0, |f| error_estimate_us(f.0.our_error_estimate)),
        reflector_stateful: flows.iter().any(|f| f.0.stateful),
        lost_forward: split.map(|s| s.0),
        lost_reverse: split.map(|s| s.1),
        lost_unattributed: split.map(|s| s.2),
        dscp_forward_changed: cos.then_some(forward_changed),
        dscp_reverse_changed: (cos && reverse_judged == cos_supported).then_some(reverse_changed),
        ecn_forward_seen: cos.then(|| (0u8..4).zip(ecn_forward).filter(|&(_, n)| n > 0).collect()),
        ecn_forward_changed: cos.then_some(ecn_forward_changed),
        ecn_reverse_changed: (cos && ecn_reverse_judged == cos_supported)
            .then_some(ecn_reverse_changed),
        ecn_refused: cos.then_some(ecn_refused),
        follow_up: follow.map(|f| f.summary()),
        stamp_tlvs: flows
            .first()
            .map(|f| f.0.tlvs)
            .filter(|t| !t.is_empty())
            .map(|asked| answers.summary(asked)),
    }
}
