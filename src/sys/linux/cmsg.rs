//! Control messages: those of received datagrams, read with one walker (the
//! kernel receive time stamp, `SO_TIMESTAMPNS`; the `UDP_GRO` segment size;
//! the TOS / traffic class, `IP_RECVTOS` / `IPV6_RECVTCLASS`; the TTL / hop
//! limit, `IP_RECVTTL` / `IPV6_RECVHOPLIMIT`; the destination address,
//! `IP_PKTINFO` / `IPV6_RECVPKTINFO`), and those of a send, written
//! into one [`SendControl`] (`UDP_SEGMENT`, the TOS / traffic class, and
//! the source address, `IP_PKTINFO` / `IPV6_PKTINFO`).
//!
//! # The source of a reply on a wildcard socket
//!
//! A socket bound to `0.0.0.0` or `::` answers, unless told otherwise, from
//! whatever address the kernel's route lookup picks, which on a host with
//! several addresses (a secondary one, an AnyIP range routed `local` to
//! `lo`) need not be the one the request was sent to; a connected client,
//! a NAT or the fleet prober then drops the reply. So a wildcard server
//! reads each request's destination ([`reply_source`]) and sends the reply
//! with a source message ([`SendControl::source`]), as dnsmasq and BIND do.
//! What Linux 6.x does, checked in a namespace (and in the tests):
//!
//! - IPv4: the reply source is `IP_PKTINFO`'s `ipi_spec_dst`, the local
//!   address of the datagram: the destination for unicast (AnyIP included),
//!   the interface's address for a broadcast, which is no source to send from.
//!   Sent back as `ipi_spec_dst` with `ipi_ifindex` 0 (the route decides the
//!   device, as before). The kernel accepts an AnyIP source (its check falls
//!   back to the local routing table).
//! - IPv6: `IPV6_PKTINFO`'s address; the kernel accepts it as a source only
//!   when an interface holds it, so an AnyIP range is refused (`EINVAL`)
//!   unless the socket has `IPV6_FREEBIND` (or `net.ipv6.ip_nonlocal_bind`
//!   is on): [`enable_reply_source`] sets it. A multicast destination is no
//!   source: such a reply keeps the kernel's choice.
//! - IPv4-mapped, on a dual-stack `::` socket: the kernel reports both an
//!   `IPV6_PKTINFO` (the mapped address) and, as the socket asked for
//!   `IP_PKTINFO` too, an `IP_PKTINFO`; a send to a mapped address goes
//!   down the IPv4 path, which accepts either an `IP_PKTINFO` or an
//!   `IPV6_PKTINFO` holding a mapped address, and refuses an unmapped one
//!   (`EINVAL`). The reply sends `IP_PKTINFO`, as it sends `IP_TOS`.
//!
//! The TOS of a send goes by the destination, not the socket: an IPv6
//! socket sending to an IPv4-mapped address (a dual-stack `::` socket
//! answering an IPv4 client) takes an `IP_TOS` message, as Linux sends that
//! datagram down its IPv4 path, which reads `SOL_IP` messages and silently
//! ignores an `IPV6_TCLASS` one (checked on Linux 6.x; see the tests).
//!
//! With `SO_TIMESTAMPNS` set, every receive carries an `SCM_TIMESTAMPNS`
//! message, the time the kernel took the datagram in (for a GRO buffer, its
//! first datagram), on `CLOCK_REALTIME`. The client measures round trips
//! with it, so the time its own thread took to wake up is not counted as
//! network time. A GRO buffer carries one TOS: the kernel coalesces only
//! datagrams whose IP headers agree on it.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::ptr;

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

/// Control bytes an `SCM_TIMESTAMPING` message takes (three timespecs).
// SAFETY: as above.
pub(super) const TIMESTAMPING_CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE(3 * mem::size_of::<libc::timespec>() as u32) } as usize;

/// Control bytes an `IPV6_PKTINFO` message takes, the larger of the two
/// destination address messages (`CMSG_SPACE(in6_pktinfo)`).
// SAFETY: as above.
pub(super) const PKTINFO_CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) } as usize;

