//! The smallest HTTP server that serves `/metrics`: one thread, `std::net`
//! and `poll(2)`, no async runtime.
//!
//! A scraper sends one short `GET` (or `HEAD`); anything else is answered
//! with an error status and closed. The thread holds at most
//! [`MAX_CONNECTIONS`] connections and waits on all of them and the listener
//! at once ([`crate::sys::poll`]), so no connection waits behind another:
//! a scrape is answered as soon as its request is in, however many idle or
//! slow connections are open. Each connection is bounded:
//!
//! - in time: closed [`CONNECTION_DEADLINE`] after it was accepted, whatever
//!   it was doing (slowloris, a reader that never reads);
//! - in memory: at most [`REQUEST_LIMIT`] bytes of request head (more gets
//!   `431`), and the one response it asked for;
//! - in number: a connection accepted when [`MAX_CONNECTIONS`] are open
//!   sheds the oldest one still sending its request (an idle or slow one;
//!   a scraper's request arrives with its connection and is answered at
//!   once), or the oldest of all when every one is being answered. File
//!   descriptors and memory stay bounded whatever the number of clients.
//!
//! A request that cannot become HTTP/1.x gets `400` as soon as that is
//! certain, not at the deadline: binary garbage and a TLS ClientHello at
//! their first byte, an HTTP/0.9 request (`GET /metrics` and no version) at
//! the end of its line ([`parse_head`]). The echo loops never wait on this
//! thread: it only reads what they publish.
//!
//! Other paths can be served beside `/metrics` ([`serve_routes`] with a
//! [`Routes`]): a route answers at once ([`Reply::Now`]) or hands back a slow
//! job ([`Reply::Later`], e.g. a `/probe` burst). A job never runs on this
//! thread: its connection leaves the poll set and goes to a thread of its
//! own, which runs the job and writes the answer itself with a
//! [`WRITE_TIMEOUT`]. How many jobs run at once is the route's to bound
//! (it can answer `503` at once instead of handing a job back). The poll
//! thread keeps watching a handed connection: when its client goes away
//! (closes or resets it) the job's stop flag is raised, so a client that
//! asks for a long job and hangs up at once does not keep it running to
//! the end (and its place taken from others).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::debug;

use crate::shutdown::Stop;
use crate::sys::{PollFd, poll};

/// The most a request head may take (request line and headers), in bytes. A
/// scraper's request is a few hundred.
pub const REQUEST_LIMIT: usize = 8 * 1024;

/// The longest one connection may stay open, from accept to close.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(2);

/// The most connections held at once: a few scrapers need a few; beyond
/// this, the oldest idle one is shed. Bounds the thread's descriptors
/// (this many plus the listener) and memory (this many request heads and
/// responses).
pub const MAX_CONNECTIONS: usize = 64;

/// The most connections taken from the listener's queue per wake-up, so a
/// flood of connections cannot keep the thread from the ones it holds.
const ACCEPTS_PER_ROUND: usize = 256;

/// The longest method name of a plausible request line (`OPTIONS` is 7).
const MAX_METHOD_LEN: usize = 16;

/// The longest request line taken (`GET /metrics HTTP/1.1` is 21 bytes): a
/// longer one is a `400` at once, which also bounds what is re-read while
/// the line is incomplete.
const MAX_REQUEST_LINE: usize = 1024;

/// How long a read takes from a socket at a time, in bytes (on the stack).
const READ_CHUNK: usize = 2048;

/// How often the thread looks at the stop flag when nothing happens.
const POLL: Duration = Duration::from_millis(50);

/// How long a job's thread may take to write its answer ([`Reply::Later`]):
/// a client that stops reading cannot hold the thread longer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer to a routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. 200, 400, 503.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// A plain-text answer of one line (a reason), as errors are.
    pub fn text(status: u16, line: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: format!("{}\n", line.trim_end()),
        }
    }

    /// The whole HTTP/1.1 message, `Connection: close`.
    fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        message(
            &format!("{} {}", self.status, reason(self.status)),
            &self.content_type,
            self.body.clone(),
            with_body,
        )
    }
}

/// The reason phrase of the statuses routes use.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A slow answer: runs on a thread of its own, never on the poll thread.
/// Its [`Stop`] is raised when the client goes away: the answer then has
/// nobody to go to, so the job may end early (its answer is dropped).
pub type Job = Box<dyn FnOnce(&Stop) -> Response + Send + 'static>;

/// What a route makes of a request.
pub enum Reply {
    /// The answer, at once (an error, a refusal, something cheap).
    Now(Response),
    /// Work that takes time: run on its own thread, which writes the answer.
    Later(Job),
}

