//! "Is this address this host's own?", answered by the kernel's routing:
//! one `RTM_GETROUTE` request over an `AF_NETLINK` socket (what
//! `ip route get ADDRESS` does), whose reply's route type is `RTN_LOCAL` for
//! every address the host accepts as its own — interface addresses, whole
//! networks on loopback, AnyIP routes (`ip route add local 198.51.100.0/24
//! dev lo`, IPv4 and IPv6), addresses added a moment ago.
//!
//! Why not the interface list: it misses AnyIP routes. Why not a test
//! `bind(ADDRESS:0)`: IPv6 refuses it for an AnyIP address (EADDRNOTAVAIL,
//! measured), and `ip_nonlocal_bind` makes it succeed for any address.
//!
//! No `unsafe`: socket2 opens the netlink socket, the messages are bytes.
//! One query costs a send and a receive (microseconds); the caller
//! (`net::local_addrs::LocalAddrs`) caches the answers
//! and bounds how many it asks a second.

#![deny(unsafe_code)]

use std::io::{self, Read};
use std::net::IpAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const NLMSG_HDR_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTN_LOCAL: u8 = 2;

/// How long a query may wait for the kernel's answer (it comes at once; this
/// only keeps a lost reply from stalling an echo loop).
const REPLY_WAIT: Duration = Duration::from_millis(100);

/// An open `NETLINK_ROUTE` socket that answers [`is_local`](Self::is_local).
/// One per echo thread; its buffers are fixed, nothing is allocated per query.
#[derive(Debug)]
pub struct LocalRoutes {
    socket: Socket,
    seq: u32,
    reply: [u8; 1024],
}

impl LocalRoutes {
    /// Opens the socket; fails where netlink is not allowed (a sandbox's
    /// `RestrictAddressFamilies=` without `AF_NETLINK`).
    pub fn open() -> io::Result<LocalRoutes> {
        let socket = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::DGRAM,
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )?;
        socket.set_read_timeout(Some(REPLY_WAIT))?;
        Ok(LocalRoutes {
            socket,
            seq: 0,
            reply: [0; 1024],
        })
    }

    /// Whether the kernel routes `ip` to this host (`RTN_LOCAL`). A kernel
    /// that answers with an error (no route: unreachable, prohibited) says
    /// "not local"; `Err` only when the question could not be asked or the
    /// answer not read.
    pub fn is_local(&mut self, ip: IpAddr) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let mut request = [0u8; NLMSG_HDR_LEN + RTMSG_LEN + 4 + 16];
        let len = encode_request(ip, self.seq, &mut request);
        let sent = self.socket.send(&request[..len])?;
        if sent != len {
            return Err(io::Error::other("short netlink send"));
        }
        // Replies to an earlier query that timed out may still be queued:
        // skip any whose sequence number is not this one.
        for _ in 0..8 {
            let n = (&self.socket).read(&mut self.reply)?;
            if let Some(answer) = decode_reply(&self.reply[..n], self.seq)? {
                return Ok(answer);
            }
        }
        Err(io::Error::other("no netlink reply to this route query"))
    }
}