/// Control bytes of one receive in a batch: room for the `UDP_GRO` message,
/// a kernel receive time stamp, the TOS / traffic class, the TTL / hop
/// limit, the destination address, and an `SCM_TIMESTAMPING` a socket with
/// transmit stamps gets on every receive from kernels without
/// `SOF_TIMESTAMPING_OPT_RX_FILTER` (`txstamp.rs`).
pub(in crate::sys) const RECV_CONTROL_LEN: usize = 256;
const _: () = assert!(
    RECV_CONTROL_LEN
        >= 3 * INT_CONTROL_SPACE
            + TIMESTAMP_CONTROL_SPACE
            + TIMESTAMPING_CONTROL_SPACE
            + PKTINFO_CONTROL_SPACE
);

/// One receive's control buffer, aligned for `cmsghdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(in crate::sys) struct RecvControl {
    _align: [libc::cmsghdr; 0],
    _bytes: [u8; RECV_CONTROL_LEN],
}

impl RecvControl {
    pub(in crate::sys) const ZERO: RecvControl = RecvControl {
        _align: [],
        _bytes: [0; RECV_CONTROL_LEN],
    };
}

/// Space the `UDP_SEGMENT` control message takes (`CMSG_SPACE(2)`).
// SAFETY: CMSG_SPACE is arithmetic on its argument only.
pub(in crate::sys) const SEGMENT_CONTROL_SPACE: usize = unsafe { libc::CMSG_SPACE(2) } as usize;

/// Space a TOS / traffic-class message takes when sent: an int for both
/// (`IP_TOS` accepts an int or a byte, `IPV6_TCLASS` only an int).
pub(in crate::sys) const TOS_CONTROL_SPACE: usize = INT_CONTROL_SPACE;

/// Control bytes of one send: a `UDP_SEGMENT` message, then a TOS message,
/// then a source address message, each optional.
pub(in crate::sys) const SEND_CONTROL_LEN: usize =
    SEGMENT_CONTROL_SPACE + TOS_CONTROL_SPACE + PKTINFO_CONTROL_SPACE;

/// One send's control buffer, aligned for `cmsghdr`; [`segment`](Self::segment),
/// [`tos`](Self::tos) and [`source`](Self::source) append a message and
/// return the length so far, which the caller puts in `msg_controllen`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(in crate::sys) struct SendControl {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; SEND_CONTROL_LEN],
}

// One `UDP_SEGMENT` message and one TOS message fit, each at an offset
// aligned for `cmsghdr`, and the buffer is laid out and aligned as the kernel
// reads it (no bytes before `bytes`).
const _: () = assert!(SEGMENT_CONTROL_SPACE >= CONTROL_DATA_OFFSET + mem::size_of::<u16>());
const _: () = assert!(TOS_CONTROL_SPACE >= CONTROL_DATA_OFFSET + mem::size_of::<libc::c_int>());
const _: () =
    assert!(PKTINFO_CONTROL_SPACE >= CONTROL_DATA_OFFSET + mem::size_of::<libc::in6_pktinfo>());
const _: () =
    assert!(PKTINFO_CONTROL_SPACE >= CONTROL_DATA_OFFSET + mem::size_of::<libc::in_pktinfo>());
const _: () = assert!(mem::size_of::<libc::in_pktinfo>() == 12);
const _: () = assert!(mem::size_of::<libc::in6_pktinfo>() == 20);
const _: () = assert!(SEGMENT_CONTROL_SPACE % mem::align_of::<libc::cmsghdr>() == 0);
const _: () = assert!(TOS_CONTROL_SPACE % mem::align_of::<libc::cmsghdr>() == 0);
const _: () = assert!(mem::size_of::<SendControl>() == SEND_CONTROL_LEN);
const _: () = assert!(mem::align_of::<SendControl>() >= mem::align_of::<libc::cmsghdr>());
const _: () = assert!(mem::size_of::<RecvControl>() == RECV_CONTROL_LEN);
const _: () = assert!(mem::align_of::<RecvControl>() >= mem::align_of::<libc::cmsghdr>());

