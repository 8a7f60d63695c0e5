//! Readiness and status for a service manager: the `sd_notify(3)` protocol.
//! With `NOTIFY_SOCKET` set (a Unix datagram socket path, or `@name` for an
//! abstract one), the server sends `READY=1` once it serves, `STATUS=` lines
//! with its counters, `STOPPING=1` at stop, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` when the manager asks for a watchdog.
//!
//! One datagram per message through std's `UnixDatagram`: no crate, no
//! `unsafe` (abstract addresses use `SocketAddrExt::from_abstract_name`, a
//! Linux-only std API; elsewhere they are reported as unsupported). A message
//! that cannot be sent is the manager's problem, not a reason to stop echoing:
//! callers log it and go on.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::shutdown::Stop;

/// Where the manager listens, parsed from `NOTIFY_SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A socket file.
    Path(std::path::PathBuf),
    /// An abstract socket (`@name`; Linux only), given without the `@`.
    Abstract(Vec<u8>),
}

impl Address {
    /// `NOTIFY_SOCKET`'s value: `/path` or `@abstract`; anything else (empty,
    /// relative, `vsock:`) is `None`, as sd_notify ignores what it cannot use.
    pub fn parse(value: &str) -> Option<Address> {
        if let Some(name) = value.strip_prefix('@') {
            (!name.is_empty()).then(|| Address::Abstract(name.as_bytes().to_vec()))
        } else if value.starts_with('/') {
            Some(Address::Path(value.into()))
        } else {
            None
        }
    }
}

/// A channel to the service manager.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: Address,
}

impl Notifier {
    /// The manager named by `NOTIFY_SOCKET`, or `None` when it is unset or
    /// unusable (not supervised: nothing to tell anyone).
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var("NOTIFY_SOCKET")
            .ok()
            .as_deref()
            .and_then(Address::parse)
        {
            Some(address) => Notifier::new(address).map(Some),
            None => Ok(None),
        }
    }

    /// A channel to `address` (an unbound datagram socket of our own).
    pub fn new(address: Address) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends one message: newline-separated `KEY=value` assignments.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let sent = match &self.address {
            Address::Path(path) => self.socket.send_to(message.as_bytes(), path)?,
            Address::Abstract(name) => self.send_abstract(message.as_bytes(), name)?,
        };
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ))
        }
    }

    #[cfg(target_os = "linux")]
    fn send_abstract(&self, bytes: &[u8], name: &[u8]) -> io::Result<usize> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        self.socket.send_to_addr(bytes, &addr)
    }

    #[cfg(not(target_os = "linux"))]
    fn send_abstract(&self, _bytes: &[u8], _name: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract NOTIFY_SOCKET addresses are Linux-only",
        ))
    }

    /// `READY=1` with a status line: the server is serving.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// A `STATUS=` line (the counters, for `systemctl status`).
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// `STOPPING=1` with a last status line.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)))
    }

    /// Sends `WATCHDOG=1` every `every` until `stop`; logs a failed ping once.
    pub fn watchdog(&self, every: Duration, stop: &Stop) {
        let mut warned = false;
        let mut next = Instant::now();
        loop {
            if let Err(e) = self.send("WATCHDOG=1") {
                if !std::mem::replace(&mut warned, true) {
                    log::warn!("cannot send the watchdog ping to the service manager: {e}");
                }
            }
            next += every;
            if !stop.sleep_until(next) {
                return;
            }
        }
    }
}

/// A status value on one line (the protocol separates assignments by newlines).
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (as
/// `sd_watchdog_enabled` advises), when it is set, positive, and
/// `WATCHDOG_PID` is absent or names this process (`our_pid`).
pub fn watchdog_interval(
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    our_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = watchdog_pid {
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    let usec: u64 = watchdog_usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// [`watchdog_interval`] of this process's environment.
pub fn watchdog_from_env() -> Option<Duration> {
    let var = |name| std::env::var(name).ok();
    watchdog_interval(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert_eq!(
            Address::parse("/run/systemd/notify"),
            Some(Address::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            Address::parse("@sd-notify"),
            Some(Address::Abstract(b"sd-notify".to_vec()))
        );
        for unusable in ["", "@", "relative/path", "vsock:2:1234"] {
            assert_eq!(Address::parse(unusable), None, "{unusable:?}");
        }
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_us_only() {
        let half = Some(Duration::from_secs(5));
        assert_eq!(watchdog_interval(Some("10000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("10000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn messages_reach_a_listening_socket_whole() {
        let dir = std::env::temp_dir().join(format!("udp-echo-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::new(Address::Path(path.clone())).unwrap();
        notifier.ready("serving\non 127.0.0.1:7").unwrap();
        notifier.stopping("stopped").unwrap();
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving on 127.0.0.1:7");
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=stopped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_addresses_work_on_linux() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("udp-echo-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::new(Address::parse(&format!("@{name}")).unwrap()).unwrap();
        notifier.status("42 datagrams").unwrap();
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=42 datagrams");
    }
}
