//! One UDP GSO send outside a batch (`sendmsg` with `UDP_SEGMENT`): the
//! client's flood and rate probes; and the test hook that makes the kernel
//! refuse GSO sends.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use super::cmsg::SendControl;
use super::setsockopt_int;

/// `SO_NO_CHECK` (asm-generic value; libc does not export it for Linux).
const SO_NO_CHECK: libc::c_int = 11;

/// Sends `data` to `to` (or the connected peer when `None`) with one `sendmsg`
/// as datagrams of `segment_size` bytes (the last may be shorter): with a
/// `UDP_SEGMENT` control message when it spans more than one, as one plain
/// datagram otherwise. Keep it to [`MAX_GSO_SEGMENTS`](super::gro::MAX_GSO_SEGMENTS) datagrams: older
/// kernels refuse more with `EINVAL`. Returns the bytes sent; `EIO`/`EINVAL`
/// mean this path refuses GSO.
pub fn send_segmented(
    socket: &UdpSocket,
    to: Option<SocketAddr>,
    data: &[u8],
    segment_size: usize,
) -> io::Result<usize> {
    let address = to.map(socket2::SockAddr::from);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut control = SendControl::ZERO;
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) header.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    if let Some(address) = &address {
        hdr.msg_name = address.as_ptr().cast_mut().cast();
        hdr.msg_namelen = address.len();
    }
    hdr.msg_iov = ptr::from_mut(&mut iov);
    hdr.msg_iovlen = 1;
    if segment_size > 0 && data.len() > segment_size {
        let segment =
            u16::try_from(segment_size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        hdr.msg_controllen = control.segment(0, segment) as _;
        hdr.msg_control = control.as_mut_ptr();
    }
    // SAFETY: the header points at an iovec covering `data` (only read by
    // sendmsg despite the mut pointer), an address of the length given (or
    // none) and a control buffer of the length given; all live for the call.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &hdr, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Test hook: lets `socket` receive IPv6 datagrams without a UDP checksum
/// (`UDP_NO_CHECK6_RX`) and, with `sends`, sends without one (`SO_NO_CHECK`,
/// and `UDP_NO_CHECK6_TX` on IPv6). The kernel then refuses every UDP GSO send
/// on it with `EINVAL`: a real refusal for the fallback path to meet. Its IPv6
/// peer needs this too (without `sends`) to accept what it sends.
#[doc(hidden)]
pub fn disable_udp_checksums(socket: &UdpSocket, sends: bool) -> io::Result<()> {
    let ipv6 = socket.local_addr()?.is_ipv6();
    if ipv6 {
        setsockopt_int(socket, libc::SOL_UDP, libc::UDP_NO_CHECK6_RX, 1)?;
    }
    if sends {
        setsockopt_int(socket, libc::SOL_SOCKET, SO_NO_CHECK, 1)?;
        if ipv6 {
            setsockopt_int(socket, libc::SOL_UDP, libc::UDP_NO_CHECK6_TX, 1)?;
        }
    }
    Ok(())
}
