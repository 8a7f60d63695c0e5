//! The request parser: what has arrived of a request head, judged as soon
//! as it is decided. Pure, no I/O.

/// The longest method name of a plausible request line (`OPTIONS` is 7).
const MAX_METHOD_LEN: usize = 16;

/// The longest request line taken (`GET /metrics HTTP/1.1` is 21 bytes): a
/// longer one is a `400` at once, which also bounds what is re-read while
/// the line is incomplete.
pub(super) const MAX_REQUEST_LINE: usize = 1024;

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
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
