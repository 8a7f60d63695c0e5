//! Unit tests of `metrics::http`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{Connection, SHARE_FOR, SharedBody, Site, Turn, response, routed};
use super::parse::{MAX_REQUEST_LINE, head_end};
use super::serve::shed;
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
        parse_request(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
        Request::MetricsHead
    );
    assert_eq!(
        parse_request(b"GET metrics HTTP/1.1\r\n\r\n"),
        Request::BadRequest
    );
}

#[test]
fn what_cannot_become_http_is_judged_at_once() {
    // A TLS ClientHello, binary garbage, a leading space: the first byte.
    for start in [
        &b"\x16\x03\x01\x02\x00\x01"[..],
        b"\x00",
        b"\xff\xfe",
        b" GET",
    ] {
        assert_eq!(parse_head(start), Some(Request::BadRequest), "{start:?}");
    }
    // HTTP/0.9: a request line without a version, at its line end.
    assert_eq!(parse_head(b"GET /metrics\r\n"), Some(Request::BadRequest));
    assert_eq!(parse_head(b"GET /metrics\n"), Some(Request::BadRequest));
    // A control byte, or a method no server has.
    assert_eq!(parse_head(b"GET /\x01"), Some(Request::BadRequest));
    assert_eq!(parse_head(b"get /metrics"), Some(Request::BadRequest));
    assert_eq!(parse_head(&[b'G'; 40]), Some(Request::BadRequest));
    // A request line too long to be a scrape.
    let long = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
    assert_eq!(parse_head(long.as_bytes()), Some(Request::BadRequest));
    // Still possible: wait.
    for partial in [
        &b""[..],
        b"G",
        b"GET",
        b"GET /met",
        b"GET /metrics HTTP/1.1\r",
        b"GET /metrics HTTP/1.1\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: \xff",
    ] {
        assert_eq!(parse_head(partial), None, "{partial:?}");
    }
    assert_eq!(
        parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Some(Request::Metrics)
    );
    assert_eq!(
        parse_head(b"HEAD /metrics HTTP/1.0\n\n"),
        Some(Request::MetricsHead)
    );
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\n\r\n"),
        Some(Request::NotFound)
    );
}

/// `/metrics` as `text/plain` from `render`, no other routes.
fn site(render: &dyn Fn() -> String) -> Site<'_> {
    // Leaked: a test's few bytes, so the site can outlive this call.
    let shared: &'static SharedBody = Box::leak(Box::default());
    Site {
        content_type: "text/plain",
        render,
        routes: &NoRoutes,
        shared,
    }
}

#[test]
fn concurrent_scrapes_share_one_body_and_a_lone_one_gets_a_fresh_one() {
    let shared = SharedBody::default();
    let renders = std::cell::Cell::new(0);
    let make = || {
        renders.set(renders.get() + 1);
        vec![renders.get() as u8; 1000]
    };
    let t0 = Instant::now();
    let first = shared.get(t0, make);
    // A second scrape while the first is still being sent: the same body.
    let second = shared.get(t0 + Duration::from_millis(10), make);
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(renders.get(), 1);
    // Too old to share: rendered again.
    let third = shared.get(t0 + SHARE_FOR, make);
    assert!(!Arc::ptr_eq(&first, &third));
    assert_eq!(renders.get(), 2);
    // Nobody sends a body any more: a new scrape renders afresh.
    drop((first, second, third));
    let fourth = shared.get(t0 + SHARE_FOR, make);
    assert_eq!(renders.get(), 3);
    assert_eq!(fourth[0], 3);
}

#[test]
fn a_head_response_has_the_length_and_no_body() {
    let render = || "x 1\n".to_owned();
    let head = response(Some(Request::MetricsHead), site(&render));
    let text = String::from_utf8(head).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 4\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
    let get = response(Some(Request::Metrics), site(&render));
    assert!(String::from_utf8(get).unwrap().ends_with("\r\n\r\nx 1\n"));
}

#[test]
fn the_oldest_idle_connection_is_shed_first() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let connection = |serial, writing: bool| Connection {
        stream: listener.accept().unwrap().0,
        peer: addr,
        deadline: Instant::now() + CONNECTION_DEADLINE,
        serial,
        head: Vec::new(),
        line_done: false,
        out: writing.then(|| (Arc::new(Vec::new()), 0)),
    };
    let all = [
        connection(1, true),
        connection(5, false),
        connection(3, false),
    ];
    assert_eq!(shed(&all), 2, "the oldest still reading");
    let writing: Vec<Connection> = all
        .into_iter()
        .map(|mut c| {
            c.out = Some((Arc::new(Vec::new()), 0));
            c
        })
        .collect();
    assert_eq!(shed(&writing), 0, "all answering: the oldest");
}

#[test]
fn a_request_fed_a_byte_at_a_time_is_answered_when_its_blank_line_comes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for request in [
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"HEAD /metrics HTTP/1.0\n\n",
    ] {
        let mut client = TcpStream::connect(addr).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let mut c = Connection {
            stream,
            peer,
            deadline: Instant::now() + CONNECTION_DEADLINE,
            serial: 1,
            head: Vec::new(),
            line_done: false,
            out: None,
        };
        let render = || "x 1\n".to_owned();
        for (i, byte) in request.iter().enumerate() {
            client.write_all(&[*byte]).unwrap();
            // Until the byte is in (loopback: at once, almost always).
            let mut done = false;
            for _ in 0..1000 {
                done = matches!(c.advance(site(&render)).unwrap(), Turn::Done);
                if done || c.head.len() == i + 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(
                done,
                i == request.len() - 1,
                "after byte {i} of {request:?}"
            );
        }
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    }
}

#[test]
fn a_head_ends_at_its_blank_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
}

/// A route that answers `/now` at once and `/later` with a job, and records
/// the query and a header it was given.
struct Recorder(std::sync::Mutex<Vec<String>>);

impl Routes for Recorder {
    fn route(&self, request: &RequestHead<'_>) -> Option<Reply> {
        let header = request.header("x-scrape").unwrap_or("-").to_owned();
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {} {header}", request.path, request.query));
        match request.path {
            "/now" => Some(Reply::Now(Response::text(400, "no"))),
            "/later" => Some(Reply::Later(Box::new(|_| Response::text(200, "done")))),
            _ => None,
        }
    }
}

#[test]
fn other_paths_go_to_the_routes_with_their_query_and_headers() {
    let routes = Recorder(std::sync::Mutex::new(Vec::new()));
    let head = b"GET /now?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nX-Scrape:  4.5 \r\n\r\n";
    match routed(head, &routes) {
        Some(Reply::Now(r)) => assert_eq!((r.status, r.body.as_str()), (400, "no\n")),
        _ => panic!("not answered at once"),
    }
    assert!(matches!(
        routed(b"GET /later HTTP/1.1\r\n\r\n", &routes),
        Some(Reply::Later(_))
    ));
    assert!(routed(b"GET /other HTTP/1.1\r\n\r\n", &routes).is_none());
    // Only GET is routed: HEAD and POST of a routed path are not found.
    assert!(routed(b"POST /now HTTP/1.1\r\n\r\n", &routes).is_none());
    assert_eq!(
        *routes.0.lock().unwrap(),
        ["/now a=1&b=%20 4.5", "/later  -", "/other  -"]
    );
    let text = String::from_utf8(Response::text(503, "busy").to_bytes(true)).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nbusy\n"), "{text}");
}
