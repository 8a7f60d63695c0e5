//! The kernel's socket-buffer limits from `/proc/sys/net/core/`.
//!
//! Reading and parsing are separate: `parse_value` is pure and tested; `read_from`
//! only opens files. A missing or unreadable file (non-Linux, a container without
//! `/proc`) is `None`, reported as "unknown", never an error.

use std::fmt;
use std::path::Path;

/// Where Linux publishes the core socket limits.
pub const PROC_NET_CORE: &str = "/proc/sys/net/core";

/// The compile-time `SOMAXCONN` of the C library, shown beside `somaxconn` as the
/// seed did (it asserted they were equal; here a difference is only a note).
pub const SOMAXCONN: i32 = libc::SOMAXCONN;

/// The limits that decide what `SO_RCVBUF`/`SO_SNDBUF` requests are granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Largest `SO_RCVBUF` an unprivileged request gets, in bytes (`net.core.rmem_max`).
    pub rmem_max: Option<u64>,
    /// Largest `SO_SNDBUF` an unprivileged request gets, in bytes (`net.core.wmem_max`).
    pub wmem_max: Option<u64>,
    /// Receive buffer of a socket that asks for nothing, in bytes.
    pub rmem_default: Option<u64>,
    /// Send buffer of a socket that asks for nothing, in bytes.
    pub wmem_default: Option<u64>,
    /// TCP listen backlog cap; UDP has no backlog, so it is informational only.
    pub somaxconn: Option<u64>,
}

impl Limits {
    /// Reads the limits of the running kernel.
    pub fn read() -> Limits {
        Limits::read_from(Path::new(PROC_NET_CORE))
    }

    /// Reads the limits from a directory laid out like `/proc/sys/net/core`.
    pub fn read_from(dir: &Path) -> Limits {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|text| parse_value(&text))
        };
        Limits {
            rmem_max: read("rmem_max"),
            wmem_max: read("wmem_max"),
            rmem_default: read("rmem_default"),
            wmem_default: read("wmem_default"),
            somaxconn: read("somaxconn"),
        }
    }

    /// A note when `somaxconn` differs from the compile-time `SOMAXCONN` (a
    /// difference is normal, never a reason to stop); `None` when they agree or one is unknown.
    pub fn somaxconn_note(&self) -> Option<String> {
        let proc_value = self.somaxconn?;
        let compiled = u64::try_from(SOMAXCONN).ok()?;
        (proc_value != compiled).then(|| {
            format!(
                "note: net.core.somaxconn is {proc_value} but this build's SOMAXCONN is {compiled}; harmless for UDP, which has no listen backlog"
            )
        })
    }
}

/// Parses one `/proc/sys` value: a decimal integer with surrounding whitespace.
pub fn parse_value(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Renders a possibly unknown reading.
pub struct Reading(pub Option<u64>);

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("unknown"),
        }
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limits: rmem_max {} wmem_max {} rmem_default {} wmem_default {} somaxconn {} (SOMAXCONN {})",
            Reading(self.rmem_max),
            Reading(self.wmem_max),
            Reading(self.rmem_default),
            Reading(self.wmem_default),
            Reading(self.somaxconn),
            SOMAXCONN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_integers() {
        assert_eq!(parse_value("212992\n"), Some(212992));
        assert_eq!(parse_value("  4096  "), Some(4096));
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("lots"), None);
        assert_eq!(parse_value("-5"), None);
    }

    #[test]
    fn a_missing_directory_gives_unknown_not_a_crash() {
        let limits = Limits::read_from(Path::new("/nonexistent/udp-echo"));
        assert_eq!(limits, Limits::default());
        assert!(limits.to_string().contains("rmem_max unknown"));
        assert_eq!(limits.somaxconn_note(), None);
    }

    #[test]
    fn reads_a_directory_laid_out_like_proc() {
        let dir = std::env::temp_dir().join(format!("udp-echo-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rmem_max"), "8388608\n").unwrap();
        std::fs::write(dir.join("somaxconn"), "12\n").unwrap();
        let limits = Limits::read_from(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(limits.rmem_max, Some(8388608));
        assert_eq!(limits.wmem_max, None);
        assert_eq!(limits.somaxconn, Some(12));
        assert!(
            limits
                .somaxconn_note()
                .unwrap()
                .contains("harmless for UDP")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_kernels_rmem_max() {
        let expected = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|t| parse_value(&t));
        assert_eq!(Limits::read().rmem_max, expected);
    }
}
