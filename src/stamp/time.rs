//! STAMP's 64-bit time stamps: NTP or PTP format, and the error estimate
//! that says which one a packet carries.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys::KernelClock;

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
        self.z_bit() | UNKNOWN_ERROR
    }

    fn z_bit(self) -> u16 {
        if self == TimeFormat::Ptp { Z_BIT } else { 0 }
    }

    /// The error estimate of a host whose kernel says `clock` of its clock
    /// (`None`: it cannot be asked, as [`error_estimate`](Self::error_estimate)):
    /// S set only when [`clock_synchronized`] says so, and the kernel's
    /// estimated error (`esterror`) as scale and multiplier, rounded up
    /// ([`encode_error_us`]).
    pub fn error_estimate_of(self, clock: Option<KernelClock>) -> u16 {
        match clock {
            None => self.error_estimate(),
            Some(clock) => {
                let s = if clock_synchronized(&clock) { S_BIT } else { 0 };
                s | self.z_bit() | encode_error_us(clock.esterror_us)
            }
        }
    }
}

/// Scale 22, multiplier 1: 2^(22-32) s ≈ 1 ms, the error estimate where the
/// kernel cannot be asked — an honest bound for a user-space time stamp
/// rather than the 233 ps of scale 0.
const UNKNOWN_ERROR: u16 = (22 << 8) | 1;

/// The largest `maxerror` (µs) with which a clock still counts as
/// synchronised: 100 ms. The kernel lets `maxerror` grow by 500 ppm between
/// a synchronisation daemon's updates (to 16 s, where it sets `STA_UNSYNC`
/// itself), so a daemon that stopped updating loses the S bit within about
/// 3 minutes instead of 9 hours.
pub const MAX_SYNC_ERROR_US: u64 = 100_000;

/// Whether the kernel says the clock is synchronised: `STA_UNSYNC` clear,
/// `adjtimex` not returning `TIME_ERROR`, and `maxerror` at most
/// [`MAX_SYNC_ERROR_US`].
pub fn clock_synchronized(clock: &KernelClock) -> bool {
    !clock.unsync && !clock.time_error && clock.maxerror_us <= MAX_SYNC_ERROR_US
}

/// An error of `us` µs as RFC 4656 §4.1.2's Scale (6 bits) and Multiplier
/// (8 bits) — error = Multiplier × 2^(Scale − 32) s — in the low 14 bits:
/// the smallest value that representation has that is ≥ `us` (multiplier at
/// least 1; past the largest, 255 × 2^31 s, the largest).
pub fn encode_error_us(us: u64) -> u16 {
    // In units of 2^-32 s, rounded up.
    let units = (u128::from(us) << 32).div_ceil(1_000_000).max(1);
    for scale in 0..64u32 {
        let multiplier = units.div_ceil(1u128 << scale);
        if multiplier <= 255 {
            return ((scale as u16) << 8) | multiplier as u16;
        }
    }
    (63 << 8) | 255
}

/// An error estimate's error (Scale and Multiplier) in µs, rounded up.
pub fn error_estimate_us(error_estimate: u16) -> u64 {
    let scale = u32::from((error_estimate >> 8) & 0x3f);
    let multiplier = u128::from(error_estimate & 0xff);
    let us = ((multiplier << scale) * 1_000_000).div_ceil(1 << 32);
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// The host's error estimate, from the kernel at most once a second
/// (`adjtimex` is a syscall: never one per datagram).
#[derive(Debug, Clone, Copy)]
pub struct ClockWatch {
    format: TimeFormat,
    /// The Unix second of the last reading (`u32::MAX`: none yet).
    read_at: u32,
    error_estimate: u16,
}

impl ClockWatch {
    /// A watch for time stamps in `format`; the kernel is asked at the first
    /// [`at`](Self::at).
    pub fn new(format: TimeFormat) -> ClockWatch {
        ClockWatch {
            format,
            read_at: u32::MAX,
            error_estimate: format.error_estimate(),
        }
    }

    /// The error estimate at Unix second `unix_secs` (mod 2^32): the kernel
    /// is asked again when the second differs from the last reading's.
    #[inline]
    pub fn at(&mut self, unix_secs: u32) -> u16 {
        if unix_secs != self.read_at {
            self.read_at = unix_secs;
            self.error_estimate = self.format.error_estimate_of(crate::sys::kernel_clock());
        }
        self.error_estimate
    }
}
