//! Everywhere but Linux: the same API as `linux.rs` with the standard library
//! only — one datagram per receive or send call, and no path-MTU options
//! (reported as unsupported). Slower, but correct, and free of `unsafe`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::EchoOutcome;
use super::RECV_BUFFER_LEN;

/// Receive and echo buffers for one socket: one datagram per call here.
pub struct Batch {
    storage: Vec<u8>,
    lens: Vec<usize>,
    sources: Vec<Option<SocketAddr>>,
    filled: usize,
}

impl Batch {
    /// Room for `capacity` datagrams (only the first is used per call here).
    pub fn new(capacity: usize) -> Batch {
        let capacity = capacity.max(1);
        Batch {
            storage: vec![0u8; capacity * RECV_BUFFER_LEN],
            lens: vec![0; capacity],
            sources: vec![None; capacity],
            filled: 0,
        }
    }

    /// How many datagrams one receive could take.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Receives one datagram, blocking up to the socket's read timeout.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.filled = 0;
        let (len, source) = socket.recv_from(&mut self.storage[..RECV_BUFFER_LEN])?;
        self.lens[0] = len;
        self.sources[0] = Some(source);
        self.filled = 1;
        Ok(1)
    }

    /// Takes one datagram if one is queued, without blocking.
    pub fn recv_queued(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        socket.set_nonblocking(true)?;
        let result = self.recv(socket);
        socket.set_nonblocking(false)?;
        result
    }

    /// The `i`-th datagram of the last receive and its source.
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        assert!(i < self.filled, "slot {i} was not filled");
        let start = i * RECV_BUFFER_LEN;
        (&self.storage[start..start + self.lens[i]], self.sources[i])
    }

    /// No TOS here.
    pub fn tos(&self, _i: usize) -> Option<u8> {
        None
    }

    /// No kernel receive times here.
    pub fn rx_time_ns(&self, _i: usize) -> Option<u64> {
        None
    }

    /// No TTL here.
    pub fn ttl(&self, _i: usize) -> Option<u8> {
        None
    }

    /// No destination address here.
    pub fn destination(&self, _i: usize) -> Option<std::net::IpAddr> {
        None
    }

    /// Sends slot `i`'s datagram to `to` instead of back to its source.
    pub fn set_destination(&mut self, i: usize, to: SocketAddr) {
        assert!(i < self.filled, "slot {i} was not filled");
        self.sources[i] = Some(to);
    }

    /// Slot `i`'s whole buffer, writable (the STAMP reflector's reply).
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.filled, "slot {i} was not filled");
        let start = i * RECV_BUFFER_LEN;
        &mut self.storage[start..start + RECV_BUFFER_LEN]
    }

    /// Replies from the address asked: unsupported here (never called, as
    /// [`enable_reply_source`] fails).
    pub fn reply_from_destination(&mut self) {}

    /// Sends the datagrams for which `reply(i)` is `Some` back to their
    /// sources, one call each; the TOS it gives is not set here.
    pub fn echo(
        &mut self,
        socket: &UdpSocket,
        mut reply: impl FnMut(usize) -> Option<u8>,
    ) -> EchoOutcome {
        let mut outcome = EchoOutcome::default();
        for i in 0..self.filled {
            let (data, source) = self.datagram(i);
            let Some(source) = source.filter(|_| reply(i).is_some()) else {
                continue;
            };
            outcome.count(socket.send_to(data, source));
        }
        outcome
    }
}

/// Probes to send on a connected socket, one call each here.
pub struct SendBatch {
    storage: Vec<u8>,
    len: usize,
    capacity: usize,
}

impl SendBatch {
    /// Room for `capacity` datagrams of `len` bytes each.
    pub fn new(capacity: usize, len: usize) -> SendBatch {
        let capacity = capacity.max(1);
        SendBatch {
            storage: vec![0u8; capacity * len.max(1)],
            len,
            capacity,
        }
    }

    /// How many datagrams one call can send.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes of datagram `i`.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.storage[i * self.len..(i + 1) * self.len]
    }

    /// Sends datagrams `from..to`; returns how many went before the first
    /// refusal, or that refusal when it is the first.
    pub fn send(&mut self, socket: &UdpSocket, from: usize, to: usize) -> io::Result<usize> {
        for i in from..to {
            if let Err(e) = socket.send(&self.storage[i * self.len..(i + 1) * self.len]) {
                return if i == from { Err(e) } else { Ok(i - from) };
            }
        }
        Ok(to - from)
    }
}

