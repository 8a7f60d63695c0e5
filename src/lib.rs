//! udp-echo: a UDP echo server and client to check that a UDP path works, measure
//! it and load-test it, safe to leave running on a host.
//!
//! The binaries `udp-echo-server` and `udp-echo-client` only parse their command
//! line, call into this library and map its result to an exit code.
//!
//! # Layout
//!
//! - [`net`]: resolve, create and bind `socket2` UDP sockets, buffer sizes and the
//!   kernel's `/proc` limits and socket table.
//! - [`server`]: the echo loops (plain, batched, GRO/GSO; one thread per socket), stop
//!   policy, counters, `--stats-interval` lines and the summary.
//! - [`sys`]: the I/O std and socket2 lack — on Linux `recvmmsg`/`sendmmsg`,
//!   UDP GRO/GSO, `ppoll`, path-MTU options (the crate's only `unsafe` code);
//!   elsewhere a std-only fallback.
//! - [`activation`]: socket activation (`LISTEN_FDS`): the inherited sockets,
//!   checked to be UDP.
//! - [`notify`]: readiness and status for a service manager (`NOTIFY_SOCKET`).
//! - [`guard`]: loop guard, allowlist and per-source rate limit — pure decisions.
//! - [`echo_loop`]: echo-loop detection — a peer sending back what we just sent it.
//! - [`client`]: a connected socket to one server; one-shot mode and, in
//!   `client::measure`, ping, flood and rate; `--find-rate`, `--pmtu`, `--doctor`;
//!   in `client::session`, a measured run with its `--probes` records
//!   (`client::probes`), `--histogram` and `--plot` (`client::plot`).
//! - [`probe`]: the measured modes' probe format: header, pattern, verify.
//! - [`stamp`]: STAMP (RFC 8762/8972) test packets, time stamps, HMAC and the
//!   session-reflector's state — pure, no I/O.
//! - [`stats`]: counters, round-trip histogram and the run summary (data).
//! - [`metrics`]: Prometheus `/metrics` endpoints of both binaries (`--metrics`).
//! - [`report`]: the only place results are formatted, human or JSON.
//! - [`shutdown`]: the stop flag raised by SIGINT/SIGTERM or by code.
//! - `watch` (crate-private): the server's watch for other sockets sharing its port.
//! - [`cli`]: both command lines (clap) and their conversion to plain configs;
//!   the only module that sees clap types.
//! - `units` (crate-private): sizes (`4M`) and seconds (`0.5`) from the command line.
//! - [`logging`]: the seed's log format, `[program (PID)] message`.
//! - [`error`]: the one error type, each variant with its context.

#![deny(unsafe_code)]

pub mod activation;
pub mod cli;
pub mod client;
pub mod echo_loop;
pub mod error;
pub mod guard;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod probe;
pub mod report;
pub mod server;
pub mod shutdown;
pub mod stamp;
pub mod stats;
pub mod sys;
pub(crate) mod units;
pub(crate) mod watch;

pub use error::{Error, Result};
