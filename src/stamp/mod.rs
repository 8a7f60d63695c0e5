//! STAMP (RFC 8762, with the RFC 8972 session identifier): pure packet
//! encode/decode, time stamp formats, the HMAC of authenticated mode and the
//! session-reflector's state ([`Reflector`], in `reflector.rs`). No socket
//! I/O (the only files read are key files: [`auth`], [`keys`]): the server's
//! loops hand each request to a [`Reflector`] with how it arrived ([`Arrival`]: receive time, TOS,
//! TTL), which turns it into its reply in place; the client's sender builds
//! and reads packets with [`packet`].
//!
//! What is implemented: unauthenticated and authenticated test packets in
//! both roles; stateless (reflector sequence number = sender's) and
//! stateful (per session) reflection; NTP and PTP
//! time stamps; the SSID copied; the sender's TTL / hop limit reported where
//! the socket reads it (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`; 255 otherwise);
//! kernel receive time stamps in the batched and GRO loops (one per GRO
//! buffer: a coalesced burst's datagrams share their first one's); the RFC
//! 8972 TLVs in [`tlv`]: flags rewritten as §4 says (U cleared on what the
//! reflector understood, set on the rest; a malformed TLV flagged M and
//! processing stopped), Extra Padding copied, Timestamp Information and the
//! Class of Service TLV (§4.4) filled in — DSCP2 and ECN as the request
//! arrived, RP 0, the reply sent with DSCP1 and Not-ECT — and in
//! authenticated mode the HMAC TLV checked (I on every TLV when it fails)
//! and the reply's signed in its place. `--tlv-mode ignore` copies the TLVs
//! back untouched. Where the request's TOS cannot be read (the portable
//! build, or a kernel that gives none) a Class of Service TLV is flagged U
//! and copied back as it came, and the reply keeps the default DSCP:
//! without the TOS the reflector can neither report DSCP2 nor honour DSCP1,
//! and a half-filled TLV would tell the sender of a re-marking that never
//! happened. A stateful reflector fills in the Direct Measurement TLV
//! ([`direct`]) from its session table, and every one the Location TLV
//! ([`location`]), and returns the Access Report TLV ([`access`]). A
//! stateful reflector answers the Follow-Up Telemetry TLV ([`followup`])
//! with the kernel transmit time of the session's previous reply, which
//! the loops read from the socket's error queue and hand back through
//! [`Reflector::transmitted`]. RFC 9503's Destination Node Address and
//! Return Path TLVs are answered ([`return_path`]: a Return Address is
//! honoured only for addresses the operator allows, and sets [`Reply::to`];
//! a Control Code asking for no reply is refused as [`Refusal::NoReply`]). Not implemented: the reverse-path
//! ECN fields of draft-ietf-ippm-stamp-cos-ecn (sent as zero).
//!
//! A reply is never longer than its request: a request shorter than the
//! base packet (a TWAMP-Light sender's 14 to 43 bytes, or anything under 112
//! in authenticated mode) is refused as [`Refusal::Short`]. Answering it
//! with the 44-byte base packet, as RFC 8762 §4.6 allows, would make the
//! reflector an amplifier for spoofed sources (a 14-byte request, a 44-byte
//! reply: 3.14×); RFC 8762 §4.6 expects senders to pad to the reflector's
//! size, and every STAMP sender does.

pub mod access;
pub mod auth;
pub mod direct;
pub mod followup;
pub mod keys;
pub mod location;
pub mod packet;
mod reflector;
pub mod return_path;
pub mod sessions;
mod time;
pub mod tlv;

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};

pub use auth::Key;
pub use keys::{KeyDir, KeyRing, KeyView};
pub use packet::{Mode, ReflectedPacket, SenderPacket};
pub use reflector::{Arrival, Reflector, Refusal, Reply, UNKNOWN_TTL, looks_reflected};
pub use time::{
    ClockWatch, MAX_SYNC_ERROR_US, S_BIT, TimeFormat, Z_BIT, clock_synchronized, encode_error_us,
    error_estimate_us,
};

/// The STAMP port (RFC 8762 §4.1): the server's default with `--stamp`.
pub const STAMP_PORT: u16 = 862;

/// STAMP as the command line asks for it, before the key file is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampOptions {
    /// Authenticated mode with the key in this file (hex text or raw bytes).
    pub key_file: Option<PathBuf>,
    /// Reflector: authenticated mode with a key per SSID from this directory
    /// (`--stamp-key-dir`, see [`keys`]), reloaded on SIGHUP.
    pub key_dir: Option<PathBuf>,
    /// Reflector: per-session sequence numbers (`--stamp-stateful`).
    pub stateful: bool,
    /// PTP time stamps instead of NTP (`--stamp-ptp`).
    pub ptp: bool,
    /// Reflector: TLVs copied back unprocessed (`--tlv-mode ignore`).
    pub tlv_ignore: bool,
    /// Reflector: what a Location TLV may reveal (`--stamp-location`).
    pub location: location::Disclosure,
    /// Reflector: the networks a Return Path TLV may send replies to
    /// (`--stamp-return-path-allow`; none by default).
    pub return_allow: return_path::ReturnAllow,
}

