//! The fleet prober: one process probing many targets continuously
//! (`udp-echo-client --targets FILE|dns+srv:NAME|dns+a:NAME:PORT --metrics ADDR:PORT`).
//!
//! - `targets.rs`: where the targets come from ([`TargetSource`]) and what a
//!   source yields ([`TargetGroup`]: Prometheus `file_sd` groups, targets as
//!   written plus their labels).
//! - `discover.rs`: the DNS sources (`dns+srv:`, `dns+a:`), without a
//!   resolver library.
//! - `exporter.rs`: `GET /probe?target=HOST:PORT`, the blackbox_exporter
//!   pattern (one short burst per request), and the pure exporter mode.

pub mod discover;
pub mod exporter;
pub mod targets;

pub use targets::{SourceError, TargetGroup, TargetSource};

/// `--list-targets`: the targets `source` gives, one a line (a group's
/// labels after it, `{name="value",…}`, when it has any).
pub fn list(source: &TargetSource) -> Result<String, SourceError> {
    let mut text = String::new();
    for group in source.load()? {
        let labels: Vec<String> = group
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        for target in &group.targets {
            text.push_str(target);
            if !labels.is_empty() {
                text.push_str(&format!(" {{{}}}", labels.join(",")));
            }
            text.push('\n');
        }
    }
    Ok(text)
}
