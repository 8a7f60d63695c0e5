//! Targets from DNS, with no resolver library: `dns+srv:NAME` (every SRV
//! record is a target) and `dns+a:NAME:PORT` (every address of NAME).
//!
//! `dns+a` asks the system resolver (`getaddrinfo`, so `/etc/hosts` and
//! nsswitch count as they do for every other program). `dns+srv` has no
//! system call to ask, so it is a small DNS client of its own (`wire.rs` the
//! message format): the nameservers, `search`, `ndots`, `timeout` and
//! `attempts` of `/etc/resolv.conf`; a query over UDP from a fresh socket
//! (a random source port) with a random ID and EDNS0 (4096-byte answers), an
//! answer taken only from the server asked, with our ID and our question
//! echoed; a truncated answer asked again over TCP (a headless Service with
//! hundreds of pods does not fit a datagram). Blocking, bounded in time:
//! at most `timeout` × `attempts` per nameserver.
//!
//! An SRV target is `HOST:PORT` with HOST the record's target name (no
//! trailing dot), not its address: the `target` label then names the pod
//! or host as DNS does, and the prober resolves it when it probes.

mod wire;

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use super::TargetGroup;
use wire::WireError;
use wire::{Record, TYPE_SRV};

/// The resolver configuration this module reads.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The targets NAME's SRV records name, as one group (sorted, deduplicated).
pub fn srv(name: &str) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    let config = ResolvConf::parse(&text);
    let records = lookup(&config, name, TYPE_SRV)?;
    let mut targets: Vec<(u16, String)> = records
        .into_iter()
        .filter_map(|r| match r {
            Record::Srv {
                priority,
                host,
                port,
            } => Some((priority, format!("{host}:{port}"))),
            _ => None,
        })
        .collect();
    targets.sort();
    let mut seen = BTreeSet::new();
    targets.retain(|(_, t)| seen.insert(t.clone()));
    if targets.is_empty() {
        return Err(format!("{name} has no SRV records"));
    }
    Ok(vec![TargetGroup {
        targets: targets.into_iter().map(|(_, t)| t).collect(),
        labels: Default::default(),
    }])
}

/// Every address NAME resolves to, at `port`, as one group: A and AAAA,
/// deduplicated, sorted (`192.0.2.1:7`, `[2001:db8::1]:7`).
pub fn a(name: &str, port: u16) -> Result<Vec<TargetGroup>, String> {
    let addrs: BTreeSet<SocketAddr> = (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{name} has no addresses"));
    }
    Ok(vec![TargetGroup {
        targets: addrs.iter().map(SocketAddr::to_string).collect(),
        labels: Default::default(),
    }])
}

/// What `/etc/resolv.conf` says, as far as this client uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// Up to three nameservers, in order (none: 127.0.0.1, as glibc does).
    pub nameservers: Vec<IpAddr>,
    /// `search` (or `domain`) suffixes.
    pub search: Vec<String>,
    /// `options ndots:N` (1 by default).
    pub ndots: usize,
    /// `options timeout:N`, per query and server (5 s by default, at most 30).
    pub timeout: Duration,
    /// `options attempts:N`, rounds over the servers (2 by default, at most 5).
    pub attempts: u32,
}

impl ResolvConf {
    /// Reads resolv.conf's text; what it does not understand is skipped, as
    /// the system resolver does.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped address (fe80::1%eth0) is not parsed: skipped.
                    let ip = words.next().and_then(|w| w.parse().ok());
                    if let (Some(ip), true) = (ip, conf.nameservers.len() < 3) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search" | "domain") => {
                    conf.search = words.map(str::to_owned).collect();
                }
                Some("options") => {
                    for option in words {
                        let (key, value) = option.split_once(':').unwrap_or((option, ""));
                        let n = value.parse::<u32>().ok();
                        match (key, n) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => {
                                conf.timeout = Duration::from_secs(n.clamp(1, 30).into());
                            }
                            ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        conf
    }

    /// The names to try for `name`, in order: as given when it ends with a
    /// dot; else with the search suffixes, the name alone first when it has
    /// at least `ndots` dots and last otherwise (the system resolver's order).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_owned()];
        }
        let searched = self
            .search
            .iter()
            .map(|s| format!("{name}.{}", s.strip_suffix('.').unwrap_or(s)));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_owned()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_owned())).collect()
        }
    }
}

