//! The socket offloads of a flow: probes sent with UDP GSO (several probes in
//! one `UDP_SEGMENT` send), replies received with UDP GRO, kernel receive
//! time stamps, and in ping and rate mode kernel transmit time stamps
//! ([`TxKeys`]), with what to do when the kernel lacks or refuses each.
//!
//! Switches for benchmarks and tests: the environment variable
//! `UDP_ECHO_CLIENT_OFFLOAD`, a comma-separated list of `no-gso`, `no-gro`,
//! `no-kernel-time` (kernel time stamps at both ends off) and `no-tx-time`
//! (transmit stamps only), turns those off (unknown words are ignored);
//! `test-no-udp-checksum` sends without UDP checksums (`SO_NO_CHECK`), which
//! makes the kernel refuse every GSO send with `EINVAL`: a test hook for the
//! fallback.

use std::io;
use std::net::UdpSocket;
use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::Codec;
use crate::client::Connection;
use crate::client::probe::Clock;
use crate::sys::{self, MAX_GSO_SEGMENTS};

/// The environment variable that turns offloads off (see the module doc).
pub(super) const ENV: &str = "UDP_ECHO_CLIENT_OFFLOAD";

/// The UDP payload one GSO send may carry at most: the kernel builds one IP
/// packet of it before splitting, so it must fit the 64 KiB IP length.
const GSO_MAX_BYTES: usize = crate::net::MAX_UDP_PAYLOAD_V4;

/// Which offloads a run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Offloads {
    pub gso: bool,
    pub gro: bool,
    pub kernel_time: bool,
    /// Kernel transmit stamps (ping and rate).
    pub tx_time: bool,
    /// Test hook: UDP checksums off on send, so GSO is refused.
    pub no_checksum: bool,
}

impl Offloads {
    /// All on, except what `UDP_ECHO_CLIENT_OFFLOAD` turns off.
    pub(super) fn from_env() -> Offloads {
        Offloads::parse(std::env::var(ENV).ok().as_deref().unwrap_or(""))
    }

    fn parse(words: &str) -> Offloads {
        let off = |word: &str| words.split(',').any(|w| w.trim() == word);
        Offloads {
            gso: !off("no-gso"),
            gro: !off("no-gro"),
            kernel_time: !off("no-kernel-time"),
            tx_time: !off("no-kernel-time") && !off("no-tx-time"),
            no_checksum: off("test-no-udp-checksum"),
        }
    }
}

/// How many probes of `size` bytes one GSO send carries: 0 when fewer than two fit.
pub(super) fn probes_per_gso_send(size: usize) -> usize {
    let n = (GSO_MAX_BYTES / size.max(1)).min(MAX_GSO_SEGMENTS);
    if n >= 2 { n } else { 0 }
}

/// What a GSO send achieved.
#[derive(Debug)]
pub(super) enum GsoSent {
    /// All `n` probes left.
    All,
    /// The kernel refused GSO (`EIO`/`EINVAL`) after `sent` probes left: GSO
    /// is off for this flow from now on; send the rest the plain way.
    Refused { sent: usize },
    /// Another error after `sent` probes left.
    Failed { sent: usize, error: io::Error },
}

/// A flow's GSO sender: one buffer of up to [`probes_per_gso_send`] probes,
/// filled and sent in place (nothing allocated per probe).
pub(super) struct GsoSender {
    buf: Vec<u8>,
    size: usize,
    per_send: usize,
}

impl GsoSender {
    /// A sender for probes of `size` bytes, or `None` when GSO cannot help.
    pub(super) fn new(size: usize) -> Option<GsoSender> {
        let per_send = probes_per_gso_send(size);
        (per_send > 0).then(|| GsoSender {
            buf: vec![0; per_send * size],
            size,
            per_send,
        })
    }

    /// Probes per `UDP_SEGMENT` send.
    pub(super) fn per_send(&self) -> usize {
        self.per_send
    }

    /// Sends `n` probes numbered from `first`, probe `i` stamped `stamp + i`,
    /// each written by `codec` (same size, its own contents), in as few
    /// `UDP_SEGMENT` sends as it takes.
    pub(super) fn send(
        &mut self,
        socket: &UdpSocket,
        codec: &Codec,
        first: u64,
        stamp: u64,
        n: usize,
    ) -> GsoSent {
        let mut sent = 0;
        while sent < n {
            let count = (n - sent).min(self.per_send);
            let bytes = count * self.size;
            for (i, slot) in self.buf[..bytes].chunks_exact_mut(self.size).enumerate() {
                let k = (sent + i) as u64;
                codec.fill(slot, first + k, stamp + k);
            }
            match sys::send_segmented(socket, None, &self.buf[..bytes], self.size) {
                Ok(_) => sent += count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if count > 1 && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
                {
                    log::warn!("UDP GSO refused ({e}): this flow sends probes one datagram each");
                    return GsoSent::Refused { sent };
                }
                Err(error) => return GsoSent::Failed { sent, error },
            }
        }
        GsoSent::All
    }
}

