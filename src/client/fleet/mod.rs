//! The fleet prober: one process probing many targets continuously
//! (`udp-echo-client --targets FILE|dns+srv:NAME|dns+a:NAME:PORT --metrics ADDR:PORT`).
//!
//! - `targets.rs`: where the targets come from ([`TargetSource`]) and what a
//!   source yields ([`TargetGroup`]: Prometheus `file_sd` groups, targets as
//!   written plus their labels).
//! - `discover.rs`: the DNS sources (`dns+srv:`, `dns+a:`), without a
//!   resolver library.

pub mod discover;
pub mod targets;

pub use targets::{SourceError, TargetGroup, TargetSource};
