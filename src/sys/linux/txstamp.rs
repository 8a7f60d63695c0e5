//! Kernel transmit time stamps: `SO_TIMESTAMPING` with a software stamp taken
//! as each datagram leaves for the device (`SOF_TIMESTAMPING_TX_SOFTWARE`),
//! reported on the socket's error queue with only the stamp and a counter
//! (`OPT_TSONLY`, `OPT_ID`), read without blocking (`MSG_ERRQUEUE |
//! MSG_DONTWAIT`).
//!
//! The counter (`ee_data` of the `sock_extended_err`, origin
//! `SO_EE_ORIGIN_TIMESTAMPING`) counts the socket's sends from 0 at enable:
//! one per datagram sent plainly, one per UDP GSO send (the stamp is the
//! first segment's). A queued stamp makes `poll` report `POLLERR`: a caller
//! that waits on the socket must drain the queue in the same loop.
//!
//! `SO_TIMESTAMPNS` receive stamps keep working: `SO_TIMESTAMPING` sets
//! report flags only, and `SOF_TIMESTAMPING_OPT_RX_FILTER` (Linux 6.12+) keeps
//! the software flag from adding an `SCM_TIMESTAMPING` to every receive; on
//! older kernels it does, and the receive control buffers have room for it.

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use super::cmsg;
use super::{cvt, setsockopt_int};

/// Stamps read per call at most, so a flood of them cannot starve the
/// receive path; the rest wait for the next call.
const READ_MAX: usize = 256;

/// Control bytes of one error-queue message: an `SCM_TIMESTAMPING` (three
/// timespecs), an `IP_RECVERR`/`IPV6_RECVERR` (the extended error and the
/// offender's address), an `SCM_TIMESTAMPNS`, with room to spare.
const ERR_CONTROL_LEN: usize = 256;

#[repr(C)]
struct ErrControl {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; ERR_CONTROL_LEN],
}

/// Asks the kernel for a software transmit stamp of every datagram `socket`
/// sends, numbered from 0 (see the module doc). Receive stamps
/// (`SO_TIMESTAMPNS`) are untouched. An error means it cannot.
pub fn enable_tx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let flags = libc::SOF_TIMESTAMPING_TX_SOFTWARE
        | libc::SOF_TIMESTAMPING_SOFTWARE
        | libc::SOF_TIMESTAMPING_OPT_ID
        | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    let set = |flags: libc::c_uint| {
        setsockopt_int(
            socket,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            flags as libc::c_int,
        )
    };
    // Older kernels refuse the filter flag (EINVAL): then without it.
    set(flags | libc::SOF_TIMESTAMPING_OPT_RX_FILTER).or_else(|_| set(flags))
}

/// Reads the transmit stamps queued on `socket`'s error queue, without
/// blocking, at most [`READ_MAX`] per call: `on_stamp(id, ns)` for each,
/// `id` the send counter, `ns` the time on `CLOCK_REALTIME` since the Unix
/// epoch. Other error-queue messages are read and skipped. Returns how many
/// messages it read (0: the queue was empty).
pub fn read_tx_timestamps(
    socket: &UdpSocket,
    on_stamp: &mut dyn FnMut(u32, u64),
) -> io::Result<usize> {
    let mut control = ErrControl {
        _align: [],
        bytes: [0; ERR_CONTROL_LEN],
    };
    // With OPT_TSONLY the message carries no data; a byte of room anyway.
    let mut data = [0u8; 1];
    let mut read = 0;
    while read < READ_MAX {
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.bytes.as_mut_ptr().cast();
        hdr.msg_controllen = ERR_CONTROL_LEN as _;
        // SAFETY: the header points at a live iovec over `data` and at the
        // control buffer, both owned by this frame and at least as long as
        // the lengths given; the kernel writes within them.
        let rc = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut hdr,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        match cvt(rc as libc::c_int) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        read += 1;
        if let Some((id, ns)) = cmsg::tx_stamp(&hdr) {
            on_stamp(id, ns);
        }
    }
    Ok(read)
}
