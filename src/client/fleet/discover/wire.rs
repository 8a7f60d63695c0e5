//! The DNS wire format (RFC 1035, EDNS0 of RFC 6891), as much as a SRV or
//! address query needs: one question out, the answer section in.
//!
//! The parser reads bytes a server (or anyone who can reach our port) sent,
//! so it trusts nothing: every read is bounds-checked, a compression pointer
//! must point strictly before where the name (or the last pointer's target)
//! began, so a chain of them strictly decreases and cannot loop,
//! and a name follows at most [`MAX_POINTERS`] of them, a name is at most 255
//! bytes, and every problem is an `Err`, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type A (an IPv4 address).
pub(super) const TYPE_A: u16 = 1;
/// Record type AAAA (an IPv6 address).
pub(super) const TYPE_AAAA: u16 = 28;
/// Record type SRV (RFC 2782).
pub(super) const TYPE_SRV: u16 = 33;
/// Record type OPT (EDNS0).
const TYPE_OPT: u16 = 41;
/// Class IN.
const CLASS_IN: u16 = 1;
/// The UDP payload size we announce in EDNS0: answers up to this fit in one
/// datagram; larger ones come truncated and are asked again over TCP.
pub(super) const EDNS_BUFFER: u16 = 4096;
/// The most compression pointers one name may follow.
const MAX_POINTERS: usize = 32;
/// The longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// The DNS header's length.
const HEADER: usize = 12;

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WireError {
    /// Not an answer to our question (another ID, another question, not a
    /// response): a stray or spoofed datagram, to be ignored.
    NotOurs,
    /// The TC bit: the answer did not fit; ask again over TCP.
    Truncated,
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// Any other response code (SERVFAIL, REFUSED…).
    Rcode(u8),
    /// Bytes that are not a well-formed message.
    Malformed(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::NotOurs => f.write_str("an answer to another question"),
            WireError::Truncated => f.write_str("a truncated answer"),
            WireError::NoSuchName => f.write_str("no such name (NXDOMAIN)"),
            WireError::Rcode(2) => f.write_str("the server failed (SERVFAIL)"),
            WireError::Rcode(5) => f.write_str("the server refused the query (REFUSED)"),
            WireError::Rcode(code) => write!(f, "the server answered with error code {code}"),
            WireError::Malformed(what) => write!(f, "a malformed answer ({what})"),
        }
    }
}

/// One usable answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// An SRV record: a host name (no trailing dot) and a port.
    Srv {
        /// Priority (lower first); kept for the order of a listing.
        priority: u16,
        /// The target host name, `.`-free at the end.
        host: String,
        /// The port.
        port: u16,
    },
    /// An A record.
    V4(Ipv4Addr),
    /// An AAAA record.
    V6(Ipv6Addr),
}

/// A name in presentation form, checked for the wire: labels of 1–63 bytes,
/// 255 bytes in all; one trailing dot allowed. Returns the labels.
pub(super) fn labels(name: &str) -> Result<Vec<&str>, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("the name is empty".into());
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!(
            "{name:?} is not a DNS name (empty or over-long label)"
        ));
    }
    if trimmed.len() + 2 > MAX_NAME {
        return Err(format!("{name:?} is longer than a DNS name may be"));
    }
    if !labels.iter().all(|l| l.bytes().all(name_byte)) {
        return Err(format!(
            "{name:?} is not a DNS name (letters, digits, '-' and '_' only)"
        ));
    }
    Ok(labels)
}

/// The bytes a host name may have here: what a target string can carry.
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A query for `name` (checked with [`labels`]) of type `qtype`, recursion
/// desired, with an EDNS0 OPT record announcing [`EDNS_BUFFER`].
pub(super) fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // QD 1, AN 0, NS 0, AR 1
    for label in labels(name)? {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type 41, class = UDP size, TTL 0 (no DO), no options.
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_BUFFER.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(out)
}

