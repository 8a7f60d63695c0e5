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
//!
//! Files: `parse.rs` the pure request parser, `connection.rs` one
//! connection's reading and answer, `serve.rs` the poll thread.

mod connection;
mod parse;
mod serve;

use std::net::TcpListener;
use std::time::Duration;

use crate::shutdown::Stop;

pub use parse::{Request, parse_head, parse_request};
pub use serve::serve_routes;

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

#[cfg(test)]
mod tests;
