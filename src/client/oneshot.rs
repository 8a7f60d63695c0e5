//! One-shot mode: send one payload, wait for its echo, check it byte for byte.
//! Also `--stop`, which sends the empty datagram that asks a server to stop.

use std::time::{Duration, Instant};

use log::info;

use super::Connection;
use crate::error::{Error, Result};
use crate::net;

/// An intact echo and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShotReply {
    /// The reply's bytes, equal to what was sent.
    pub bytes: Vec<u8>,
    /// Round-trip time from just before `send` to just after `recv`.
    pub rtt: Duration,
}

/// Sends `payload` and returns its echo; a reply that differs is an error.
pub fn one_shot(conn: &Connection, payload: &[u8]) -> Result<OneShotReply> {
    let mut buf = vec![0u8; net::RECV_BUFFER_LEN];
    let started = Instant::now();
    conn.send(payload)?;
    info!("sent {} bytes to {}", payload.len(), conn.peer);
    let len = conn.recv(&mut buf, conn.timeout)?;
    let rtt = started.elapsed();
    info!(
        "recv {len} bytes from {} in {:.3} ms",
        conn.peer,
        rtt.as_secs_f64() * 1e3
    );
    let reply = &buf[..len];
    if let Some(first_difference) = first_difference(payload, reply) {
        return Err(Error::Mismatch {
            addr: conn.peer,
            sent: payload.len(),
            received: len,
            first_difference,
        });
    }
    buf.truncate(len);
    Ok(OneShotReply { bytes: buf, rtt })
}

/// The index of the first byte where two payloads differ (the shorter length when
/// one is a prefix of the other); `None` when they are equal.
pub(super) fn first_difference(sent: &[u8], received: &[u8]) -> Option<usize> {
    if sent == received {
        return None;
    }
    Some(
        sent.iter()
            .zip(received)
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| sent.len().min(received.len())),
    )
}

/// How long `--stop` listens after sending, at most: long enough for a closed
/// port's ICMP refusal or a server's echo to come back on any sane path, short
/// enough that scripts calling it are not slowed down.
pub(super) const STOP_CONFIRM_WAIT: Duration = Duration::from_millis(200);

/// Sends the empty stop datagram. Silence afterwards means the server stopped;
/// an ICMP refusal means nobody was there; an echoed empty datagram means the
/// server's `--stop-on-empty` policy does not take stops from us.
pub fn stop_server(conn: &Connection) -> Result<()> {
    conn.send(&[])?;
    info!("sent stop datagram to {}", conn.peer);
    let mut buf = [0u8; 1];
    match conn.recv(&mut buf, STOP_CONFIRM_WAIT.min(conn.timeout)) {
        Err(Error::Timeout { .. }) => Ok(()),
        Ok(_) => Err(Error::StopIgnored { addr: conn.peer }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_finds_changed_bytes_and_length_changes() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"ab"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }
}
