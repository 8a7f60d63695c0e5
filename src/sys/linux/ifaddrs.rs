//! This host's interface addresses (`getifaddrs(3)`), for the own-socket
//! check of a wildcard bind.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr;

/// This host's interface addresses, IPv4 and IPv6, from `getifaddrs(3)`, into
/// `out` (cleared first): each with its prefix length and whether its interface
/// is a loopback one. A netlink dump, tens of microseconds: for
/// [`LocalAddrs`](crate::net::local_addrs::LocalAddrs), which reads it at most
/// once a second, never per datagram.
pub fn interface_addrs(out: &mut Vec<crate::net::local_addrs::InterfaceAddr>) -> io::Result<()> {
    let mut head: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs only writes the head of a list it allocated into the
    // live pointer it is given.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let list = IfAddrs(head);
    out.clear();
    let mut node = list.0.cast_const();
    while !node.is_null() {
        // SAFETY: `node` is a non-null node of the list getifaddrs returned,
        // which stays allocated until `list` is dropped after the walk.
        let ifa = unsafe { &*node };
        if let Some(ip) = interface_ip(ifa.ifa_addr) {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match (ip, interface_ip(ifa.ifa_netmask)) {
                (std::net::IpAddr::V4(_), Some(std::net::IpAddr::V4(mask))) => {
                    u32::from(mask).count_ones()
                }
                (std::net::IpAddr::V6(_), Some(std::net::IpAddr::V6(mask))) => {
                    u128::from(mask).count_ones()
                }
                // No usable mask: the address alone.
                _ => max,
            };
            out.push(crate::net::local_addrs::InterfaceAddr {
                ip,
                prefix: prefix.min(max) as u8,
                loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as libc::c_uint != 0,
            });
        }
        node = ifa.ifa_next.cast_const();
    }
    Ok(())
}

/// The list `getifaddrs` allocated; freed on drop, however the walk ends.
struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs and is freed
        // here only, once.
        unsafe { libc::freeifaddrs(self.0) };
    }
}

/// The IP address in a `sockaddr` of the `getifaddrs` list: `None` for a null
/// pointer or another family (e.g. AF_PACKET).
fn interface_ip(addr: *const libc::sockaddr) -> Option<std::net::IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: a non-null address in the list points at a sockaddr at least as
    // large as the generic one; read unaligned, so no alignment is assumed.
    let family = libc::c_int::from(unsafe { addr.read_unaligned() }.sa_family);
    match family {
        libc::AF_INET => {
            // SAFETY: the family says the storage is a sockaddr_in.
            let sin = unsafe { addr.cast::<libc::sockaddr_in>().read_unaligned() };
            Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage is a sockaddr_in6.
            let sin6 = unsafe { addr.cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}