/// Waits until `socket` has a datagram (or an error) queued, at most `timeout`,
/// by peeking with a temporary read timeout.
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    let previous = socket.read_timeout()?;
    let mut byte = [0u8; 1];
    let result = if timeout.is_zero() {
        socket.set_nonblocking(true)?;
        let r = socket.peek(&mut byte);
        socket.set_nonblocking(false)?;
        r
    } else {
        socket.set_read_timeout(Some(timeout))?;
        let r = socket.peek(&mut byte);
        socket.set_read_timeout(previous)?;
        r
    };
    match result {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(false)
            }
            // A queued error (e.g. ICMP port unreachable): the next receive reports it.
            _ => Ok(true),
        },
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported on this platform (Linux only)"),
    )
}

/// Not available here: `--pmtu` reports it as unsupported.
pub fn set_dont_fragment(_socket: &UdpSocket, _ipv6: bool) -> io::Result<()> {
    Err(unsupported("setting the don't-fragment bit"))
}

/// Not available here.
pub fn path_mtu(_socket: &UdpSocket, _ipv6: bool) -> io::Result<u32> {
    Err(unsupported("reading the path MTU"))
}

/// No netlink here: `net::local_addrs::LocalAddrs`
/// asks with a test bind instead.
#[derive(Debug)]
pub struct LocalRoutes;

impl LocalRoutes {
    /// Always unsupported here.
    pub fn open() -> io::Result<LocalRoutes> {
        Err(unsupported("asking the kernel's routes (netlink)"))
    }

    /// Never reached: [`open`](Self::open) fails.
    pub fn is_local(&mut self, _ip: std::net::IpAddr) -> io::Result<bool> {
        Err(unsupported("asking the kernel's routes (netlink)"))
    }
}

/// Bytes per receive buffer of a [`GroBatch`].
pub const GRO_BUFFER_LEN: usize = 65536;

/// Segments per segmented send at most (no GSO here: each is its own send).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// No UDP GRO here: the server keeps its batched loop.
pub fn enable_gro(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("UDP GRO"))
}

/// Sends `data` as datagrams of `segment_size` bytes (the last may be
/// shorter), one call each here; returns the bytes sent.
pub fn send_segmented(
    socket: &UdpSocket,
    to: Option<SocketAddr>,
    data: &[u8],
    segment_size: usize,
) -> io::Result<usize> {
    let send = |datagram: &[u8]| match to {
        Some(to) => socket.send_to(datagram, to),
        None => socket.send(datagram),
    };
    if data.is_empty() {
        return send(data);
    }
    let mut sent = 0;
    for datagram in data.chunks(segment_size.max(1)) {
        sent += send(datagram)?;
    }
    Ok(sent)
}

/// No TTL control messages here: STAMP replies report 255 (unknown).
pub fn enable_recv_ttl(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("IP_RECVTTL"))
}

/// No destination address control messages here: a wildcard-bound STAMP
/// reflector leaves the Location TLV's destination address unanswered.
pub fn enable_recv_destination(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("IP_PKTINFO"))
}

/// No destination address control messages here: a wildcard-bound server
/// answers from the kernel's choice of source address.
pub fn enable_reply_source(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("IP_PKTINFO"))
}

/// No kernel receive time stamps here: round trips use the client's clock.
pub fn enable_rx_timestamps(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("kernel receive time stamps"))
}

/// Kernel transmit time stamps: unsupported here (round trips start at the
/// user-space send time).
pub fn enable_tx_timestamps(_socket: &UdpSocket) -> io::Result<()> {
    Err(unsupported("kernel transmit time stamps"))
}

/// No transmit stamps here: nothing to turn off.
pub fn disable_tx_timestamps(_socket: &UdpSocket) -> io::Result<()> {
    Ok(())
}

/// No transmit stamps here: nothing to read.
pub fn read_tx_timestamps(
    _socket: &UdpSocket,
    _on_stamp: &mut dyn FnMut(u32, u64),
) -> io::Result<usize> {
    Ok(0)
}

/// Test hook of the Linux build; unsupported here.
#[doc(hidden)]
pub fn disable_udp_checksums(_socket: &UdpSocket, _sends: bool) -> io::Result<()> {
    Err(unsupported("turning UDP checksums off"))
}

/// The GRO batch's API with one datagram per buffer and one `send_to` per
/// datagram: what the Linux one does without GRO and GSO.
pub struct GroBatch {
    inner: Batch,
    /// Queued (slot, first datagram) pairs; a buffer here holds one datagram.
    queued: Vec<usize>,
    flushed: bool,
}