/// Writes an `RTM_GETROUTE` request for `ip` (IPv4-mapped IPv6 is asked as
/// the IPv4 address it is) into `out`; returns its length.
fn encode_request(
    ip: IpAddr,
    seq: u32,
    out: &mut [u8; NLMSG_HDR_LEN + RTMSG_LEN + 4 + 16],
) -> usize {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (family, octets, addr_len) = match ip {
        IpAddr::V4(v4) => {
            let mut octets = [0u8; 16];
            octets[..4].copy_from_slice(&v4.octets());
            (libc::AF_INET, octets, 4)
        }
        IpAddr::V6(v6) => (libc::AF_INET6, v6.octets(), 16),
    };
    let attr_len = 4 + addr_len;
    let len = NLMSG_HDR_LEN + RTMSG_LEN + attr_len;
    out.fill(0);
    // struct nlmsghdr: length, type, flags, sequence, port id (0: the kernel).
    out[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
    out[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    // struct rtmsg: family, destination prefix length, then zeros.
    let body = NLMSG_HDR_LEN;
    out[body] = family as u8;
    out[body + 1] = (addr_len * 8) as u8;
    // struct rtattr RTA_DST: length, type, the address.
    let attr = body + RTMSG_LEN;
    out[attr..attr + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
    out[attr + 2..attr + 4].copy_from_slice(&RTA_DST.to_ne_bytes());
    out[attr + 4..attr + 4 + addr_len].copy_from_slice(&octets[..addr_len]);
    len
}

/// Reads one netlink reply: `Some(is local)` when it answers query `seq`,
/// `None` when it answers another one, `Err` when it is malformed.
fn decode_reply(reply: &[u8], seq: u32) -> io::Result<Option<bool>> {
    let malformed = || io::Error::other("malformed netlink reply to a route query");
    if reply.len() < NLMSG_HDR_LEN {
        return Err(malformed());
    }
    let u16_at = |at: usize| u16::from_ne_bytes([reply[at], reply[at + 1]]);
    let u32_at = |at: usize| u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap());
    if u32_at(8) != seq {
        return Ok(None);
    }
    match u16_at(4) {
        // struct nlmsgerr: a negative errno (0 would be an acknowledgement,
        // which was not asked for). The kernel looked and found no route.
        NLMSG_ERROR if reply.len() >= NLMSG_HDR_LEN + 4 => Ok(Some(false)),
        // struct rtmsg's rtm_type is its eighth byte.
        RTM_NEWROUTE if reply.len() >= NLMSG_HDR_LEN + RTMSG_LEN => {
            Ok(Some(reply[NLMSG_HDR_LEN + 7] == RTN_LOCAL))
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn requests_carry_the_family_and_the_address() {
        let mut out = [0u8; 48];
        assert_eq!(encode_request(ip("192.0.2.7"), 5, &mut out), 36);
        assert_eq!(out[16], libc::AF_INET as u8);
        assert_eq!(out[17], 32);
        assert_eq!(&out[32..36], &[192, 0, 2, 7]);
        // A mapped address is asked as IPv4.
        assert_eq!(encode_request(ip("::ffff:192.0.2.7"), 6, &mut out), 36);
        assert_eq!(&out[32..36], &[192, 0, 2, 7]);
        assert_eq!(encode_request(ip("2001:db8::1"), 7, &mut out), 48);
        assert_eq!(out[16], libc::AF_INET6 as u8);
        assert_eq!(out[17], 128);
        assert_eq!(u32::from_ne_bytes(out[8..12].try_into().unwrap()), 7);
    }

    #[test]
    fn replies_for_another_query_or_malformed_are_not_answers() {
        let mut reply = [0u8; 28];
        reply[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        reply[8..12].copy_from_slice(&9u32.to_ne_bytes());
        reply[16 + 7] = RTN_LOCAL;
        assert_eq!(decode_reply(&reply, 9).unwrap(), Some(true));
        assert_eq!(decode_reply(&reply, 8).unwrap(), None);
        reply[16 + 7] = 1; // RTN_UNICAST
        assert_eq!(decode_reply(&reply, 9).unwrap(), Some(false));
        assert!(decode_reply(&reply[..20], 9).is_err());
        assert!(decode_reply(&reply[..10], 9).is_err());
        reply[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(decode_reply(&reply[..20], 9).unwrap(), Some(false));
    }

    #[test]
    fn the_kernel_says_loopback_is_local_and_a_documentation_address_is_not() {
        let mut routes = LocalRoutes::open().unwrap();
        for local in ["127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1"] {
            assert!(routes.is_local(ip(local)).unwrap(), "{local}");
        }
        // ::1 only where IPv6 is up.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            assert!(routes.is_local(ip("::1")).unwrap());
        }
        for remote in ["192.0.2.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!routes.is_local(ip(remote)).unwrap(), "{remote}");
        }
    }
}