/// Sets up `conn`'s offloads as `offloads` allow and the kernel accepts:
/// GRO and GSO only for a `bulk` (flood or rate) flow of probes of `size`
/// bytes, kernel receive times for any. Returns the GSO sender, if any.
pub(super) fn set_up(
    conn: &Connection,
    size: usize,
    bulk: bool,
    offloads: Offloads,
) -> (Option<GsoSender>, bool) {
    if offloads.no_checksum {
        if let Err(e) = sys::disable_udp_checksums(&conn.socket, true) {
            log::warn!("cannot turn UDP checksums off: {e}");
        }
    }
    let gso = (bulk && offloads.gso)
        .then(|| GsoSender::new(size))
        .flatten();
    let gro = bulk && offloads.gro && sys::enable_gro(&conn.socket).is_ok();
    let kernel_time = offloads.kernel_time && sys::enable_rx_timestamps(&conn.socket).is_ok();
    let on_off = |on: bool| if on { "on" } else { "off" };
    log::debug!(
        "{}: UDP GSO {}, GRO {}, kernel receive times {}",
        conn.peer,
        on_off(gso.is_some()),
        on_off(gro),
        on_off(kernel_time)
    );
    (gso, gro)
}

/// Sends remembered per flow for matching transmit stamps: far more than
/// are ever waiting for their stamp (the kernel stamps a send as it leaves).
const TX_KEYS: usize = 4096;

/// Which probes each send carried, by the kernel's transmit-stamp counter
/// (`OPT_ID`): it counts the socket's sends from 0, one per datagram sent
/// plainly and one per GSO send (whose stamp is its first segment's, the
/// time the whole send left). A ring of the last [`TX_KEYS`] sends, made
/// once: nothing is allocated per probe.
pub(super) struct TxKeys {
    next: u32,
    /// Sends whose stamps have not been read yet, as far as known.
    awaiting: u32,
    /// `(key, first probe, probes)` at `key % TX_KEYS`.
    ring: Vec<(u32, u64, u32)>,
}

impl TxKeys {
    /// Asks the kernel for `conn`'s transmit stamps; `None` when it cannot.
    pub(super) fn enable(conn: &Connection) -> Option<TxKeys> {
        match sys::enable_tx_timestamps(&conn.socket) {
            Ok(()) => Some(TxKeys::new()),
            Err(e) => {
                log::debug!("{}: no kernel transmit times ({e})", conn.peer);
                None
            }
        }
    }

    fn new() -> TxKeys {
        TxKeys {
            next: 0,
            awaiting: 0,
            ring: vec![(u32::MAX, 0, 0); TX_KEYS],
        }
    }

    /// Books one send that carried probes `first ..first + count`.
    pub(super) fn sent(&mut self, first: u64, count: u32) {
        let key = self.next;
        self.ring[key as usize % TX_KEYS] = (key, first, count);
        self.next = key.wrapping_add(1);
        self.awaiting = self.awaiting.saturating_add(1);
    }

    /// Whether a send may still have its stamp on the error queue.
    pub(super) fn awaiting(&self) -> bool {
        self.awaiting > 0
    }

    /// `n` error-queue messages were read. None at all: nothing awaits
    /// (the kernel queues a stamp as its datagram leaves, so a stamp not
    /// there by now was lost, e.g. to a full queue; a late one still wakes
    /// the wait and is read then).
    pub(super) fn read(&mut self, n: usize) {
        self.awaiting = match n {
            0 => 0,
            n => self
                .awaiting
                .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX)),
        };
    }

    /// The probes the send numbered `key` carried, if still remembered.
    pub(super) fn probes(&self, key: u32) -> Option<(u64, u32)> {
        let (k, first, count) = self.ring[key as usize % TX_KEYS];
        (k == key && count > 0).then_some((first, count))
    }
}

