//! Platform I/O the standard library lacks, one safe API over two
//! implementations: `linux.rs` (`recvmmsg`/`sendmmsg`, `ppoll`, path-MTU socket
//! options, and in `linux/gro.rs` UDP GRO receive and GSO echo) and
//! `portable.rs` (std only: one datagram per call, no GRO, path-MTU options
//! unsupported) for other Unix systems; and, whatever the system, `lanes.rs`
//! (SSE2 on x86_64) and [`prefetch`]. This module is the crate's only
//! `unsafe` code.
//!
//! Building on Linux with `RUSTFLAGS="--cfg udp_echo_portable"` selects the
//! portable one, so CI compiles the code other platforms get.

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
mod linux;
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::cmsg::{
    enable_recv_destination, enable_recv_ttl, enable_reply_source, enable_rx_timestamps,
};
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::gro::{GRO_BUFFER_LEN, GroBatch, MAX_GSO_SEGMENTS, enable_gro};
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::gso::{disable_udp_checksums, send_segmented};
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::txstamp::{disable_tx_timestamps, enable_tx_timestamps, read_tx_timestamps};
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::{Batch, SendBatch, path_mtu, set_dont_fragment, wait_readable};

#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
mod portable;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::{
    Batch, SendBatch, disable_tx_timestamps, enable_recv_destination, enable_recv_ttl,
    enable_reply_source, enable_rx_timestamps, enable_tx_timestamps, path_mtu, read_tx_timestamps,
    set_dont_fragment, wait_readable,
};
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::{
    GRO_BUFFER_LEN, GroBatch, MAX_GSO_SEGMENTS, disable_udp_checksums, enable_gro, send_segmented,
};

/// The kernel's word on the system clock (`adjtimex(2)`, read only), for
/// the STAMP error estimate; `None` where it cannot be asked (the portable
/// build).
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::clock::kernel_clock;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::kernel_clock;

/// What `adjtimex(2)` says of the system clock: whether it is synchronised
/// and how far off it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelClock {
    /// `STA_UNSYNC` is set in the status: no synchronisation daemon keeps
    /// the clock (or it gave up).
    pub unsync: bool,
    /// The call returned `TIME_ERROR`: the clock is not synchronised.
    pub time_error: bool,
    /// The maximum error the kernel allows for, µs (`maxerror`: it grows by
    /// 500 ppm between the daemon's updates).
    pub maxerror_us: u64,
    /// The estimated error, µs (`esterror`, set by the daemon).
    pub esterror_us: u64,
}

/// Whether the kernel routes an address to this host (for `net::local_addrs`);
/// netlink on Linux, unsupported elsewhere.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::route::LocalRoutes;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::LocalRoutes;

/// Eight `u32` lanes at once (SSE2 on x86_64): the loop detector's set scans.
mod lanes;
pub use lanes::U32x8;

/// Asks the processor to start loading the cache line that holds `value`,
/// without waiting for it: a hint, with no effect on what the program computes.
/// Hot loops call it for a batch's table lines before they read any, so the
/// cache misses overlap instead of coming one after another. A no-op where
/// there is no such instruction in the baseline target.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 never faults and changes no architectural state; the
    // pointer comes from a live reference anyway. SSE is part of x86_64's
    // baseline, so the instruction exists on every x86_64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::from_ref(value).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The `LISTEN_PID`/`LISTEN_FDS` variables, parsed (pure).
pub mod listen_fds;

/// Socket activation: the descriptors a service manager passed (see
/// `server::service::activation`).
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::take_listen_fds;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::take_listen_fds;

/// Per-datagram TOS / traffic class (and TTL) for single datagrams: the plain
/// loop's DSCP reflection; the batches carry their own control messages.
mod tos;
pub use tos::{
    RecvMeta, enable_recv_tos, recv_from_meta, recv_from_tos, send_to_from, send_to_tos,
};