/// A `GET` request for a path other than `/metrics`, as a route sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The path, e.g. `/probe` (not decoded).
    pub path: &'a str,
    /// What follows `?`, not decoded; empty if none.
    pub query: &'a str,
    /// The whole request head, for [`RequestHead::header`].
    head: &'a [u8],
}

impl RequestHead<'_> {
    /// The value of header `name` (case-insensitive), trimmed; the first one.
    pub fn header(&self, name: &str) -> Option<&str> {
        let text = std::str::from_utf8(self.head).ok()?;
        text.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Paths served beside `/metrics`.
pub trait Routes: Sync {
    /// The reply to `request`, or `None` for a path this does not serve (404).
    fn route(&self, request: &RequestHead<'_>) -> Option<Reply>;
}

/// No routes: only `/metrics`.
struct NoRoutes;

impl Routes for NoRoutes {
    fn route(&self, _: &RequestHead<'_>) -> Option<Reply> {
        None
    }
}

/// What a server serves: `/metrics` and its routes.
#[derive(Clone, Copy)]
struct Site<'a> {
    content_type: &'a str,
    render: &'a dyn Fn() -> String,
    routes: &'a dyn Routes,
    /// The last `GET /metrics` response, while a connection still sends it.
    shared: &'a SharedBody,
}

/// One rendered `/metrics` response that concurrent scrapes share: a fleet's
/// body is tens of MB, and 64 connections each with its own copy would hold
/// gigabytes. A scrape takes the last body only while another connection is
/// still sending it and it is younger than [`SHARE_FOR`]; a lone scraper
/// always gets a fresh one. Held weakly: once no connection sends it, the
/// body's memory goes back at once (it is not kept for a next scrape).
#[derive(Default)]
struct SharedBody(std::cell::RefCell<Option<(Instant, std::sync::Weak<Vec<u8>>)>>);

/// How old a body shared by concurrent scrapes may be.
const SHARE_FOR: Duration = Duration::from_secs(1);

impl SharedBody {
    /// The `GET /metrics` response: the one being sent, if young enough, else `make()`'s.
    fn get(&self, now: Instant, make: impl FnOnce() -> Vec<u8>) -> Arc<Vec<u8>> {
        let mut cell = self.0.borrow_mut();
        if let Some((at, body)) = cell.as_ref() {
            if now.saturating_duration_since(*at) < SHARE_FOR {
                if let Some(body) = body.upgrade() {
                    return body;
                }
            }
        }
        *cell = None;
        let body = Arc::new(make());
        *cell = Some((now, Arc::downgrade(&body)));
        body
    }
}

/// What a request asked for, as far as this server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// `HEAD /metrics`: the same headers, no body.
    MetricsHead,
    /// A well-formed request for anything else.
    NotFound,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Reads the request line of a complete request head. Pure, for tests.
pub fn parse_request(head: &[u8]) -> Request {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Request::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET", "/metrics") => Request::Metrics,
        ("HEAD", "/metrics") => Request::MetricsHead,
        _ => Request::NotFound,
    }
}

/// Judges what has arrived of a request head so far: `Some` when it is
/// decided — a complete head, or a start that no HTTP/1.x request has (a
/// first byte that is not an upper-case letter, as in binary garbage or a
/// TLS ClientHello; a control byte or an over-long method in the request
/// line; a request line without a version, HTTP/0.9; a request line over
/// 1 KiB) — `None` while more is needed. Pure, for tests.
pub fn parse_head(buf: &[u8]) -> Option<Request> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LINE || !plausible_request_line(line) {
        return Some(Request::BadRequest);
    }
    let end = line_end?;
    match parse_request(&buf[..end]) {
        Request::BadRequest => Some(Request::BadRequest),
        request => head_end(buf).map(|_| request),
    }
}

/// Whether `line` (all or the start of a request line, no line end) can
/// still be `METHOD SP TARGET SP VERSION`: an upper-case method, then
/// printable ASCII.
fn plausible_request_line(line: &[u8]) -> bool {
    let method_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let method = &line[..method_len];
    let method_ok = method.iter().all(u8::is_ascii_uppercase)
        && method.len() <= MAX_METHOD_LEN
        && (method_len > 0 || line.is_empty());
    method_ok
        && line[method_len..]
            .iter()
            .all(|&b| (b' '..=b'~').contains(&b))
}

/// Where a request head ends (after its blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One open connection: reading its request head, then writing its answer.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// When it is closed, done or not.
    deadline: Instant,
    /// Accept order: the lowest is the oldest.
    serial: u64,
    /// The request head so far (at most [`REQUEST_LIMIT`] bytes).
    head: Vec<u8>,
    /// Whether `head` holds the whole request line: from then on only a
    /// blank line in new bytes can decide the request, so a head fed a
    /// byte at a time is not re-read whole each time.
    line_done: bool,
    /// The response and how much of it is written, once the request is judged.
    out: Option<(Arc<Vec<u8>>, usize)>,
}

