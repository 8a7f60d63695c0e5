//! The server as a service: what a service manager (systemd or compatible)
//! hands it and wants from it.
//!
//! - [`activation`]: socket activation (`LISTEN_FDS`): the inherited sockets,
//!   checked to be UDP.
//! - [`notify`]: readiness, status and watchdog for the manager (`NOTIFY_SOCKET`).

pub mod activation;
pub mod notify;
