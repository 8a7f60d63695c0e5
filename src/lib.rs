//! udp-echo: a UDP echo server and client to check that a UDP path works, measure
//! it and load-test it, safe to leave running on a host.
//!
//! The binaries `udp-echo-server` and `udp-echo-client` only parse their command
//! line, call into this library and map its result to an exit code.
//!
//! # Layout
//!
//! Shared by both binaries:
//!
//! - [`cli`]: both command lines (clap) and their conversion to plain configs;
//!   the only module that sees clap types.
//! - [`net`]: resolve, create and bind `socket2` UDP sockets, buffer sizes, IP
//!   networks, the kernel's `/proc` limits and socket table.
//! - [`sys`]: the I/O std and socket2 lack — on Linux `recvmmsg`/`sendmmsg`,
//!   UDP GRO/GSO, `ppoll`, path-MTU options, SSE2 lanes (the crate's only
//!   `unsafe` code); elsewhere a std-only fallback. Imports nothing from the modules above it.
//! - [`stamp`]: STAMP (RFC 8762/8972) test packets, time stamps, HMAC and the
//!   session-reflector's state: the server reflects them, the client sends them.
//! - [`metrics`]: the `/metrics` HTTP endpoint both binaries serve (`--metrics`);
//!   what each publishes is `server::metrics` and `client::metrics`.
//! - [`shutdown`]: the stop flag raised by SIGINT/SIGTERM or by code.
//! - [`logging`]: the log format, `[program (PID)] message`.
//! - [`error`]: the one error type, each variant with its context.
//! - `units` (crate-private): sizes (`4M`) and seconds (`0.5`) from the command
//!   line; counts with their noun.
//! - `table` (crate-private): `SetTable`, the fixed-size set-associative table
//!   of per-sender state: the server's rate buckets and loop-detection peers,
//!   the STAMP reflector's sessions.
//!
//! One binary each:
//!
//! - [`server`]: the echo loops (plain, batched, GRO/GSO; one thread per socket),
//!   stop policy, counters, `--stats-interval` lines and the summary;
//!   `server::guard` (allowlist, per-source rate limit, `loop_detect`),
//!   `server::watch` (other sockets on our port), `server::metrics`, and
//!   `server::service` (socket activation, `NOTIFY_SOCKET`).
//! - [`client`]: a connected socket to one server; one-shot mode and, in
//!   `client::measure`, ping, flood and rate; `--find-rate`, `--pmtu`, `--doctor`;
//!   the probe format (`client::probe`), statistics (`client::stats`), and
//!   `client::report`, the only place results are formatted, human or JSON.

#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod server;
pub mod shutdown;
pub mod stamp;
pub mod sys;
pub(crate) mod table;
pub(crate) mod units;

pub use error::{Error, Result};
