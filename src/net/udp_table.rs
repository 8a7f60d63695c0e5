//! The kernel's table of UDP sockets, `/proc/net/udp` and `/proc/net/udp6`.
//!
//! It tells which sockets hold a port (with their uid and inode) and how many
//! datagrams the kernel dropped on each because its receive buffer was full. Parsing
//! is pure and tested on captured lines; reading degrades to "unknown" off Linux.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// One row of `/proc/net/udp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSocketEntry {
    /// The bound local address and port.
    pub local: SocketAddr,
    /// Owner of the socket.
    pub uid: u32,
    /// Socket inode: matches `socket:[INODE]` in `/proc/PID/fd`.
    pub inode: u64,
    /// Datagrams the kernel dropped for this socket (receive buffer full, bad checksum).
    pub drops: u64,
}

/// Parses one data line (not the header) of `/proc/net/udp` or `/proc/net/udp6`.
///
/// Addresses are printed as the in-memory bytes of 32-bit words in host order,
/// so each 8-hex-digit word is turned back into its native bytes.
pub fn parse_line(line: &str) -> Option<UdpSocketEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if fields.len() < 13 || !fields[0].ends_with(':') {
        return None;
    }
    let (addr_hex, port_hex) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = parse_hex_ip(addr_hex)?;
    Some(UdpSocketEntry {
        local: SocketAddr::new(ip, port),
        uid: fields[7].parse().ok()?,
        inode: fields[9].parse().ok()?,
        drops: fields[12].parse().ok()?,
    })
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Parses a whole table, skipping the header and any line it does not understand.
pub fn parse_table(text: &str) -> Vec<UdpSocketEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads both tables; `None` when neither exists (not Linux, no `/proc`).
pub fn read() -> Option<Vec<UdpSocketEntry>> {
    let mut found = false;
    let mut entries = Vec::new();
    for path in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            found = true;
            entries.extend(parse_table(&text));
        }
    }
    found.then_some(entries)
}

/// The inode of a socket, from the `socket:[INODE]` link in `/proc/self/fd`.
pub fn socket_inode(socket: &impl AsRawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    parse_socket_link(link.to_str()?)
}

/// Parses `socket:[12345]` into `12345`.
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Sum of the kernel's drop counters for the given sockets; `None` if unknown.
pub fn drops_of(inodes: &[u64]) -> Option<u64> {
    if inodes.is_empty() {
        return None;
    }
    let table = read()?;
    Some(
        table
            .iter()
            .filter(|e| inodes.contains(&e.inode))
            .map(|e| e.drops)
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:270F 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 17
  456: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0
";

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv4_rows_with_uid_inode_and_drops() {
        let rows = parse_table(UDP);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(rows[0].uid, 1000);
        assert_eq!(rows[0].inode, 4242);
        assert_eq!(rows[0].drops, 17);
        assert_eq!(rows[1].local, "0.0.0.0:53".parse().unwrap());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv6_rows() {
        let line = " 5: 00000000000000000000000001000000:270F 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 3";
        let row = parse_line(line).unwrap();
        assert_eq!(row.local, "[::1]:9999".parse().unwrap());
        assert_eq!(row.inode, 777);
        assert_eq!(row.drops, 3);
    }

    #[test]
    fn junk_lines_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("sl local_address"), None);
        assert_eq!(parse_line(" 1: ZZZZ:270F 0 07 0 0 0 0 0 1 2 0 0"), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link("pipe:[12345]"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_a_real_socket_in_the_kernel_table() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let inode = socket_inode(&socket).expect("inode of a fresh socket");
        let table = read().expect("/proc/net/udp on Linux");
        let row = table
            .iter()
            .find(|e| e.inode == inode)
            .expect("our socket is listed");
        assert_eq!(row.local, addr);
        assert_eq!(drops_of(&[inode]), Some(0));
    }
}
