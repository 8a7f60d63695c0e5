//! Control messages of received datagrams, read with one walker: the kernel
//! receive time stamp (`SO_TIMESTAMPNS`), the `UDP_GRO` segment size and the
//! TOS / traffic class (`IP_RECVTOS` / `IPV6_RECVTCLASS`).
//!
//! With `SO_TIMESTAMPNS` set, every receive carries an `SCM_TIMESTAMPNS`
//! message, the time the kernel took the datagram in (for a GRO buffer, its
//! first datagram), on `CLOCK_REALTIME`. The client measures round trips
//! with it, so the time its own thread took to wake up is not counted as
//! network time. A GRO buffer carries one TOS: the kernel coalesces only
//! datagrams whose IP headers agree on it.

use std::io;
use std::mem;
use std::net::UdpSocket;

use super::setsockopt_int;

/// Where a control message's data starts (`CMSG_LEN(0)`).
// SAFETY: CMSG_LEN is arithmetic on its argument only.
const CONTROL_DATA_OFFSET: usize = unsafe { libc::CMSG_LEN(0) } as usize;

/// Control bytes an `SCM_TIMESTAMPNS` message takes (`CMSG_SPACE(timespec)`).
// SAFETY: as above.
pub(super) const TIMESTAMP_CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::timespec>() as u32) } as usize;

/// Control bytes an int-sized message takes (`UDP_GRO`, `IPV6_TCLASS`; the
/// one-byte `IP_TOS` takes no more).
// SAFETY: as above.
pub(super) const INT_CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) } as usize;

/// Asks the kernel to stamp every datagram `socket` receives
/// (`SO_TIMESTAMPNS`). An error means it cannot; nothing changed then.
pub fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// The data of the first `level`/`kind` message of a received header that
/// holds at least a `T`, read unaligned; `None` when there is none.
fn find<T: Copy>(hdr: &libc::msghdr, level: libc::c_int, kind: libc::c_int) -> Option<T> {
    if hdr.msg_control.is_null() || hdr.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the header's control pointer and length describe a live control
    // buffer as the kernel left it; CMSG_FIRSTHDR only reads them.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: a non-null result of CMSG_FIRSTHDR/CMSG_NXTHDR is a whole
        // cmsghdr inside the control buffer, aligned for it (the buffer is).
        let current = unsafe { &*cmsg };
        if current.cmsg_level == level
            && current.cmsg_type == kind
            && current.cmsg_len as usize >= CONTROL_DATA_OFFSET + mem::size_of::<T>()
        {
            // SAFETY: its length says a T of data follows the header, inside
            // the buffer; read unaligned, so no alignment is assumed, and
            // every T used here (integers, timespec) is valid for any bytes.
            return Some(unsafe { libc::CMSG_DATA(cmsg).cast::<T>().read_unaligned() });
        }
        // SAFETY: `cmsg` is a message of this header's control buffer;
        // CMSG_NXTHDR checks the next one against the buffer's length.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    None
}

/// The kernel's receive time in a received header's control messages, in ns
/// since the Unix epoch on `CLOCK_REALTIME`; `None` without one.
pub(super) fn rx_time_ns(hdr: &libc::msghdr) -> Option<u64> {
    let ts: libc::timespec = find(hdr, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)?;
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The `UDP_GRO` segment size in a received header's control messages.
pub(super) fn gro_segment_size(hdr: &libc::msghdr) -> Option<usize> {
    let size: libc::c_int = find(hdr, libc::SOL_UDP, libc::UDP_GRO)?;
    usize::try_from(size).ok()
}

/// The TOS (IPv4, one byte) or traffic class (IPv6, an int) the datagram
/// arrived with, when the socket asked for it (`enable_recv_tos`).
pub(super) fn tos(hdr: &libc::msghdr) -> Option<u8> {
    find::<u8>(hdr, libc::IPPROTO_IP, libc::IP_TOS).or_else(|| {
        find::<libc::c_int>(hdr, libc::IPPROTO_IPV6, libc::IPV6_TCLASS).map(|t| t as u8)
    })
}
