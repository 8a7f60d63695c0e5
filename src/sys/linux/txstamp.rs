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
use std::ptr;

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

/// Turns `socket`'s transmit stamps off (all `SO_TIMESTAMPING` report
/// flags cleared; `SO_TIMESTAMPNS` receive stamps are a separate option and
/// stay). Enabling them again numbers the sends from 0 anew: the kernel
/// resets its counter when `OPT_ID` is newly set.
pub fn disable_tx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt_int(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, 0)
}

/// Error-queue messages per `recvmmsg`.
const PER_CALL: usize = 16;

/// Reads the transmit stamps queued on `socket`'s error queue, without
/// blocking, at most `READ_MAX` (256) per call: `on_stamp(id, ns)` for each,
/// `id` the send counter, `ns` the time on `CLOCK_REALTIME` since the Unix
/// epoch. Other error-queue messages are read and skipped. Returns how many
/// messages it read (0: the queue was empty). Up to `PER_CALL` (16) messages
/// per `recvmmsg`, in buffers on the stack: nothing is allocated.
pub fn read_tx_timestamps(
    socket: &UdpSocket,
    on_stamp: &mut dyn FnMut(u32, u64),
) -> io::Result<usize> {
    let mut controls = [const {
        ErrControl {
            _align: [],
            bytes: [0; ERR_CONTROL_LEN],
        }
    }; PER_CALL];
    // With OPT_TSONLY the messages carry no data; a byte of room anyway.
    let mut data = [[0u8; 1]; PER_CALL];
    let mut iovecs = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; PER_CALL];
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut hdrs: [libc::mmsghdr; PER_CALL] = unsafe { mem::zeroed() };
    let mut read = 0;
    while read < READ_MAX {
        for (i, hdr) in hdrs.iter_mut().enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: data[i].as_mut_ptr().cast(),
                iov_len: data[i].len(),
            };
            hdr.msg_hdr.msg_iov = &mut iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = controls[i].bytes.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = ERR_CONTROL_LEN as _;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        // SAFETY: every header points at its own live iovec (over `data`)
        // and control buffer, all owned by this frame and as long as the
        // lengths given; the kernel writes within them and fills at most
        // PER_CALL headers; no timeout is passed.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                PER_CALL as libc::c_uint,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        let n = match cvt(rc) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for hdr in &hdrs[..n] {
            if let Some((id, ns)) = cmsg::tx_stamp(&hdr.msg_hdr) {
                on_stamp(id, ns);
            }
        }
        read += n;
        if n < PER_CALL {
            break;
        }
    }
    Ok(read)
}
