//! The TOS / traffic-class byte of single datagrams (DSCP and ECN): received
//! with `IP_RECVTOS` / `IPV6_RECVTCLASS` control messages, sent with an
//! `IP_TOS` / `IPV6_TCLASS` control message on that one `sendmsg`, so threads
//! sharing a socket never race on a socket option. Linux only (the crate's
//! other `unsafe` lives in `linux.rs`); elsewhere, and with
//! `--cfg udp_echo_portable`, plain `recv_from` / `send_to` and no TOS.
//!
//! Used by the server's plain loop (`--batch 1`) to answer with the DSCP the
//! request came with; the batched and GRO loops do the same with their own
//! per-message control buffers (`Batch::echo`, `GroBatch::queue`).
//!
//! An IPv4-mapped destination on a dual-stack (`::`) socket gets an `IP_TOS`
//! message: Linux sends it down its IPv4 path, which takes `SOL_IP` messages
//! and ignores an `IPV6_TCLASS` one.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// What [`recv_from_meta`] learns of a datagram besides its bytes and
/// source; each `None` when the kernel sent none (not asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// TOS / traffic class ([`enable_recv_tos`]).
    pub tos: Option<u8>,
    /// TTL / hop limit (`enable_recv_ttl`).
    pub ttl: Option<u8>,
    /// The address it was sent to, as in its IP header
    /// (`enable_recv_destination`; read only when asked for).
    pub destination: Option<IpAddr>,
    /// The address a reply to it should leave from: the destination of a
    /// unicast datagram, `None` when there is none that can be a source
    /// (read only when asked for; see `send_to_from`).
    pub reply_source: Option<IpAddr>,
}