/// Makes the C allocator (glibc) give every block of `bytes` or more back to
/// the kernel when it is freed, instead of raising that threshold to the
/// largest block freed so far (its default): a fleet's scrape builds a body of
/// tens of MB, and without this the second scrape's stays resident for good.
/// A no-op elsewhere (and in the portable build).
pub fn return_large_blocks(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(udp_echo_portable)))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets one of glibc's allocator tunables; it takes
    // any value (refusing a bad one by returning 0) and touches no memory of ours.
    unsafe {
        libc::mallopt(
            libc::M_MMAP_THRESHOLD,
            libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX),
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(udp_echo_portable))))]
    let _ = bytes;
}

/// `poll(2)` over several descriptors: the metrics endpoint's connections.
mod poll;
pub use poll::{PollFd, poll};

/// A receive buffer this large never truncates a datagram, whatever the family.
pub const RECV_BUFFER_LEN: usize = 65535;

/// Whether one syscall can move several datagrams here (`--batch` > 1 pays off).
pub const BATCHING: bool = cfg!(all(target_os = "linux", not(udp_echo_portable)));

use std::net::SocketAddr;

/// What one echo of a batch achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Datagrams it refused (each skipped, the rest still sent).
    pub errors: usize,
    /// The first refusal, for the log.
    pub first_error: Option<std::io::ErrorKind>,
    /// The errno with which the kernel refused a segmented (`UDP_SEGMENT`) send
    /// in this call, which switched GSO off for this batch from then on: that
    /// message, and every later one, went out as separate datagrams. Set at
    /// most once per batch, so the caller can log it once.
    pub gso_refused: Option<i32>,
    /// Datagrams sent that were to leave from their request's destination
    /// address (a wildcard socket answering from the address asked,
    /// `reply_from_destination`) but left from the kernel's choice: it
    /// reported no destination that can be a source, or refused the one
    /// given (`EINVAL`, `ENETUNREACH`; counted in `source_refused` too) and
    /// took the datagram again without it.
    pub unsourced: usize,
    /// Of `unsourced`, those whose source the kernel refused.
    pub source_refused: usize,
}

impl EchoOutcome {
    /// Books the result of sending one datagram: accepted (with its bytes),
    /// or refused, the first refusal kept for the log.
    pub fn count(&mut self, sent: std::io::Result<usize>) {
        match sent {
            Ok(n) => {
                self.sent += 1;
                self.bytes += n;
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e.kind());
            }
        }
    }
}

/// One buffer of a GRO receive ([`GroBatch`]): one datagram, or several
/// consecutive datagrams of one source that the kernel coalesced (UDP GRO), all
/// of `segment_size` bytes except the last, which may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroBuffer<'a> {
    /// The bytes of all its datagrams, back to back.
    pub data: &'a [u8],
    /// Their source (`None` for a family other than IPv4/IPv6, which a UDP/IP
    /// socket never reports).
    pub source: Option<SocketAddr>,
    /// Bytes per datagram: the kernel's `UDP_GRO` segment size, or the whole
    /// length when it gave none (one datagram); 0 for an empty datagram.
    pub segment_size: usize,
    /// The kernel cut the data or the control message short (`MSG_TRUNC`,
    /// `MSG_CTRUNC`): the last datagram is incomplete or the boundaries are
    /// unknown. With 64 KiB buffers this does not happen; callers drop such a
    /// buffer rather than echo something wrong.
    pub truncated: bool,
}

impl<'a> GroBuffer<'a> {
    /// A buffer of `data` from `source`; `segment_size` as the kernel said
    /// (`None`, 0 or more than the length all mean one datagram).
    pub fn new(
        data: &'a [u8],
        source: Option<SocketAddr>,
        segment_size: Option<usize>,
        truncated: bool,
    ) -> Self {
        let segment_size = segment_size
            .filter(|&size| size > 0)
            .map_or(data.len(), |size| size.min(data.len()));
        GroBuffer {
            data,
            source,
            segment_size,
            truncated,
        }
    }

    /// How many datagrams it holds (an empty datagram is one).
    pub fn datagrams(&self) -> usize {
        if self.data.is_empty() {
            1
        } else {
            self.data.len().div_ceil(self.segment_size)
        }
    }

    /// Datagram `k` (`k < datagrams()`).
    pub fn datagram(&self, k: usize) -> &'a [u8] {
        let start = (k * self.segment_size).min(self.data.len());
        let end = (start + self.segment_size).min(self.data.len());
        &self.data[start..end]
    }
}
