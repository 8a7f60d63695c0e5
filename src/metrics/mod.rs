//! The Prometheus endpoint both binaries serve (`--metrics ADDR:PORT`).
//!
//! - [`http`]: a tiny HTTP server for `/metrics` (`std::net` and `poll`, one
//!   thread, a bounded set of connections, each bounded in time and memory).
//!
//! What each binary publishes lives with it: `server::metrics` (the echo
//! server's counters as `udp_echo_server_*`) and `client::metrics` (a
//! continuous ping run as `udp_echo_client_*`).
//!
//! Text is encoded by `prometheus-client` in the Prometheus text format 0.0.4.

pub mod http;

use std::net::{SocketAddr, TcpListener};

use crate::error::{Error, Result};

/// The URL a scraper uses for an endpoint bound at `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

/// Binds the metrics endpoint's TCP listener (port 0 picks a free one; read the
/// real address from the listener).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|source| Error::Socket {
        what: "bind the metrics endpoint (TCP)",
        addr,
        source,
    })
}

/// Parses a `--metrics` value: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_addr(text: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .ok_or_else(|| {
            format!("invalid metrics address '{text}': expected IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 picks one)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addresses_need_a_port() {
        assert_eq!(
            parse_addr("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:9100"), Ok("[::1]:9100".parse().unwrap()));
        assert_eq!(
            parse_addr("localhost:9100"),
            Ok("127.0.0.1:9100".parse().unwrap())
        );
        assert!(parse_addr("127.0.0.1").is_err());
        assert!(parse_addr("localhost").is_err());
    }
}
