//! STAMP's 64-bit time stamps: NTP or PTP format, and the error estimate
//! that says which one a packet carries.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub(super) const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The Z bit of the error estimate: PTP time stamps (RFC 8186 §2.3, RFC 8762 §4.2.1).
pub const Z_BIT: u16 = 0x4000;
/// The S bit of the error estimate: the clock is synchronised to UTC externally.
pub const S_BIT: u16 = 0x8000;

/// The wire format of 64-bit time stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// NTP: seconds since 1900 and a 32-bit binary fraction (the default).
    #[default]
    Ntp,
    /// PTPv2 truncated: seconds since 1970 and nanoseconds.
    Ptp,
}

impl TimeFormat {
    /// `t` in this format. Before 1970 reads as 1970.
    pub fn encode(self, t: SystemTime) -> u64 {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        match self {
            TimeFormat::Ntp => {
                let secs = (since.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
                let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
                (secs << 32) | frac
            }
            TimeFormat::Ptp => {
                let secs = since.as_secs() & 0xffff_ffff;
                (secs << 32) | u64::from(since.subsec_nanos())
            }
        }
    }

    /// `later - earlier` in nanoseconds, both in this format; the 32-bit
    /// seconds wrap, so the difference is right within ±68 years.
    pub fn diff_ns(self, later: u64, earlier: u64) -> i64 {
        match self {
            TimeFormat::Ntp => {
                let diff = later.wrapping_sub(earlier) as i64;
                ((i128::from(diff) * 1_000_000_000) >> 32) as i64
            }
            TimeFormat::Ptp => {
                let secs = ((later >> 32) as u32).wrapping_sub((earlier >> 32) as u32) as i32;
                let nanos = i64::from(later as u32) - i64::from(earlier as u32);
                i64::from(secs) * 1_000_000_000 + nanos
            }
        }
    }

    /// The format an error estimate's Z bit names.
    pub fn of_error_estimate(error_estimate: u16) -> TimeFormat {
        if error_estimate & Z_BIT != 0 {
            TimeFormat::Ptp
        } else {
            TimeFormat::Ntp
        }
    }

    /// The error estimate this host sends (RFC 4656 §4.1.2): S clear (the
    /// clock's synchronisation is not known here), Z set for PTP, and
    /// multiplier 1 × 2^(22-32) s ≈ 1 ms, an honest bound for a user-space
    /// time stamp rather than the 233 ps of scale 0.
    pub fn error_estimate(self) -> u16 {
        let z = if self == TimeFormat::Ptp { Z_BIT } else { 0 };
        z | (22 << 8) | 1
    }
}