/// Asks the kernel to report each datagram's TOS (IPv4) or traffic class
/// (IPv6; IPv4 too on a dual-stack socket, where the kernel allows it).
pub fn enable_recv_tos(socket: &UdpSocket) -> io::Result<()> {
    let sock = socket2::SockRef::from(socket);
    match socket.local_addr()? {
        SocketAddr::V4(_) => sock.set_recv_tos_v4(true),
        SocketAddr::V6(_) => {
            sock.set_recv_tclass_v6(true)?;
            // v4-mapped sources on a dual-stack socket: best effort.
            let _ = sock.set_recv_tos_v4(true);
            Ok(())
        }
    }
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
mod imp {
    use std::io;
    use std::mem;
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::ptr;

    use socket2::SockAddr;

    use super::RecvMeta;

    use crate::sys::linux::cmsg::{self, RECV_CONTROL_LEN, RecvControl, SendControl};

    /// `recv_from` that also returns the datagram's TOS / traffic class,
    /// `None` when the kernel sent none (not enabled, or another family).
    pub fn recv_from_tos(
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<u8>)> {
        recv_from_meta(socket, buf, false).map(|(n, source, meta)| (n, source, meta.tos))
    }

    /// `recv_from` that also returns the datagram's TOS / traffic class and
    /// TTL / hop limit (each `None` when the kernel sent none: not enabled
    /// with `enable_recv_tos` / `enable_recv_ttl`) and, with `destination`,
    /// the address it was sent to and the one to answer from (`None` without
    /// `enable_recv_destination`); without, those are not even looked for.
    pub fn recv_from_meta(
        socket: &UdpSocket,
        buf: &mut [u8],
        destination: bool,
    ) -> io::Result<(usize, SocketAddr, RecvMeta)> {
        // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut control = RecvControl::ZERO;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = ptr::from_mut(&mut storage).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = ptr::from_mut(&mut iov);
        msg.msg_iovlen = 1;
        msg.msg_control = ptr::from_mut(&mut control).cast();
        msg.msg_controllen = RECV_CONTROL_LEN as _;
        // SAFETY: every pointer in `msg` points to a live buffer of this frame
        // (or `buf`) with its real length.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel reports the address's full length even when it had to
        // cut it to the buffer: copy no more than the buffer holds.
        let name_len = (msg.msg_namelen as usize).min(mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: the kernel wrote the first `name_len` bytes of `storage`
        // (a socket address), and both `storage` and the sockaddr_storage
        // `try_init` hands out are at least that long.
        let (_, addr) = unsafe {
            SockAddr::try_init(|out, len| {
                ptr::copy_nonoverlapping(
                    ptr::from_ref(&storage).cast::<u8>(),
                    out.cast::<u8>(),
                    name_len,
                );
                *len = name_len as libc::socklen_t;
                Ok(())
            })
        }?;
        let source = addr
            .as_socket()
            .ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
        let mut meta = RecvMeta {
            tos: cmsg::tos(&msg),
            ttl: cmsg::ttl(&msg),
            ..RecvMeta::default()
        };
        if destination {
            meta.destination = cmsg::destination(&msg);
            meta.reply_source = cmsg::reply_source(&msg);
        }
        Ok((n as usize, source, meta))
    }

    /// `send_to` with this TOS / traffic class on this datagram only (an
    /// IPv4-mapped destination: `IP_TOS`, see the module doc).
    pub fn send_to_tos(
        socket: &UdpSocket,
        data: &[u8],
        dest: SocketAddr,
        tos: u8,
    ) -> io::Result<usize> {
        send_to_from(socket, data, dest, tos, None)
    }

    /// `send_to` with, on this datagram only, this TOS / traffic class (0:
    /// none) and, when `from` is given, this source address (`IP_PKTINFO` /
    /// `IPV6_PKTINFO`: a reply from a wildcard socket leaving from the
    /// address its request was sent to, see `linux/cmsg.rs`). The kernel
    /// refuses a source it cannot send from with `EINVAL` (IPv6) or
    /// `ENETUNREACH` (IPv4), and this one of the wrong family for `dest`
    /// with `EINVAL`: the caller may send again without it. Neither given:
    /// a plain `send_to`.
    pub fn send_to_from(
        socket: &UdpSocket,
        data: &[u8],
        dest: SocketAddr,
        tos: u8,
        from: Option<IpAddr>,
    ) -> io::Result<usize> {
        if tos == 0 && from.is_none() {
            return socket.send_to(data, dest);
        }
        let addr = SockAddr::from(dest);
        let mut control = SendControl::ZERO;
        let mut controllen = if tos == 0 {
            0
        } else {
            control.tos(0, Some(dest), tos)
        };
        if let Some(from) = from {
            controllen = control
                .source(controllen, Some(dest), from)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        }
        let mut iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = addr.as_ptr().cast_mut().cast();
        msg.msg_namelen = addr.len();
        msg.msg_iov = ptr::from_mut(&mut iov);
        msg.msg_iovlen = 1;
        msg.msg_controllen = controllen as _;
        msg.msg_control = control.as_mut_ptr();
        // SAFETY: `msg` points to live buffers of this frame (and `data`,
        // which the kernel only reads) with their real lengths.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(any(not(target_os = "linux"), udp_echo_portable))]
mod imp {
    use std::io;
    use std::net::{IpAddr, SocketAddr, UdpSocket};

    use super::RecvMeta;

    /// `recv_from`; no TOS here.
    pub fn recv_from_tos(
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<u8>)> {
        socket.recv_from(buf).map(|(n, from)| (n, from, None))
    }

    /// `recv_from`; no TOS, TTL or destination here.
    pub fn recv_from_meta(
        socket: &UdpSocket,
        buf: &mut [u8],
        _destination: bool,
    ) -> io::Result<(usize, SocketAddr, RecvMeta)> {
        socket
            .recv_from(buf)
            .map(|(n, from)| (n, from, RecvMeta::default()))
    }

    /// `send_to`; the TOS is not set here.
    pub fn send_to_tos(
        socket: &UdpSocket,
        data: &[u8],
        dest: SocketAddr,
        _tos: u8,
    ) -> io::Result<usize> {
        socket.send_to(data, dest)
    }

    /// `send_to`; neither the TOS nor the source is set here.
    pub fn send_to_from(
        socket: &UdpSocket,
        data: &[u8],
        dest: SocketAddr,
        _tos: u8,
        _from: Option<IpAddr>,
    ) -> io::Result<usize> {
        socket.send_to(data, dest)
    }
}

pub use imp::{recv_from_meta, recv_from_tos, send_to_from, send_to_tos};