impl GroBatch {
    /// Room for `capacity` buffers (only the first is used per call here).
    pub fn new(capacity: usize) -> GroBatch {
        let capacity = capacity.max(1);
        GroBatch {
            inner: Batch::new(capacity),
            queued: Vec::with_capacity(capacity),
            flushed: false,
        }
    }

    /// Replies from the address asked: unsupported here (never called, as
    /// [`enable_reply_source`] fails).
    pub fn reply_from_destination(&mut self) {}

    /// How many buffers one receive could take.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Always false here.
    pub fn gso(&self) -> bool {
        false
    }

    /// Nothing to switch off here.
    pub fn disable_gso(&mut self) {}

    /// Receives one datagram, blocking up to the socket's read timeout.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.queued.clear();
        self.flushed = false;
        self.inner.recv(socket)
    }

    /// Takes one datagram if one is queued, without blocking.
    pub fn recv_queued(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.queued.clear();
        self.flushed = false;
        self.inner.recv_queued(socket)
    }

    /// No kernel receive times here.
    pub fn rx_time_ns(&self, _i: usize) -> Option<u64> {
        None
    }

    /// No TOS here.
    pub fn tos(&self, _i: usize) -> Option<u8> {
        None
    }

    /// No TTL here.
    pub fn ttl(&self, _i: usize) -> Option<u8> {
        None
    }

    /// No destination address here.
    pub fn destination(&self, _i: usize) -> Option<std::net::IpAddr> {
        None
    }

    /// No reply source here: the kernel's choice.
    pub fn reply_source(&self, _i: usize) -> Option<std::net::IpAddr> {
        None
    }

    /// Datagram `k` of buffer `slot` (here only datagram 0), writable.
    pub fn datagram_mut(&mut self, slot: usize, k: usize) -> &mut [u8] {
        let len = if k == 0 { self.inner.lens[slot] } else { 0 };
        &mut self.inner.slot_mut(slot)[..len]
    }

    /// Buffer `i` of the last receive: one datagram.
    pub fn buffer(&self, i: usize) -> super::GroBuffer<'_> {
        let (data, source) = self.inner.datagram(i);
        super::GroBuffer::new(data, source, None, false)
    }

    /// Queues datagrams `datagrams` of buffer `slot` (here only datagram 0
    /// exists); returns how many it queued. The TOS is not set here.
    pub fn queue(&mut self, slot: usize, datagrams: std::ops::Range<usize>, _tos: u8) -> usize {
        if self.flushed {
            self.queued.clear();
            self.flushed = false;
        }
        let wanted = datagrams.end.min(1).saturating_sub(datagrams.start);
        if wanted == 0 || self.queued.len() == self.queued.capacity() {
            return 0;
        }
        self.queued.push(slot);
        1
    }

    /// Sends the queued datagrams, one `send_to` each.
    pub fn flush(&mut self, socket: &UdpSocket) -> EchoOutcome {
        let mut outcome = EchoOutcome::default();
        if self.flushed {
            return outcome;
        }
        self.flushed = true;
        for &slot in &self.queued {
            let (data, source) = self.inner.datagram(slot);
            let Some(source) = source else { continue };
            outcome.count(socket.send_to(data, source));
        }
        outcome
    }

    /// The datagrams last queued, as (length, destination).
    pub fn queued_datagrams(&self) -> impl Iterator<Item = (usize, SocketAddr)> + '_ {
        self.queued.iter().filter_map(|&slot| {
            let (data, source) = self.inner.datagram(slot);
            source.map(|to| (data.len(), to))
        })
    }

    /// The messages last queued, as (slot, datagrams): one datagram each here.
    pub fn queued_messages(&self) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> + '_ {
        self.queued.iter().map(|&slot| (slot, 0..1))
    }
}

/// Socket activation needs to take ownership of raw descriptors, which this
/// std-only layer does not do: not activated, nothing to take; activated, an
/// error that says so (the environment is left as it is).
pub fn take_listen_fds() -> io::Result<Vec<std::os::fd::OwnedFd>> {
    match super::listen_fds::listen_fds_from_env()? {
        0 => Ok(Vec::new()),
        _ => Err(unsupported("socket activation (LISTEN_FDS)")),
    }
}

/// The clock's synchronisation is not asked for here: unknown, so a STAMP
/// error estimate claims nothing (S clear).
pub fn kernel_clock() -> Option<super::KernelClock> {
    None
}
