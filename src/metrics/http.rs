//! The smallest HTTP server that serves `/metrics`: one blocking thread, one
//! connection at a time, `std::net` only.
//!
//! A scraper sends one short `GET`; anything else is answered with an error
//! status and closed. Nothing a client does can hold the thread longer than
//! [`CONNECTION_DEADLINE`] or make it buffer more than [`REQUEST_LIMIT`] bytes:
//! a slow client (slowloris) is cut off at the deadline, an oversized request
//! gets `431` after its first [`REQUEST_LIMIT`] bytes, garbage gets `400`. The
//! echo loops never wait on this thread: it only reads what they publish.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use log::debug;

use crate::shutdown::Stop;

/// The most a request head may take (request line and headers), in bytes. A
/// scraper's request is a few hundred; the buffer lives on the thread's stack.
pub const REQUEST_LIMIT: usize = 8 * 1024;

/// The longest one connection may hold the thread, from accept to close.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(2);

/// How often an idle listener looks at the stop flag, and the longest a read
/// waits before it does too.
const POLL: Duration = Duration::from_millis(50);

/// What a request asked for, as far as this server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// A well-formed request for anything else.
    NotFound,
    /// Not an HTTP request line.
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
    if method == "GET" && path == "/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    }
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

/// Accepts connections until `stop`, answering `GET /metrics` with `render()`
/// (Prometheus text format, `content_type`). Errors are logged at debug and
/// survived: the thread ends only with the stop flag.
pub fn serve(listener: &TcpListener, stop: &Stop, content_type: &str, render: &dyn Fn() -> String) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::warn!("metrics endpoint off: cannot make the listener non-blocking: {e}");
        return;
    }
    while !stop.is_requested() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, stop, content_type, render) {
                    debug!("metrics: {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stop.sleep_until(Instant::now() + POLL);
            }
            Err(e) => {
                // EMFILE, ECONNABORTED…: wait a little rather than spin.
                debug!("metrics: accept: {e}");
                stop.sleep_until(Instant::now() + POLL);
            }
        }
    }
}

/// Reads one request head within the deadline and the size limit, answers it
/// and closes the connection.
fn answer(
    mut stream: TcpStream,
    stop: &Stop,
    content_type: &str,
    render: &dyn Fn() -> String,
) -> io::Result<()> {
    let deadline = Instant::now() + CONNECTION_DEADLINE;
    stream.set_nonblocking(false)?;
    let mut buf = [0u8; REQUEST_LIMIT];
    let mut len = 0;
    let request = loop {
        if let Some(end) = head_end(&buf[..len]) {
            break parse_request(&buf[..end]);
        }
        if len == buf.len() {
            return respond(
                &mut stream,
                deadline,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.is_requested() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request in time",
            ));
        }
        stream.set_read_timeout(Some(left.min(POLL)))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    };
    match request {
        Request::Metrics => respond(&mut stream, deadline, "200 OK", content_type, &render()),
        Request::NotFound => respond(
            &mut stream,
            deadline,
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n",
        ),
        Request::BadRequest => respond(
            &mut stream,
            deadline,
            "400 Bad Request",
            "text/plain",
            "bad request\n",
        ),
    }
}

/// Writes a whole response (status line, length, body) and closes our side.
fn respond(
    stream: &mut TcpStream,
    deadline: Instant,
    status: &str,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    stream.set_write_timeout(Some(left.max(Duration::from_millis(1))))?;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::NotFound
        );
        assert_eq!(
            parse_request(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            Request::NotFound
        );
        assert_eq!(
            parse_request(b"\x16\x03\x01garbage\r\n\r\n"),
            Request::BadRequest
        );
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Request::BadRequest);
        assert_eq!(
            parse_request(b"GET metrics HTTP/1.1\r\n\r\n"),
            Request::BadRequest
        );
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
