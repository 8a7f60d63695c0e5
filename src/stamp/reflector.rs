//! The session-reflector: what it refuses ([`Refusal`]), the per-request
//! turn of a test packet into its reply in place ([`Reflector`], given how
//! the request arrived: [`Arrival`]), and the check that a packet is
//! already a reflection ([`looks_reflected`]).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::sessions::{MAX_SESSIONS, SESSION_IDLE_NS, Sessions};
use super::time::NTP_UNIX_OFFSET;
use super::*;

/// Why a request gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Shorter than the base packet: its reply would be longer than it.
    Short,
    /// A wrong HMAC.
    Malformed,
    /// A reflected STAMP packet, not a sender's: a reflector's reply coming
    /// back (our own through an echo service, or another reflector's).
    Reflected,
    /// The sender asked for no reply (a Return Path TLV's Control Code of
    /// 0, RFC 9503 §4.1.1), and gets none: not a fault, but counted as the
    /// refusals are, so the datagram is accounted for.
    NoReply,
}

/// How close (s) a packet's receive and sender time stamps must be to this
/// host's clock, in either time format, for it to be taken for a reflected
/// packet: a day, so that two reflectors whose clocks disagree by hours, or
/// that write different formats, still cannot keep a packet bouncing.
const REFLECTED_WINDOW_SECS: u32 = 86_400;

/// How close (s) the copied sender time stamp must be to this host's clock to
/// be taken for this reflector's own transmit time coming back: a loop goes
/// round in well under a minute.
const OWN_TIME_WINDOW_SECS: u32 = 60;

/// One loop's session-reflector: its settings and, when stateful, its sessions.
#[derive(Debug)]
pub struct Reflector {
    config: ReflectorConfig,
    /// This loop's view of `--stamp-key-dir`'s keys.
    keys: Option<KeyView>,
    /// The socket's own address, for the Location TLV (see [`Reflector::with_local`]).
    local: Option<SocketAddr>,
    sessions: Option<Sessions>,
    /// The S bit and error from the kernel, read once a second.
    clock: ClockWatch,
    /// The last receive and transmit times and their wire form: the batched
    /// loops hand every datagram of a buffer the same two times, so each is
    /// encoded once per buffer, not once per datagram.
    encoded: [(SystemTime, u64); 2],
    /// The receive time's Unix seconds (mod 2^32), beside `encoded[0]`.
    received_secs: u32,
}

impl Reflector {
    /// A reflector; stateful ones take their session table's memory now.
    pub fn new(config: ReflectorConfig) -> Reflector {
        Reflector {
            keys: config.key_dir.clone().map(KeyView::new),
            local: None,
            sessions: config
                .stateful
                .then(|| Sessions::new(MAX_SESSIONS, SESSION_IDLE_NS)),
            clock: ClockWatch::new(config.format),
            encoded: [(UNIX_EPOCH, config.format.encode(UNIX_EPOCH)); 2],
            received_secs: 0,
            config,
        }
    }

    /// The reflector of a socket bound to `local`: Location TLVs are then
    /// answered (the destination port, and the destination address unless
    /// `local` is a wildcard); without it they are flagged U.
    pub fn with_local(mut self, local: SocketAddr) -> Reflector {
        self.local = Some(local);
        self
    }

    /// Builds the reply to `request` from `source` into `out` and returns its
    /// length: the request's. `received` is the receive time, `now_ns` a
    /// monotonic clock for session expiry, `ttl` the request's TTL (255 when
    /// unknown). The reflector's transmit time stamp is read here, just
    /// before the send. `out` must hold `request.len()` bytes. The same as
    /// copying
    /// the request into `out` and calling [`reflect_in_place`](Self::reflect_in_place):
    /// the tests' way in, since every loop reflects in place.
    #[cfg(test)]
    pub(crate) fn reflect(
        &mut self,
        request: &[u8],
        source: SocketAddr,
        received: SystemTime,
        now_ns: u64,
        ttl: u8,
        out: &mut [u8],
    ) -> Result<usize, Refusal> {
        out[..request.len()].copy_from_slice(request);
        let arrival = Arrival {
            received,
            tos: None,
            ttl: Some(ttl),
            destination: None,
        };
        self.reflect_in_place(
            &mut out[..request.len()],
            source,
            &arrival,
            SystemTime::now(),
            now_ns,
        )
        .map(|reply| reply.len)
    }