/// Now on `CLOCK_REALTIME`, in ns since the Unix epoch (the kernel's time
/// stamps' clock).
fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The books' clock and `CLOCK_REALTIME` read as one instant: the realtime
/// clock on both sides of the books' clock, again (a few times at most) when
/// the thread was preempted between the reads, which would shift every
/// kernel-stamped round trip of the batch by the delay.
pub(crate) fn clock_pair(clock: &Clock) -> (u64, u64) {
    const TIGHT_NS: u64 = 2_000;
    let mut pair = (0, 0);
    for _ in 0..3 {
        let before = realtime_ns();
        let now = clock.now_ns();
        let after = realtime_ns();
        let spread = after.saturating_sub(before);
        pair = (now, before + spread / 2);
        if spread <= TIGHT_NS {
            break;
        }
    }
    pair
}

/// The books' time of a datagram the kernel stamped `kernel_ns` (realtime),
/// from the books' `now_ns` and `realtime_now_ns` read together just after
/// the receive: now minus the datagram's age. Exact up to the two clock
/// reads, whatever the offset between the clocks. A stamp from the future
/// (the realtime clock stepped back) counts as now.
pub(crate) fn kernel_at(now_ns: u64, realtime_now_ns: u64, kernel_ns: u64) -> u64 {
    now_ns.saturating_sub(realtime_now_ns.saturating_sub(kernel_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_stamp_becomes_now_minus_its_age_in_the_books_clock() {
        // Books' clock at 5 s, realtime at 1.7e9 s: a datagram stamped 30 µs
        // before the realtime read arrived 30 µs before the books' now.
        let real = 1_700_000_000_000_000_000;
        assert_eq!(kernel_at(5_000_000_000, real, real - 30_000), 4_999_970_000);
        assert_eq!(kernel_at(5_000_000_000, real, real), 5_000_000_000);
    }

    #[test]
    fn a_stamp_from_the_future_or_of_great_age_saturates() {
        assert_eq!(kernel_at(1_000, 10_000, 10_500), 1_000);
        assert_eq!(kernel_at(1_000, 10_000, 0), 0);
    }

    #[test]
    fn the_clock_pair_is_read_together() {
        let clock = Clock::new();
        let (now, real) = clock_pair(&clock);
        let (now2, real2) = clock_pair(&clock);
        let (dm, dr) = (now2 - now, real2.wrapping_sub(real) as i64);
        // Both clocks advanced alike between the pairs (1 ms of slack for a
        // busy machine and a stepping realtime clock).
        assert!((dr - dm as i64).abs() < 1_000_000, "{dm} vs {dr}");
    }

    #[test]
    fn transmit_stamps_name_their_send_by_its_counter() {
        let mut keys = TxKeys::new();
        keys.sent(1, 1); // key 0: probe 1
        keys.sent(2, 64); // key 1: a GSO send of probes 2..66
        assert_eq!(keys.probes(0), Some((1, 1)));
        assert_eq!(keys.probes(1), Some((2, 64)));
        assert_eq!(keys.probes(2), None, "not sent yet");
        assert!(keys.awaiting());
        keys.read(1);
        assert!(keys.awaiting(), "one stamp of two read");
        keys.read(0);
        assert!(!keys.awaiting(), "an empty queue: nothing comes any more");
        for i in 0..TX_KEYS as u64 {
            keys.sent(100 + i, 1);
        }
        assert_eq!(keys.probes(1), None, "forgotten: the ring went round");
        assert_eq!(
            keys.probes(TX_KEYS as u32 + 1),
            Some((100 + TX_KEYS as u64 - 1, 1))
        );
    }

    #[test]
    fn gso_carries_two_or_more_probes_and_fits_64_kib() {
        assert_eq!(probes_per_gso_send(64), 64);
        assert_eq!(probes_per_gso_send(1400), 46);
        assert!(probes_per_gso_send(1400) * 1400 <= 65507);
        assert_eq!(probes_per_gso_send(32_000), 2);
        assert_eq!(probes_per_gso_send(40_000), 0);
        assert_eq!(probes_per_gso_send(65_507), 0);
    }

    #[test]
    fn the_environment_switch_turns_offloads_off() {
        let all = Offloads::parse("");
        assert!(all.gso && all.gro && all.kernel_time && !all.no_checksum);
        let some = Offloads::parse("no-gso, no-kernel-time");
        assert!(!some.gso && some.gro && !some.kernel_time && !some.tx_time);
        let tx = Offloads::parse("no-tx-time");
        assert!(tx.kernel_time && !tx.tx_time && all.tx_time);
    }
}