/// A bounds-checked cursor over a message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.msg.len())
            .ok_or(WireError::Malformed("ends early"))?;
        let out = &self.msg[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a (possibly compressed) name at the cursor; the cursor moves past
    /// the name as it is written here (up to and including a first pointer).
    fn name(&mut self) -> Result<String, WireError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Reads the name at `start`: its presentation form (lower case, no
/// trailing dot; `.` for the root) and where the name's bytes end at `start`.
/// A label byte outside letters, digits, `-` and `_` is refused.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    let mut pointers = 0;
    let mut wire_len = 1;
    // Where the bytes being read began: a pointer must go before it.
    let mut floor = start;
    loop {
        let len = *msg
            .get(pos)
            .ok_or(WireError::Malformed("name ends early"))? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Malformed("label ends early"))?;
                wire_len += len + 1;
                if wire_len > MAX_NAME {
                    return Err(WireError::Malformed("name over 255 bytes"));
                }
                if !label.iter().copied().all(name_byte) {
                    return Err(WireError::Malformed("a name with odd bytes"));
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| b.to_ascii_lowercase() as char));
                pos += 1 + len;
            }
            0xC0 => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(WireError::Malformed("pointer ends early"))?;
                let target = ((len & 0x3F) << 8) | low as usize;
                // Only before what is being read: the floor strictly
                // decreases, so a chain ends; the hop limit bounds it too.
                if target >= floor {
                    return Err(WireError::Malformed(
                        "a compression pointer that does not go back",
                    ));
                }
                floor = target;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(WireError::Malformed("too many compression pointers"));
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(WireError::Malformed("an unknown label type")),
        }
    }
    let end = end.unwrap_or(pos + 1);
    if name.is_empty() {
        name.push('.');
    }
    Ok((name, end))
}

/// Reads an answer to query `id` for `name` of type `qtype`: the records of
/// that type in the answer section (others, such as a CNAME on the way, are
/// skipped; SRV records whose target is `.` say "no service" and are left
/// out).
pub(super) fn answer(
    msg: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<Vec<Record>, WireError> {
    let mut r = Reader { msg, pos: 0 };
    let head = r.bytes(HEADER).map_err(|_| WireError::NotOurs)?;
    let field = |i: usize| u16::from_be_bytes([head[i], head[i + 1]]);
    let flags = field(2);
    // Not a response, another ID or another opcode: not ours.
    if field(0) != id || flags & 0x8000 == 0 || flags & 0x7800 != 0 || field(4) != 1 {
        return Err(WireError::NotOurs);
    }
    let qname = r.name().map_err(|_| WireError::NotOurs)?;
    let (qt, qc) = (r.u16()?, r.u16()?);
    let wanted = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if qname != wanted || qt != qtype || qc != CLASS_IN {
        return Err(WireError::NotOurs);
    }
    if flags & 0x0200 != 0 {
        return Err(WireError::Truncated);
    }
    match (flags & 0x000F) as u8 {
        0 => {}
        3 => return Err(WireError::NoSuchName),
        code => return Err(WireError::Rcode(code)),
    }
    let mut records = Vec::new();
    for _ in 0..field(6) {
        r.name()?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        r.bytes(4)?; // TTL
        let len = r.u16()? as usize;
        let rdata_at = r.pos;
        let rdata = r.bytes(len)?;
        if class != CLASS_IN || rtype != qtype {
            continue;
        }
        match rtype {
            TYPE_A if len == 4 => {
                records.push(Record::V4(Ipv4Addr::new(
                    rdata[0], rdata[1], rdata[2], rdata[3],
                )));
            }
            TYPE_AAAA if len == 16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(rdata);
                records.push(Record::V6(Ipv6Addr::from(octets)));
            }
            TYPE_SRV if len >= 7 => {
                let priority = u16::from_be_bytes([rdata[0], rdata[1]]);
                let port = u16::from_be_bytes([rdata[4], rdata[5]]);
                // The target may be compressed, pointing anywhere before it.
                let (host, host_end) = read_name(msg, rdata_at + 6)?;
                if host_end > rdata_at + len {
                    return Err(WireError::Malformed("an SRV target past its record"));
                }
                if host != "." && port != 0 {
                    records.push(Record::Srv {
                        priority,
                        host,
                        port,
                    });
                }
            }
            _ => return Err(WireError::Malformed("a record of the wrong length")),
        }
    }
    Ok(records)
}