    /// Turns the request in `buf` into its reply in place and says how to
    /// send it: the reply takes exactly the request's place, so it is never
    /// longer (a request shorter than the base packet is refused as
    /// [`Refusal::Short`]). Nothing is written before the request has passed
    /// every check (length, HMAC, not a reflected packet): a refused request
    /// is left as it came, except one whose Return Path asks for no reply
    /// ([`Refusal::NoReply`]), known only once its TLVs were walked. `transmit` is the reflector's transmit time stamp
    /// (taken just before the reply's batch goes out), `now_ns` a monotonic
    /// clock for session expiry.
    pub fn reflect_in_place(
        &mut self,
        buf: &mut [u8],
        source: SocketAddr,
        arrival: &Arrival,
        transmit: SystemTime,
        now_ns: u64,
    ) -> Result<Reply, Refusal> {
        let mode = self.config.mode();
        let base = mode.base_len();
        if buf.len() < base {
            return Err(Refusal::Short);
        }
        let request = &*buf;
        let sender = SenderPacket::decode(mode, request).ok_or(Refusal::Short)?;
        // Both times first: `encode` borrows the whole reflector, the key
        // below borrows its key view.
        let receive_timestamp = self.encode(0, arrival.received);
        let transmit_timestamp = self.encode(1, transmit);
        if let Some(view) = &mut self.keys {
            view.refresh();
        }
        let key = match &self.keys {
            // No key for this SSID and no default: it cannot be verified.
            Some(view) => Some(view.get(sender.ssid).ok_or(Refusal::Malformed)?),
            None => self.config.key.as_ref(),
        };
        if let Some(key) = key {
            if !key.verify(request) {
                return Err(Refusal::Malformed);
            }
        }
        if looks_reflected(mode, request, source.port(), self.received_secs) {
            return Err(Refusal::Reflected);
        }
        let len = buf.len();
        let (seq, previous_tx_ns) = match &mut self.sessions {
            Some(sessions) => sessions.next_with_previous(source, sender.ssid, now_ns),
            None => (sender.seq, None),
        };
        let format = self.config.format;
        let walk = match self.config.tlv_mode {
            // No TLV bytes, nothing to walk: not even the context is built
            // (it was 4% of a reflector's time at window 256, per packet).
            TlvMode::Process if len > base => tlv::reflect_tlvs(
                &mut buf[base..],
                &tlv::TlvContext {
                    arrived_tos: arrival.tos,
                    ecn_policy: self.config.ecn,
                    timestamp_info: tlv::TimestampInfo::REFLECTOR,
                    key,
                    seq: sender.seq.to_be_bytes(),
                    session: self
                        .sessions
                        .is_some()
                        .then(|| direct::SessionCounts::of_session_seq(seq)),
                    location: self.local.map(|local| location::Seen {
                        source,
                        // The kernel's word for a wildcard-bound socket.
                        local: match arrival.destination {
                            Some(ip) => SocketAddr::new(ip, local.port()),
                            None => local,
                        },
                        disclose: self.config.location,
                    }),
                    sent_to: arrival
                        .destination
                        .or_else(|| self.local.map(|l| l.ip()).filter(|ip| !ip.is_unspecified())),
                    return_path: Some((source, &self.config.return_allow)),
                    follow_up: self.sessions.is_some().then(|| {
                        followup::FollowUp::previous(
                            seq,
                            previous_tx_ns.map(|ns| {
                                format.encode(UNIX_EPOCH + std::time::Duration::from_nanos(ns))
                            }),
                        )
                    }),
                },
            ),
            TlvMode::Process | TlvMode::Ignore => tlv::TlvWalk::default(),
        };
        if walk.no_reply {
            // Not a reply of the session: its numbering goes on as if the
            // request had not come, so a forged one cannot disturb it.
            if let Some(sessions) = &mut self.sessions {
                sessions.unsent(source, sender.ssid, seq, previous_tx_ns);
            }
            return Err(Refusal::NoReply);
        }
        let reply = ReflectedPacket {
            seq,
            timestamp: transmit_timestamp,
            error_estimate: self.clock.at(self.received_secs),
            ssid: sender.ssid,
            receive_timestamp,
            sender_seq: sender.seq,
            sender_timestamp: sender.timestamp,
            sender_error_estimate: sender.error_estimate,
            sender_ttl: arrival.ttl.unwrap_or(UNKNOWN_TTL),
        };
        reply.encode(mode, buf);
        if let Some(key) = key {
            if let Some(at) = walk.sign_hmac_at {
                let (head, tlvs) = buf.split_at_mut(base);
                tlv::sign_hmac_tlv(tlvs, at, &head[..4], key);
            }
            key.sign(buf);
        }
        Ok(Reply {
            len,
            tos: walk.reply_tos,
            to: walk.reply_to,
            follow_up: (walk.follow_up && self.sessions.is_some()).then_some(followup::TxTag {
                source,
                ssid: sender.ssid,
                seq,
            }),
        })
    }

