//! Linux: the syscalls that neither std nor socket2 offer, behind a safe API —
//! the crate's only `unsafe` code. Batched UDP I/O with `recvmmsg(2)`/
//! `sendmmsg(2)`, `ppoll(2)` with nanosecond timeouts, and the path-MTU options.
//!
//! [`Batch`] owns preallocated buffers for `capacity` datagrams of up to 65535
//! bytes, their source addresses and the kernel's message headers; nothing is
//! allocated per datagram. A receive fills up to `capacity` slots in one syscall
//! (`MSG_WAITFORONE`: block for the first datagram, then take only what is already
//! queued, so a lone datagram is answered at once). An echo sends a chosen subset
//! of the slots back to their own sources in one `sendmmsg`, each with the TOS
//! the caller gives it as a control message on that message alone (the
//! request's DSCP, reflected), retrying the rest after a partial send and
//! skipping (and counting) a message the kernel refuses.
//!
//! The headers point into the buffers; both live in `Vec`s whose heap storage never
//! moves after `new`, so the pointers stay valid for the life of the `Batch`.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use cmsg::RECV_CONTROL_LEN;

mod batch;
pub(super) mod clock;
pub(super) mod cmsg;
pub(super) mod gro;
pub(super) mod gso;
mod listen_fds;
mod pmtu;
pub(super) mod route;
pub(super) mod txstamp;

pub use batch::Batch;
use batch::{Source, append_source, source_refusal};
pub use listen_fds::take_listen_fds;
#[cfg(test)]
use listen_fds::{only_thread, open_files_limit, threads_of};
pub use pmtu::{path_mtu, set_dont_fragment};

/// Probes to send on a connected socket, `capacity` at a time, in one `sendmmsg`.
///
/// The caller writes each datagram into [`slot_mut`](Self::slot_mut); the slots
/// and headers are allocated once. The headers point into `iovecs` and the
/// iovecs into `storage` as in [`Batch`], and the same reasoning makes it
/// sound: neither `Vec` is ever reallocated, and `slot_mut` writes payload
/// bytes through `&mut self` only between `sendmmsg` calls, never the iovecs.
pub struct SendBatch {
    storage: Vec<u8>,
    len: usize,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// Room for `capacity` datagrams of `len` bytes each.
    pub fn new(capacity: usize, len: usize) -> SendBatch {
        let capacity = capacity.max(1);
        let mut batch = SendBatch {
            storage: vec![0u8; capacity * len.max(1)],
            len,
            iovecs: Vec::with_capacity(capacity),
            hdrs: Vec::with_capacity(capacity),
        };
        for slot in batch.storage.chunks_exact_mut(len.max(1)) {
            batch.iovecs.push(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: len,
            });
        }
        for i in 0..capacity {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) header.
            let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
            hdr.msg_hdr.msg_iov = ptr::from_mut(&mut batch.iovecs[i]);
            hdr.msg_hdr.msg_iovlen = 1;
            batch.hdrs.push(hdr);
        }
        batch
    }

    /// How many datagrams one call can send.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// The bytes of datagram `i`.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.storage[i * self.len..(i + 1) * self.len]
    }

    /// Sends datagrams `from..to` to the socket's connected peer; returns how
    /// many the kernel took (fewer on a partial send), or the first one's error.
    pub fn send(&mut self, socket: &UdpSocket, from: usize, to: usize) -> io::Result<usize> {
        let hdrs = &mut self.hdrs[from..to];
        let vlen = libc::c_uint::try_from(hdrs.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: each header has no address (the socket is connected) and one
        // iovec covering a live `len`-byte slot; `vlen` does not exceed the slice.
        let n = cvt(unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), vlen, 0) })?;
        Ok(n as usize)
    }
}

/// Waits until `socket` has a datagram (or an error) queued, at most `timeout`.
/// Returns false on timeout. Nanosecond precision (`ppoll`), so paced senders
/// can sleep exactly until their next send instead of spinning.
pub fn wait_readable(socket: &UdpSocket, timeout: std::time::Duration) -> io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd and a valid timespec, both live for the call; no
    // signal mask is passed.
    match cvt(unsafe { libc::ppoll(&mut fds, 1, &ts, ptr::null()) }) {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(err) => Err(err),
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
    }
}