/// What became of a connection after it was given a turn.
enum Turn {
    /// Waiting for more of the request, or for room to write.
    Open,
    /// Answered, closed by the peer, or failed: drop it.
    Done,
    /// A routed request with a slow answer: the connection goes to a
    /// thread of its own with this job.
    Hand(Job),
}

impl Connection {
    /// Reads what has arrived (a request head decided: its response is built
    /// and written) or writes more of the response. Never blocks.
    fn advance(&mut self, site: Site<'_>) -> io::Result<Turn> {
        if self.out.is_none() {
            let mut chunk = [0u8; READ_CHUNK];
            let request = loop {
                let room = REQUEST_LIMIT - self.head.len();
                if room == 0 {
                    break Some(None);
                }
                match self.stream.read(&mut chunk[..room.min(READ_CHUNK)]) {
                    Ok(0) => return Ok(Turn::Done),
                    Ok(n) => {
                        let old = self.head.len();
                        self.head.extend_from_slice(&chunk[..n]);
                        let decisive = !self.line_done
                            || head_end(&self.head[old.saturating_sub(3)..]).is_some();
                        self.line_done |= chunk[..n].contains(&b'\n');
                        if let Some(request) = decisive.then(|| parse_head(&self.head)).flatten() {
                            break Some(Some(request));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                    Err(e) => return Err(e),
                }
            };
            match request {
                None => return Ok(Turn::Open),
                Some(Some(Request::NotFound)) => match routed(&self.head, site.routes) {
                    Some(Reply::Later(job)) => return Ok(Turn::Hand(job)),
                    Some(Reply::Now(answer)) => {
                        self.out = Some((Arc::new(answer.to_bytes(true)), 0));
                    }
                    None => {
                        self.out = Some((Arc::new(response(Some(Request::NotFound), site)), 0));
                    }
                },
                Some(Some(Request::Metrics)) => {
                    let body = site
                        .shared
                        .get(Instant::now(), || response(Some(Request::Metrics), site));
                    self.out = Some((body, 0));
                }
                Some(request) => self.out = Some((Arc::new(response(request, site)), 0)),
            }
        }
        let Some((out, written)) = &mut self.out else {
            return Ok(Turn::Open);
        };
        while *written < out.len() {
            match self.stream.write(&out[*written..]) {
                Ok(0) => return Ok(Turn::Done),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Turn::Open),
                Err(e) => return Err(e),
            }
        }
        self.stream.shutdown(Shutdown::Write)?;
        Ok(Turn::Done)
    }

    fn writing(&self) -> bool {
        self.out.is_some()
    }
}

/// A `GET` for another path than `/metrics`, given to the routes.
fn routed(head: &[u8], routes: &dyn Routes) -> Option<Reply> {
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return None;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    routes.route(&RequestHead { path, query, head })
}

/// The whole response to `request` (`None`: a head over [`REQUEST_LIMIT`]).
fn response(request: Option<Request>, site: Site<'_>) -> Vec<u8> {
    let (status, content_type, body, with_body) = match request {
        Some(Request::Metrics) => ("200 OK", site.content_type, (site.render)(), true),
        Some(Request::MetricsHead) => ("200 OK", site.content_type, (site.render)(), false),
        Some(Request::NotFound) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".to_owned(),
            true,
        ),
        Some(Request::BadRequest) => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".to_owned(),
            true,
        ),
        None => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request too large\n".to_owned(),
            true,
        ),
    };
    message(status, content_type, body, with_body)
}

/// An HTTP/1.1 message with `status` ("200 OK"), closing the connection.
fn message(status: &str, content_type: &str, body: String, with_body: bool) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !with_body {
        return head.into_bytes();
    }
    // The head goes in front of the body in the body's own buffer: a fleet's
    // body is tens of MB, and a copy of it would double the scrape's memory.
    let mut out = body.into_bytes();
    out.splice(0..0, head.into_bytes());
    out
}

/// Serves connections until `stop`, answering `GET /metrics` (and `HEAD`)
/// with `render()` (Prometheus text format, `content_type`). Errors are
/// logged at debug and survived: the thread ends only with the stop flag.
pub fn serve(listener: &TcpListener, stop: &Stop, content_type: &str, render: &dyn Fn() -> String) {
    serve_routes(listener, stop, content_type, render, &NoRoutes);
}

/// [`serve`], with `routes` answering `GET`s for other paths.
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
fn shed(connections: &[Connection]) -> usize {
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

#[cfg(test)]
mod tests;