impl SendControl {
    pub(in crate::sys) const ZERO: SendControl = SendControl {
        _align: [],
        bytes: [0; SEND_CONTROL_LEN],
    };

    /// Where the kernel reads the messages from.
    pub(in crate::sys) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.bytes.as_mut_ptr().cast()
    }

    /// Writes a message of `level`/`kind` carrying `data` at byte `at` (a
    /// length this type returned, or 0) and returns the length after it.
    /// Panics if it does not fit: the buffer is sized for one of each kind.
    fn put(&mut self, at: usize, level: libc::c_int, kind: libc::c_int, data: &[u8]) -> usize {
        // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument only.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(data.len() as u32) as usize,
                libc::CMSG_LEN(data.len() as u32) as usize,
            )
        };
        let end = at + space;
        assert!(end <= SEND_CONTROL_LEN && at % mem::align_of::<libc::cmsghdr>() == 0);
        self.bytes[at..end].fill(0);
        // SAFETY: cmsghdr is plain old data (some libcs add private padding,
        // so it cannot be built field by field); all-zero is a valid value.
        let mut hdr: libc::cmsghdr = unsafe { mem::zeroed() };
        hdr.cmsg_len = len as _;
        hdr.cmsg_level = level;
        hdr.cmsg_type = kind;
        // SAFETY: `at + size_of::<cmsghdr>() <= at + space <= SEND_CONTROL_LEN`
        // (asserted above), so the write stays inside `bytes`; unaligned, so
        // no alignment is assumed (it is aligned anyway).
        unsafe { ptr::write_unaligned(self.bytes.as_mut_ptr().add(at).cast(), hdr) };
        self.bytes[at + CONTROL_DATA_OFFSET..at + len].copy_from_slice(data);
        end
    }

    /// Appends `UDP_SEGMENT` with this segment size.
    pub(in crate::sys) fn segment(&mut self, at: usize, segment: u16) -> usize {
        self.put(at, libc::SOL_UDP, libc::UDP_SEGMENT, &segment.to_ne_bytes())
    }

    /// Appends the TOS / traffic class for a datagram to `to` (see the
    /// module doc for IPv4-mapped destinations).
    pub(in crate::sys) fn tos(&mut self, at: usize, to: Option<SocketAddr>, tos: u8) -> usize {
        let (level, kind) = tos_message(to);
        self.put(at, level, kind, &libc::c_int::from(tos).to_ne_bytes())
    }

    /// Appends the message that makes a datagram to `to` leave from `from`:
    /// `IP_PKTINFO` (`ipi_spec_dst`) for IPv4 and IPv4-mapped destinations,
    /// `IPV6_PKTINFO` for IPv6 ones, interface 0 (see the module doc).
    /// `None`, and nothing written, when `from` cannot be the source of a
    /// datagram to `to` (another family; no destination known).
    pub(in crate::sys) fn source(
        &mut self,
        at: usize,
        to: Option<SocketAddr>,
        from: IpAddr,
    ) -> Option<usize> {
        match source_message(to?, from)? {
            IpAddr::V4(v4) => {
                // in_pktinfo: the interface (0), `ipi_spec_dst` (the
                // source), `ipi_addr` (ignored on a send), addresses in
                // network order.
                let mut bytes = [0u8; mem::size_of::<libc::in_pktinfo>()];
                bytes[4..8].copy_from_slice(&v4.octets());
                Some(self.put(at, libc::IPPROTO_IP, libc::IP_PKTINFO, &bytes))
            }
            IpAddr::V6(v6) => {
                let mut bytes = [0u8; mem::size_of::<libc::in6_pktinfo>()];
                // in6_pktinfo: the 16-byte address, then the interface (0).
                bytes[..16].copy_from_slice(&v6.octets());
                Some(self.put(at, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &bytes))
            }
        }
    }
}

