//! Path-MTU socket options for `--pmtu` and `--doctor`: don't-fragment on
//! every send, and the kernel's current path MTU to the peer.

use std::io;
use std::net::UdpSocket;

use super::{getsockopt_int, setsockopt_int};

/// Sets the don't-fragment bit on everything `socket` sends (IPv4:
/// `IP_MTU_DISCOVER = IP_PMTUDISC_DO`; IPv6: `IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO`
/// and `IPV6_DONTFRAG`). A datagram larger than the path MTU the kernel knows
/// then fails with `EMSGSIZE` instead of leaving in fragments.
pub fn set_dont_fragment(socket: &UdpSocket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(
            socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )?;
        setsockopt_int(socket, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    } else {
        setsockopt_int(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    }
}

/// The kernel's current path MTU for a connected socket's peer (`IP_MTU` /
/// `IPV6_MTU`), in bytes of IP packet.
pub fn path_mtu(socket: &UdpSocket, ipv6: bool) -> io::Result<u32> {
    let mtu = if ipv6 {
        getsockopt_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    } else {
        getsockopt_int(socket, libc::IPPROTO_IP, libc::IP_MTU)?
    };
    u32::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative MTU"))
}