    /// The kernel transmit time `tx_ns` (ns since the Unix epoch) of the
    /// reply `tag` names, for the next Follow-Up Telemetry TLV of its
    /// session (kept only while that reply is the session's last).
    pub fn transmitted(&mut self, tag: followup::TxTag, tx_ns: u64) {
        if let Some(sessions) = &mut self.sessions {
            sessions.transmitted(tag.source, tag.ssid, tag.seq, tx_ns);
        }
    }
}

impl Reflector {
    /// `t` in the reflector's format, through cache entry `which`.
    #[inline]
    fn encode(&mut self, which: usize, t: SystemTime) -> u64 {
        let (at, wire) = &mut self.encoded[which];
        if *at != t {
            *at = t;
            *wire = self.config.format.encode(t);
            if which == 0 {
                let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                self.received_secs = secs as u32;
            }
        }
        *wire
    }
}

/// The sender TTL a reply reports when the request's is not known: 255
/// (the socket did not get `IP_RECVTTL`, or this platform has none).
pub const UNKNOWN_TTL: u8 = 255;

/// How a request arrived, as far as the socket could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its receive time: the kernel's stamp where there is one.
    pub received: SystemTime,
    /// Its TOS / traffic class byte (DSCP and ECN), when the kernel said.
    pub tos: Option<u8>,
    /// Its TTL / hop limit, when the kernel said.
    pub ttl: Option<u8>,
    /// The address it was sent to, when the kernel said (`IP_PKTINFO`, asked
    /// for on wildcard-bound sockets): the Location TLV's destination.
    pub destination: Option<std::net::IpAddr>,
}

/// A reply built by [`Reflector::reflect_in_place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Its length in bytes.
    pub len: usize,
    /// The TOS byte it must be sent with, when the request asked for one (a
    /// Class of Service TLV's DSCP1, ECN Not-ECT); `None`: as any echo, the
    /// request's DSCP.
    pub tos: Option<u8>,
    /// Where it goes when not to the request's source: a Return Path TLV's
    /// Return Address the operator allows (RFC 9503 §4).
    pub to: Option<SocketAddr>,
    /// Its session asked for follow-up (a Follow-Up Telemetry TLV, stateful
    /// reflector): the send's kernel transmit stamp belongs to this reply,
    /// for [`Reflector::transmitted`].
    pub follow_up: Option<followup::TxTag>,
}

/// Whether `request` is a reflected packet rather than a sender's. Two fields
/// are MBZ in a sender's packet and time stamps in a reply: the receive time
/// stamp and the copied sender time stamp. Any time stamp is read as NTP and
/// as PTP, whatever this reflector writes, and compared with
/// `now_unix_secs` (Unix seconds, mod 2^32):
///
/// - From the STAMP port (862), where reflectors live, either field set is
///   enough: a session-sender there follows RFC 8762 and leaves them zero,
///   and two reflectors must never answer each other.
/// - The copied sender time stamp within a minute of now: this reflector's
///   own transmit time coming back, i.e. a loop through another reflector,
///   whatever that one's clock says. Random TWAMP-Light padding does that
///   with odds of about 10^-8.
/// - Both fields within a day of now: another reflector's reply (odds for
///   random padding about 10^-9).
///
/// A packet too short to hold both fields is never called a reply here;
/// the reflector refuses it before asking, as shorter than the base packet
/// ([`Refusal::Short`]), so an echo that truncates replies (to 30 bytes,
/// say) cannot keep one bouncing either.
pub fn looks_reflected(mode: Mode, request: &[u8], source_port: u16, now_unix_secs: u32) -> bool {
    let (receive_at, sender_at) = mode.reflected_timestamps_at();
    if request.len() < sender_at + 8 {
        return false;
    }
    let field = |at: usize| u64::from_be_bytes(request[at..at + 8].try_into().unwrap_or([0; 8]));
    let (receive, sender) = (field(receive_at), field(sender_at));
    if source_port == STAMP_PORT {
        return receive != 0 || sender != 0;
    }
    let recent = |t: u64, window| t != 0 && is_recent(t, now_unix_secs, window);
    recent(sender, OWN_TIME_WINDOW_SECS)
        || (recent(receive, REFLECTED_WINDOW_SECS) && recent(sender, REFLECTED_WINDOW_SECS))
}

/// Whether time stamp `t` is within `window` seconds of `now_unix_secs` as
/// NTP or as PTP (its seconds compared mod 2^32, so the NTP era does not matter).
fn is_recent(t: u64, now_unix_secs: u32, window: u32) -> bool {
    let secs = (t >> 32) as u32;
    let near = |unix: u32| (unix.wrapping_sub(now_unix_secs) as i32).unsigned_abs() < window;
    let ntp = near(secs.wrapping_sub(NTP_UNIX_OFFSET as u32));
    let ptp = (t as u32) < 1_000_000_000 && near(secs);
    ntp || ptp
}