/// The address a reply to `to` from `from` names as its source, in the
/// family of the message the kernel reads on that path: IPv4 for IPv4 and
/// IPv4-mapped destinations (an IPv4-mapped `from` unmapped), IPv6 for the
/// others; `None` when the families do not agree.
pub(in crate::sys) fn source_message(to: SocketAddr, from: IpAddr) -> Option<IpAddr> {
    let v4_path = match to {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    };
    match from {
        IpAddr::V4(v4) => v4_path.then_some(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_path.then_some(IpAddr::V4(v4)),
            None => (!v4_path).then_some(IpAddr::V6(v6)),
        },
    }
}

/// The control message that sets the TOS of a datagram to `to`: `IP_TOS`
/// for IPv4 and IPv4-mapped destinations, `IPV6_TCLASS` for IPv6 ones.
pub(in crate::sys) fn tos_message(to: Option<SocketAddr>) -> (libc::c_int, libc::c_int) {
    match to {
        Some(SocketAddr::V6(v6)) if v6.ip().to_ipv4_mapped().is_none() => {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        }
        _ => (libc::IPPROTO_IP, libc::IP_TOS),
    }
}

/// Asks the kernel to report each datagram's TTL / hop limit
/// (`IP_RECVTTL`; on IPv6 sockets `IPV6_RECVHOPLIMIT` too, for IPv4-mapped
/// sources). An error means it cannot; what was set stays set.
pub fn enable_recv_ttl(socket: &UdpSocket) -> io::Result<()> {
    if socket.local_addr()?.is_ipv6() {
        setsockopt_int(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        // IPv4-mapped sources on a dual-stack socket: best effort.
        let _ = setsockopt_int(socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1);
        Ok(())
    } else {
        setsockopt_int(socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
    }
}

/// Asks the kernel to report each datagram's destination address
/// (`IP_PKTINFO`; on IPv6 sockets `IPV6_RECVPKTINFO` too, and `IP_PKTINFO`
/// for IPv4-mapped sources, best effort): a socket bound to the wildcard
/// learns that way which of its addresses a request was sent to (the STAMP
/// Location TLV). An error means it cannot; what was set stays set.
pub fn enable_recv_destination(socket: &UdpSocket) -> io::Result<()> {
    if socket.local_addr()?.is_ipv6() {
        setsockopt_int(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        let _ = setsockopt_int(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1);
        Ok(())
    } else {
        setsockopt_int(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// Readies a wildcard-bound socket to answer every request from the address
/// it was sent to: the destination of each datagram reported
/// ([`enable_recv_destination`]), and on IPv6 sockets `IPV6_FREEBIND`, without
/// which the kernel refuses an IPv6 AnyIP address as a source (see the
/// module doc; the sources given are only ever unicast addresses the
/// kernel delivered a datagram to, so it lets nothing else through). An
/// error means replies keep the kernel's choice of source; what was set
/// stays set.
pub fn enable_reply_source(socket: &UdpSocket) -> io::Result<()> {
    enable_recv_destination(socket)?;
    if socket.local_addr()?.is_ipv6() {
        // Best effort (kernels before 4.15 lack it): without it, the
        // kernel refuses only IPv6 AnyIP sources, which then go without.
        let _ = setsockopt_int(socket, libc::IPPROTO_IPV6, IPV6_FREEBIND, 1);
    }
    Ok(())
}

/// `IPV6_FREEBIND` (Linux 4.15; `linux/in6.h`), which libc lacks.
const IPV6_FREEBIND: libc::c_int = 78;

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
            // every T used here (integers, timespecs, sock_extended_err,
            // in_pktinfo, in6_pktinfo: plain integers and byte arrays) is
            // valid for any bytes.
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
pub(in crate::sys) fn rx_time_ns(hdr: &libc::msghdr) -> Option<u64> {
    let ts: libc::timespec = find(hdr, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)?;
    timespec_ns(&ts)
}

/// `ee_info` of a stamp taken as the datagram left for the device
/// (`SCM_TSTAMP_SND` in `linux/errqueue.h`; libc lacks it).
const SCM_TSTAMP_SND: u32 = 0;

/// An error-queue message's transmit stamp: the `OPT_ID` counter of its
/// `sock_extended_err` (`IP_RECVERR` or `IPV6_RECVERR`, origin
/// `SO_EE_ORIGIN_TIMESTAMPING`, a stamp of the send itself, `SCM_TSTAMP_SND`)
/// and the software time of its `SCM_TIMESTAMPING` (the first of the three
/// timespecs), in ns since the Unix epoch; `None` when either is missing or
/// the message is another kind of error.
pub(super) fn tx_stamp(hdr: &libc::msghdr) -> Option<(u32, u64)> {
    let err: libc::sock_extended_err = find(hdr, libc::SOL_IP, libc::IP_RECVERR)
        .or_else(|| find(hdr, libc::SOL_IPV6, libc::IPV6_RECVERR))?;
    if err.ee_origin != libc::SO_EE_ORIGIN_TIMESTAMPING || err.ee_info != SCM_TSTAMP_SND {
        return None;
    }
    let ts: [libc::timespec; 3] = find(hdr, libc::SOL_SOCKET, libc::SCM_TIMESTAMPING)?;
    let ns = timespec_ns(&ts[0])?;
    (ns != 0).then_some((err.ee_data, ns))
}

/// A timespec as ns since the epoch; `None` if negative or too large.
fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
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
pub(in crate::sys) fn tos(hdr: &libc::msghdr) -> Option<u8> {
    find::<u8>(hdr, libc::IPPROTO_IP, libc::IP_TOS).or_else(|| {
        find::<libc::c_int>(hdr, libc::IPPROTO_IPV6, libc::IPV6_TCLASS).map(|t| t as u8)
    })
}

/// The TTL (IPv4) or hop limit (IPv6) the datagram arrived with, both an
/// int, when the socket asked for it ([`enable_recv_ttl`]).
pub(in crate::sys) fn ttl(hdr: &libc::msghdr) -> Option<u8> {
    find::<libc::c_int>(hdr, libc::IPPROTO_IP, libc::IP_TTL)
        .or_else(|| find::<libc::c_int>(hdr, libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT))
        .and_then(|t| u8::try_from(t).ok())
}

/// The address the datagram was sent to (`IP_PKTINFO`'s header destination,
/// or `IPV6_PKTINFO`'s), when the socket asked for it
/// ([`enable_recv_destination`]).
pub(in crate::sys) fn destination(hdr: &libc::msghdr) -> Option<IpAddr> {
    find::<libc::in_pktinfo>(hdr, libc::IPPROTO_IP, libc::IP_PKTINFO)
        .map(|p| IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))))
        .or_else(|| {
            find::<libc::in6_pktinfo>(hdr, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                .map(|p| IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)))
        })
}

/// The address a reply to this datagram should leave from: `IP_PKTINFO`'s
/// `ipi_spec_dst` (the local address: the destination of a unicast
/// datagram; without one, its `ipi_addr`), or `IPV6_PKTINFO`'s address; `None` when the kernel gave
/// neither ([`enable_recv_destination`] not called) or it can be no source
/// (unspecified, multicast, broadcast).
pub(in crate::sys) fn reply_source(hdr: &libc::msghdr) -> Option<IpAddr> {
    let ip = find::<libc::in_pktinfo>(hdr, libc::IPPROTO_IP, libc::IP_PKTINFO)
        .map(|p| {
            // `ipi_spec_dst` is 0 for a datagram queued before the socket
            // asked (one a service manager's socket held before the server
            // started): the header's destination, then, which the kernel
            // refuses as a source should it be a subnet's broadcast.
            let local = match p.ipi_spec_dst.s_addr {
                0 => p.ipi_addr.s_addr,
                spec_dst => spec_dst,
            };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(local)))
        })
        .or_else(|| {
            find::<libc::in6_pktinfo>(hdr, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                .map(|p| IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)))
        })?;
    let unusable = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
            None => v6.is_unspecified() || v6.is_multicast(),
        },
    };
    (!unusable).then_some(ip)
}