impl StampOptions {
    /// The time stamp format asked for.
    pub fn format(&self) -> TimeFormat {
        if self.ptp {
            TimeFormat::Ptp
        } else {
            TimeFormat::Ntp
        }
    }

    /// Reads the key file, if any: `Err(Error::StampKey)` says why it cannot serve.
    pub fn key(&self) -> Result<Option<Key>> {
        self.key_file
            .as_ref()
            .map(|path| {
                Key::read(path).map_err(|problem| Error::StampKey {
                    path: path.clone(),
                    problem,
                })
            })
            .transpose()
    }

    /// The reflector's settings, with the key read.
    pub fn reflector(&self) -> Result<ReflectorConfig> {
        Ok(ReflectorConfig {
            key: self.key()?,
            key_dir: self
                .key_dir
                .as_deref()
                .map(KeyDir::load)
                .transpose()?
                .map(Arc::new),
            stateful: self.stateful,
            format: self.format(),
            tlv_mode: if self.tlv_ignore {
                TlvMode::Ignore
            } else {
                TlvMode::Process
            },
            location: self.location,
            return_allow: self.return_allow.clone(),
            ecn: tlv::EcnPolicy::default(),
            shared_socket: false,
        })
    }
}

/// The session-reflector's settings.
#[derive(Debug, Clone, Default)]
pub struct ReflectorConfig {
    /// Authenticated mode's key; `None` is unauthenticated mode.
    pub key: Option<Key>,
    /// Authenticated mode with a key per SSID (`--stamp-key-dir`); shared by
    /// every loop and the SIGHUP reloader.
    pub key_dir: Option<Arc<KeyDir>>,
    /// Per-session reflector sequence numbers instead of the sender's.
    pub stateful: bool,
    /// The reflector's time stamp format.
    pub format: TimeFormat,
    /// Whether the TLVs are processed (RFC 8972) or copied back as they came.
    pub tlv_mode: TlvMode,
    /// What a Location TLV may reveal (`--stamp-location`).
    pub location: location::Disclosure,
    /// The networks a Return Path TLV may send replies to.
    pub return_allow: return_path::ReturnAllow,
    /// What a Class of Service TLV's EC1 gets (`--stamp-ecn`).
    pub ecn: tlv::EcnPolicy,
    /// Several loops serve one socket (`--exclusive` with threads): its
    /// kernel transmit-stamp counter is theirs together, so no loop asks
    /// for transmit stamps, and Follow-Up Telemetry carries no times.
    pub shared_socket: bool,
}

impl ReflectorConfig {
    /// Whether a loop asks the kernel for its replies' transmit stamps
    /// (once a session sends a Follow-Up Telemetry TLV): a stateful
    /// reflector that processes TLVs, on a socket of its own.
    pub fn wants_tx_stamps(&self) -> bool {
        self.stateful && self.tlv_mode == TlvMode::Process && !self.shared_socket
    }
}

/// What the reflector does with the TLVs after the base packet (`--tlv-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlvMode {
    /// RFC 8972: understood TLVs filled in, flags U, M, I set as the RFC says.
    #[default]
    Process,
    /// Everything after the base packet copied back untouched, flags
    /// included, as a reflector without TLV support (RFC 8762 only) does:
    /// for testing senders.
    Ignore,
}

impl ReflectorConfig {
    /// The mode its key makes.
    pub fn mode(&self) -> Mode {
        if self.key.is_some() || self.key_dir.is_some() {
            Mode::Authenticated
        } else {
            Mode::Open
        }
    }

    /// One line for the server's start-up report.
    pub fn describe(&self) -> String {
        format!(
            "STAMP reflector (RFC 8762/8972): {}, {}, {} time stamps{}",
            match self.mode() {
                Mode::Open => "unauthenticated".to_owned(),
                Mode::Authenticated => match &self.key_dir {
                    Some(dir) => format!(
                        "authenticated (HMAC-SHA-256, keys from {}: {}, reloaded on SIGHUP)",
                        dir.dir().display(),
                        dir.current().describe()
                    ),
                    None => "authenticated (HMAC-SHA-256)".to_owned(),
                },
            },
            if self.stateful {
                "stateful (own sequence numbers per session)"
            } else {
                "stateless"
            },
            match self.format {
                TimeFormat::Ntp => "NTP",
                TimeFormat::Ptp => "PTP",
            },
            match self.tlv_mode {
                TlvMode::Process => "",
                TlvMode::Ignore => ", TLVs copied back unprocessed (--tlv-mode ignore)",
            }
        ) + &self.return_allow.describe()
    }
}

#[cfg(test)]
mod tests;
