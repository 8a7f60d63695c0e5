//! Where a fleet's targets come from, and what every source yields: a list
//! of Prometheus `file_sd` target groups, so a file, a DNS name and (later)
//! anything else feed the same prober.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{discover, file_sd};

/// One `file_sd` group: `{"targets": ["host:port", …], "labels": {…}}`.
///
/// Targets are kept as written (`host:port`): that string is the `target`
/// label of every series, so it matches what the operator wrote. Labels
/// whose names start with `__` are settings for the prober, not metric labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// `host:port` strings, as written.
    pub targets: Vec<String>,
    /// The group's labels (metric labels, and `__`-prefixed settings).
    pub labels: BTreeMap<String, String>,
}

/// The value of `--targets`: a `file_sd` file, or a DNS name re-resolved at
/// an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// A `file_sd` file, JSON or YAML; re-read on change and on SIGHUP.
    File(PathBuf),
    /// `dns+srv:NAME`: every SRV record of NAME is a target (its host and port).
    DnsSrv {
        /// The SRV name, e.g. `_echo._udp.udp-echo.default.svc.cluster.local`.
        name: String,
    },
    /// `dns+a:NAME:PORT`: every A/AAAA record of NAME, at PORT.
    DnsA {
        /// The name, e.g. a headless Service's.
        name: String,
        /// The port every address is probed at.
        port: u16,
    },
}

/// Why a source could not give its targets: one line that names the source,
/// and where possible the line or field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The source as the user wrote it (a path or a `dns+…:` string).
    pub source: String,
    /// What is wrong, e.g. `line 3, column 5: expected a list of groups`.
    pub problem: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "targets {}: {}", self.source, self.problem)
    }
}

impl std::error::Error for SourceError {}

impl TargetSource {
    /// Parses a `--targets` value: `dns+srv:NAME`, `dns+a:NAME:PORT`, else a path.
    pub fn parse(text: &str) -> Result<TargetSource, String> {
        if let Some(name) = text.strip_prefix("dns+srv:") {
            if name.is_empty() {
                return Err("dns+srv: needs a name, e.g. dns+srv:_echo._udp.example.org".into());
            }
            return Ok(TargetSource::DnsSrv { name: name.into() });
        }
        if let Some(rest) = text.strip_prefix("dns+a:") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or("dns+a: needs NAME:PORT, e.g. dns+a:echo.example.org:7")?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("dns+a: {port:?} is not a port (1-65535)"))?;
            if name.is_empty() || port == 0 {
                return Err("dns+a: needs NAME:PORT with a port of 1-65535".into());
            }
            return Ok(TargetSource::DnsA {
                name: name.into(),
                port,
            });
        }
        if text.is_empty() {
            return Err("--targets needs a file, dns+srv:NAME or dns+a:NAME:PORT".into());
        }
        Ok(TargetSource::File(PathBuf::from(text)))
    }

    /// The source as the user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            TargetSource::File(path) => path.display().to_string(),
            TargetSource::DnsSrv { name } => format!("dns+srv:{name}"),
            TargetSource::DnsA { name, port } => format!("dns+a:{name}:{port}"),
        }
    }

    /// Reads the source once: the file parsed, or the name resolved.
    pub fn load(&self) -> Result<Vec<TargetGroup>, SourceError> {
        let fail = |problem: String| SourceError {
            source: self.describe(),
            problem,
        };
        match self {
            TargetSource::File(path) => file_sd::read(path).map_err(fail),
            TargetSource::DnsSrv { name } => discover::srv(name).map_err(fail),
            TargetSource::DnsA { name, port } => discover::a(name, *port).map_err(fail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_value_is_a_dns_name_or_a_path() {
        assert_eq!(
            TargetSource::parse("dns+srv:_echo._udp.example.org"),
            Ok(TargetSource::DnsSrv {
                name: "_echo._udp.example.org".into()
            })
        );
        assert_eq!(
            TargetSource::parse("dns+a:echo.example.org:7"),
            Ok(TargetSource::DnsA {
                name: "echo.example.org".into(),
                port: 7
            })
        );
        assert!(TargetSource::parse("dns+a:echo.example.org").is_err());
        assert!(TargetSource::parse("dns+a:echo:0").is_err());
        assert!(TargetSource::parse("dns+srv:").is_err());
        assert_eq!(
            TargetSource::parse("targets.json"),
            Ok(TargetSource::File("targets.json".into()))
        );
    }
}
