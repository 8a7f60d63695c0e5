//! The poll thread: [`serve_routes`] waits on the listener and every
//! connection at once, accepts, sheds, and hands slow jobs to threads of
//! their own (watching their clients).

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::debug;

use super::connection::{Connection, SharedBody, Site, Turn};
use super::{CONNECTION_DEADLINE, Job, MAX_CONNECTIONS, Routes, WRITE_TIMEOUT};
use crate::shutdown::Stop;
use crate::sys::{PollFd, poll};

/// The most connections taken from the listener's queue per wake-up, so a
/// flood of connections cannot keep the thread from the ones it holds.
const ACCEPTS_PER_ROUND: usize = 256;

/// How often the thread looks at the stop flag when nothing happens.
const POLL: Duration = Duration::from_millis(50);

/// [`serve`](super::serve), with `routes` answering `GET`s for other paths.
pub fn serve_routes(
    listener: &TcpListener,
    stop: &Stop,
    content_type: &str,
    render: &dyn Fn() -> String,
    routes: &dyn Routes,
) {
    let shared = SharedBody::default();
    let site = Site {
        content_type,
        render,
        routes,
        shared: &shared,
    };
    if let Err(e) = listener.set_nonblocking(true) {
        log::warn!("metrics endpoint off: cannot make the listener non-blocking: {e}");
        return;
    }
    let mut connections: Vec<Connection> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut fds: Vec<PollFd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
    let mut serial = 0u64;
    let mut watched: Vec<Watch> = Vec::new();
    while !stop.is_requested() {
        watched.retain(|w| !w.done.load(Ordering::Acquire));
        let now = Instant::now();
        connections.retain(|c| {
            let open = c.deadline > now;
            if !open {
                debug!(
                    "metrics: {}: closed at the {CONNECTION_DEADLINE:?} deadline",
                    c.peer
                );
            }
            open
        });
        fds.clear();
        fds.push(PollFd::new(listener, false));
        fds.extend(
            connections
                .iter()
                .map(|c| PollFd::new(&c.stream, c.writing())),
        );
        fds.extend(watched.iter().map(|w| PollFd::new(&w.stream, false)));
        let wait = connections
            .iter()
            .map(|c| c.deadline.saturating_duration_since(now))
            .fold(POLL, Duration::min);
        if let Err(e) = poll(&mut fds, wait) {
            debug!("metrics: poll: {e}");
            stop.sleep_until(Instant::now() + POLL);
            continue;
        }
        // The connections held first, then newcomers: a flood of new
        // connections never delays a request that has arrived.
        let mut k = 0;
        let mut handed = Vec::new();
        let held = connections.len();
        watched.retain(|w| {
            k += 1;
            !fds[held + k].ready() || w.still_there()
        });
        k = 0;
        connections.retain_mut(|c| {
            k += 1;
            !fds[k].ready() || turn(c, site, &mut handed)
        });
        if fds[0].ready() {
            accept(listener, &mut connections, &mut serial, site, &mut handed);
        }
        for job in handed {
            if let Some(watch) = hand(job) {
                if watched.len() < MAX_CONNECTIONS {
                    watched.push(watch);
                }
            }
        }
    }
}

/// A connection whose job runs on its own thread, watched (for readability)
/// by the poll thread so the job learns when its client goes away.
struct Watch {
    /// A copy of the connection's descriptor (non-blocking, as the job's
    /// thread keeps it).
    stream: TcpStream,
    /// The job's stop flag.
    stop: Stop,
    /// Set by the job's thread when the job has returned.
    done: Arc<AtomicBool>,
}

