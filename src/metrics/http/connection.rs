//! One connection of the `/metrics` server: reading its request head, then
//! building and writing its answer (a `/metrics` body shared by concurrent
//! scrapes, or a route's).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::parse::{Request, head_end, parse_head};
use super::{Job, REQUEST_LIMIT, Reply, RequestHead, Routes, message};

/// How long a read takes from a socket at a time, in bytes (on the stack).
const READ_CHUNK: usize = 2048;

/// What a server serves: `/metrics` and its routes.
#[derive(Clone, Copy)]
pub(super) struct Site<'a> {
    pub(super) content_type: &'a str,
    pub(super) render: &'a dyn Fn() -> String,
    pub(super) routes: &'a dyn Routes,
    /// The last `GET /metrics` response, while a connection still sends it.
    pub(super) shared: &'a SharedBody,
}

/// One rendered `/metrics` response that concurrent scrapes share: a fleet's
/// body is tens of MB, and 64 connections each with its own copy would hold
/// gigabytes. A scrape takes the last body only while another connection is
/// still sending it and it is younger than [`SHARE_FOR`]; a lone scraper
/// always gets a fresh one. Held weakly: once no connection sends it, the
/// body's memory goes back at once (it is not kept for a next scrape).
#[derive(Default)]
pub(super) struct SharedBody(std::cell::RefCell<Option<(Instant, std::sync::Weak<Vec<u8>>)>>);

/// How old a body shared by concurrent scrapes may be.
pub(super) const SHARE_FOR: Duration = Duration::from_secs(1);

impl SharedBody {
    /// The `GET /metrics` response: the one being sent, if young enough, else `make()`'s.
    pub(super) fn get(&self, now: Instant, make: impl FnOnce() -> Vec<u8>) -> Arc<Vec<u8>> {
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

/// One open connection: reading its request head, then writing its answer.
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// When it is closed, done or not.
    pub(super) deadline: Instant,
    /// Accept order: the lowest is the oldest.
    pub(super) serial: u64,
    /// The request head so far (at most [`REQUEST_LIMIT`] bytes).
    pub(super) head: Vec<u8>,
    /// Whether `head` holds the whole request line: from then on only a
    /// blank line in new bytes can decide the request, so a head fed a
    /// byte at a time is not re-read whole each time.
    pub(super) line_done: bool,
    /// The response and how much of it is written, once the request is judged.
    pub(super) out: Option<(Arc<Vec<u8>>, usize)>,
}

/// What became of a connection after it was given a turn.
pub(super) enum Turn {
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
    pub(super) fn advance(&mut self, site: Site<'_>) -> io::Result<Turn> {
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

    pub(super) fn writing(&self) -> bool {
        self.out.is_some()
    }
}

/// A `GET` for another path than `/metrics`, given to the routes.
pub(super) fn routed(head: &[u8], routes: &dyn Routes) -> Option<Reply> {
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
pub(super) fn response(request: Option<Request>, site: Site<'_>) -> Vec<u8> {
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