/// Turns a libc return value into an `io::Result`: a negative value (`-1`)
/// becomes the thread's `errno` as an [`io::Error`], anything else is passed
/// through. Call it directly on the syscall's result, before anything else can
/// overwrite `errno` (socket2's `syscall!` does the same).
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setsockopt_int(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live c_int and its exact size is passed.
    cvt(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn getsockopt_int(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live c_int and
    // updates `len`, both owned by this frame.
    cvt(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

// SAFETY: as for `Batch` (in `batch.rs`): the raw pointers in the headers
// and iovecs point only into heap buffers owned by the same struct.
unsafe impl Send for SendBatch {}

/// Points one iovec and one `recvmmsg` header per slot of `storage`
/// (`slot_len` bytes each) at that slot, its `addrs` entry and its
/// `controls` entry: the receive side of [`Batch`] and
/// [`GroBatch`](gro::GroBatch), set up once. The headers hold raw pointers
/// into all four, so their owner must neither move nor resize them after.
fn point_recv_headers(
    storage: &mut [u8],
    slot_len: usize,
    addrs: &mut [libc::sockaddr_storage],
    controls: &mut [cmsg::RecvControl],
    iovecs: &mut Vec<libc::iovec>,
    hdrs: &mut Vec<libc::mmsghdr>,
) {
    for slot in storage.chunks_exact_mut(slot_len) {
        iovecs.push(libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot_len,
        });
    }
    for ((addr, control), iovec) in addrs.iter_mut().zip(controls).zip(iovecs.iter_mut()) {
        // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) header.
        let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        hdr.msg_hdr.msg_name = ptr::from_mut(addr).cast();
        hdr.msg_hdr.msg_namelen = sockaddr_storage_len();
        hdr.msg_hdr.msg_iov = ptr::from_mut(iovec);
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = ptr::from_mut(control).cast();
        hdr.msg_hdr.msg_controllen = RECV_CONTROL_LEN as _;
        hdrs.push(hdr);
    }
}

/// One `recvmmsg` into `hdrs`, readied first by [`reset_for_recv`] for
/// slots of `buffer_len` bytes: the one receive call of [`Batch`] and
/// [`GroBatch`](gro::GroBatch). Returns how many headers were filled.
///
/// # Safety
///
/// Each header must point at a live `sockaddr_storage`, at its iovec in
/// `iovecs` whose base addresses a live buffer of at least `buffer_len`
/// bytes, and at a live control buffer of at least [`RECV_CONTROL_LEN`]
/// bytes; none of them may be borrowed elsewhere during the call.
unsafe fn recv_batch(
    socket: &UdpSocket,
    hdrs: &mut [libc::mmsghdr],
    iovecs: &mut [libc::iovec],
    buffer_len: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    reset_for_recv(hdrs, iovecs, buffer_len);
    let vlen = libc::c_uint::try_from(hdrs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: the caller's contract: every header points at live buffers of
    // the lengths `reset_for_recv` just wrote into it; the kernel writes at
    // most that much into each and no more than `vlen` headers.
    let n = cvt(unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            vlen,
            flags as _,
            ptr::null_mut(),
        )
    })?;
    Ok(n as usize)
}

/// Readies receive headers for the next `recvmmsg`: every length back to its
/// buffer's full size (`buffer_len` bytes of data, a whole `RecvControl`, a
/// `sockaddr_storage`), flags and results cleared. What the headers point to
/// is not touched: only lengths within those buffers are written.
fn reset_for_recv(hdrs: &mut [libc::mmsghdr], iovecs: &mut [libc::iovec], buffer_len: usize) {
    for (hdr, iov) in hdrs.iter_mut().zip(iovecs) {
        hdr.msg_hdr.msg_namelen = sockaddr_storage_len();
        hdr.msg_hdr.msg_controllen = RECV_CONTROL_LEN as _;
        hdr.msg_hdr.msg_flags = 0;
        hdr.msg_len = 0;
        iov.iov_len = buffer_len;
    }
}

fn sockaddr_storage_len() -> libc::socklen_t {
    mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
}

/// Reads an IPv4 or IPv6 socket address out of a kernel-filled `sockaddr_storage`.
fn to_socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