/// Asks for `name`'s records of `qtype`, trying the search list: the first
/// candidate with records wins; NXDOMAIN or no records moves to the next;
/// a server that does not answer ends the lookup (the next name would not
/// fare better). The error names the name as given.
fn lookup(conf: &ResolvConf, name: &str, qtype: u16) -> Result<Vec<Record>, String> {
    wire::labels(name)?;
    let mut first_error = None;
    for candidate in conf.candidates(name) {
        if wire::labels(&candidate).is_err() {
            continue;
        }
        match ask(conf, &candidate, qtype) {
            Ok(records) if !records.is_empty() => return Ok(records),
            Ok(_) => {
                first_error.get_or_insert_with(|| format!("{name} has no records of that type"));
            }
            Err(Failure::Answer(WireError::NoSuchName)) => {
                first_error.get_or_insert_with(|| format!("{name}: no such name (NXDOMAIN)"));
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Err(first_error.unwrap_or_else(|| format!("{name}: nothing to ask")))
}

/// Why one question got no answer.
#[derive(Debug)]
enum Failure {
    /// A server answered, but not with records.
    Answer(WireError),
    /// No server answered in time (or at all).
    Silent {
        servers: usize,
        waited: Duration,
        last: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Answer(e) => e.fmt(f),
            Failure::Silent {
                servers,
                waited,
                last,
            } => write!(
                f,
                "no answer from {servers} nameserver(s) of {RESOLV_CONF} in {:.1} s ({last})",
                waited.as_secs_f64()
            ),
        }
    }
}

/// One question to the servers: `attempts` rounds over them, `timeout` each.
fn ask(conf: &ResolvConf, name: &str, qtype: u16) -> Result<Vec<Record>, Failure> {
    let started = Instant::now();
    let mut last = String::from("nothing sent");
    for _ in 0..conf.attempts {
        for &ip in &conf.nameservers {
            let server = SocketAddr::new(ip, 53);
            match ask_udp(server, name, qtype, conf.timeout) {
                Ok(records) => return Ok(records),
                Err(Step::Answer(WireError::Truncated)) => {
                    match ask_tcp(server, name, qtype, conf.timeout) {
                        Ok(records) => return Ok(records),
                        Err(Step::Answer(e)) => return Err(Failure::Answer(e)),
                        Err(Step::Io(e)) => last = format!("{server} over TCP: {e}"),
                    }
                }
                Err(Step::Answer(e)) => return Err(Failure::Answer(e)),
                Err(Step::Io(e)) => last = format!("{server}: {e}"),
            }
        }
    }
    Err(Failure::Silent {
        servers: conf.nameservers.len(),
        waited: started.elapsed(),
        last,
    })
}

/// What one exchange with one server gave.
enum Step {
    /// The server's answer was an error (or truncated).
    Answer(WireError),
    /// The exchange failed: no answer in time, refused, unreachable.
    Io(String),
}

/// A random 16-bit query ID, from the process's randomly keyed hasher (the
/// OS's randomness, no extra crate).
fn random_id() -> u16 {
    let nanos = Instant::now().elapsed().as_nanos() ^ std::process::id() as u128;
    RandomState::new().hash_one(nanos) as u16
}

/// One question over UDP: a fresh socket (the kernel picks a random source
/// port), connected to the server so only its datagrams arrive; datagrams
/// that do not answer our question are ignored until `timeout`.
fn ask_udp(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Vec<Record>, Step> {
    let io = |e: io::Error| Step::Io(e.to_string());
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    let id = random_id();
    let question = wire::query(id, name, qtype).map_err(Step::Io)?;
    socket.send(&question).map_err(io)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Step::Io(format!("no answer in {} s", timeout.as_secs())));
        }
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(io(e)),
        };
        if from != server {
            continue;
        }
        match wire::answer(&buf[..n], id, name, qtype) {
            Ok(records) => return Ok(records),
            // A stray or spoofed datagram: keep waiting for ours.
            Err(WireError::NotOurs) => continue,
            Err(e) => return Err(Step::Answer(e)),
        }
    }
}

/// One question over TCP (after a truncated UDP answer), the whole exchange
/// within `timeout`.
fn ask_tcp(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Vec<Record>, Step> {
    let io = |e: io::Error| Step::Io(e.to_string());
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(io)?;
    let id = random_id();
    let question = wire::query(id, name, qtype).map_err(Step::Io)?;
    let mut framed = (question.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&question);
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero())
            .then_some(left)
            .ok_or_else(|| Step::Io(format!("no answer over TCP in {} s", timeout.as_secs())))
    };
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    stream.write_all(&framed).map_err(io)?;
    let mut read_exact = |buf: &mut [u8]| -> Result<(), Step> {
        let mut got = 0;
        while got < buf.len() {
            stream.set_read_timeout(Some(left()?)).map_err(io)?;
            match stream.read(&mut buf[got..]) {
                Ok(0) => return Err(Step::Io("the server closed the TCP connection".into())),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    };
    let mut len = [0u8; 2];
    read_exact(&mut len)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    read_exact(&mut msg)?;
    match wire::answer(&msg, id, name, qtype) {
        Ok(records) => Ok(records),
        // Over TCP, from the server we connected to, with our ID: a wrong
        // answer is the server's, and a truncated one has nowhere else to go.
        Err(WireError::NotOurs) => Err(Step::Io("an answer to another question over TCP".into())),
        Err(e) => Err(Step::Answer(e)),
    }
}

#[cfg(test)]
mod tests;