impl Watch {
    /// After a readable wake-up: whether to keep watching. The client closed
    /// or reset the connection (a peek reads end of file or an error): the
    /// job is stopped. Bytes sent after the request (pipelining, which is
    /// not answered) end the watch, the job running on: only a clean
    /// end-of-file says the client left.
    fn still_there(&self) -> bool {
        match self.stream.peek(&mut [0u8; 1]) {
            Ok(0) => {
                self.stop.request();
                false
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(_) => {
                self.stop.request();
                false
            }
        }
    }
}

/// Gives `c` a turn; whether it stays open. A connection with a slow job
/// is taken out: its stream and job go to `handed`.
fn turn(
    c: &mut Connection,
    site: Site<'_>,
    handed: &mut Vec<(TcpStream, SocketAddr, Job)>,
) -> bool {
    match c.advance(site) {
        Ok(Turn::Open) => true,
        Ok(Turn::Done) => false,
        Ok(Turn::Hand(job)) => {
            match c.stream.try_clone() {
                Ok(stream) => handed.push((stream, c.peer, job)),
                Err(e) => debug!("metrics: {}: {e}", c.peer),
            }
            false
        }
        Err(e) => {
            debug!("metrics: {}: {e}", c.peer);
            false
        }
    }
}

/// Takes what the listener has queued (up to [`ACCEPTS_PER_ROUND`]): each
/// connection is read at once (a scraper's request is usually there
/// already, and is answered on the spot); one still open joins
/// `connections`, shedding the oldest idle one when they are full.
fn accept(
    listener: &TcpListener,
    connections: &mut Vec<Connection>,
    serial: &mut u64,
    site: Site<'_>,
    handed: &mut Vec<(TcpStream, SocketAddr, Job)>,
) {
    for _ in 0..ACCEPTS_PER_ROUND {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // EMFILE, ECONNABORTED…: try again at the next wake-up.
                debug!("metrics: accept: {e}");
                return;
            }
        };
        if let Err(e) = stream.set_nonblocking(true) {
            debug!("metrics: {peer}: {e}");
            continue;
        }
        *serial += 1;
        let mut c = Connection {
            stream,
            peer,
            deadline: Instant::now() + CONNECTION_DEADLINE,
            serial: *serial,
            head: Vec::new(),
            line_done: false,
            out: None,
        };
        if !turn(&mut c, site, handed) {
            continue;
        }
        if connections.len() >= MAX_CONNECTIONS {
            let victim = shed(connections);
            let gone = connections.swap_remove(victim);
            debug!(
                "metrics: {}: shed ({MAX_CONNECTIONS} connections open)",
                gone.peer
            );
        }
        connections.push(c);
    }
}

/// Runs `job` on a thread of its own, which writes its answer to `stream`
/// (within [`WRITE_TIMEOUT`]) and closes it; the [`Watch`] that stops the
/// job if the client goes away first. If no thread can be started, the
/// connection is dropped (and the job with it, unrun).
fn hand((stream, peer, job): (TcpStream, SocketAddr, Job)) -> Option<Watch> {
    let stop = Stop::new();
    let done = Arc::new(AtomicBool::new(false));
    let watch = stream.try_clone().ok().map(|copy| Watch {
        stream: copy,
        stop: stop.clone(),
        done: Arc::clone(&done),
    });
    let worker = move || {
        let answer = job(&stop).to_bytes(true);
        done.store(true, Ordering::Release);
        // Non-blocking throughout: the poll thread peeks at a copy of this
        // descriptor, which shares its blocking mode.
        let written = write_within(&stream, &answer, Instant::now() + WRITE_TIMEOUT)
            .and_then(|()| stream.shutdown(Shutdown::Write));
        if let Err(e) = written {
            debug!("metrics: {peer}: {e}");
        }
    };
    match thread::Builder::new().name("http-job".into()).spawn(worker) {
        Ok(_) => watch,
        Err(e) => {
            debug!("metrics: {peer}: no thread for the request: {e}");
            None
        }
    }
}

/// Writes all of `bytes` to the non-blocking `stream`, waiting for room
/// with [`poll`], by `deadline`.
fn write_within(stream: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut out = stream;
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client does not read its answer",
                    ));
                }
                poll(&mut [PollFd::new(stream, true)], left)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The connection to drop for a newcomer: the oldest still sending its
/// request, or the oldest of all when every one is being answered.
pub(super) fn shed(connections: &[Connection]) -> usize {
    let oldest = |reading: bool| {
        connections
            .iter()
            .enumerate()
            .filter(|(_, c)| !reading || !c.writing())
            .min_by_key(|(_, c)| c.serial)
            .map(|(i, _)| i)
    };
    oldest(true).or_else(|| oldest(false)).unwrap_or(0)
}
