//! Platform I/O the standard library lacks, one safe API over two
//! implementations: `linux.rs` (`recvmmsg`/`sendmmsg`, `ppoll`, path-MTU socket
//! options — the crate's only `unsafe` code) and `portable.rs` (std only: one
//! datagram per call, path-MTU options unsupported) for other Unix systems.
//!
//! Building on Linux with `RUSTFLAGS="--cfg udp_echo_portable"` selects the
//! portable one, so CI compiles the code other platforms get.

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
mod linux;
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::{Batch, SendBatch, path_mtu, set_dont_fragment, wait_readable};

#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
mod portable;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::{Batch, SendBatch, path_mtu, set_dont_fragment, wait_readable};

/// This host's interface addresses (for `net::local_addrs`); unsupported off Linux.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
pub use linux::interface_addrs;
#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
pub use portable::interface_addrs;

/// Per-datagram TOS / traffic class: the plain loop's DSCP reflection.
mod tos;
pub use tos::{enable_recv_tos, recv_from_tos, send_to_tos};

/// Whether one syscall can move several datagrams here (`--batch` > 1 pays off).
pub const BATCHING: bool = cfg!(all(target_os = "linux", not(udp_echo_portable)));

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
}
