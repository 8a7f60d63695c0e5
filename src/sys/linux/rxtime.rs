//! Kernel receive time stamps (`SO_TIMESTAMPNS`): with the option set, every
//! receive carries an `SCM_TIMESTAMPNS` control message, the time the kernel
//! took the datagram in (for a GRO buffer, its first datagram), on
//! `CLOCK_REALTIME`. The client measures round trips with it, so the time its
//! own thread took to wake up is not counted as network time.

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

/// Asks the kernel to stamp every datagram `socket` receives
/// (`SO_TIMESTAMPNS`). An error means it cannot; nothing changed then.
pub fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// The kernel's receive time in a received header's control messages, in ns
/// since the Unix epoch on `CLOCK_REALTIME`; `None` without one.
pub(super) fn rx_time_ns(hdr: &libc::msghdr) -> Option<u64> {
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
        if current.cmsg_level == libc::SOL_SOCKET
            && current.cmsg_type == libc::SCM_TIMESTAMPNS
            && current.cmsg_len as usize >= CONTROL_DATA_OFFSET + mem::size_of::<libc::timespec>()
        {
            // SAFETY: its length says a timespec of data follows the header,
            // inside the buffer; read unaligned, so no alignment is assumed.
            let ts = unsafe {
                libc::CMSG_DATA(cmsg)
                    .cast::<libc::timespec>()
                    .read_unaligned()
            };
            let secs = u64::try_from(ts.tv_sec).ok()?;
            let nanos = u64::try_from(ts.tv_nsec).ok()?;
            return secs.checked_mul(1_000_000_000)?.checked_add(nanos);
        }
        // SAFETY: `cmsg` is a message of this header's control buffer;
        // CMSG_NXTHDR checks the next one against the buffer's length.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    None
}
