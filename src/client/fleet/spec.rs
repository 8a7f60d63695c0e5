//! From target groups to what the engine probes: each target's settings
//! (the command line's defaults, overridden per group by `__param_*`
//! labels), its metric labels, and one entry per distinct target string.
//!
//! The settings are labels named like Prometheus' URL parameters, so the same
//! `file_sd` file serves Prometheus' blackbox-style `/probe` relabelling
//! (`__param_X` becomes `?X=`): `__param_mode` (`echo` or `stamp`),
//! `__param_interval`, `__param_size`, `__param_tos`, `__param_timeout`.
//! Other `__`-prefixed labels are Prometheus' own and ignored here; the rest
//! become metric labels.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::TargetGroup;
use crate::units::parse_duration;

/// The shortest interval between one target's probes: 100 probes/s per target
/// is a load test, not a prober's watch.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The most targets one prober takes, whatever the source: twice the
/// 10,000 it is built for (≈ 2.5 KB each, and as much again in every
/// scrape's body). A fleet beyond that is split over several probers.
pub const MAX_TARGETS: usize = 20_000;

/// The most labels a group may carry.
pub const MAX_GROUP_LABELS: usize = 64;
/// The longest label name and value, bytes.
pub const MAX_LABEL_NAME: usize = 128;
/// The longest label value, bytes.
pub const MAX_LABEL_VALUE: usize = 1024;

/// The largest `/metrics` body the targets may make, bytes (estimated from
/// their labels: every series repeats them). The body is built whole for each
/// scrape, so this bounds that memory too.
pub const MAX_SCRAPE_BYTES: usize = 256 << 20;

/// Metric label names the prober sets itself: a group may not use them.
const RESERVED_LABELS: [&str; 2] = ["target", "le"];

/// How one target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// STAMP test packets (RFC 8762) rather than echo probes.
    pub stamp: bool,
    /// Time between two probes of this target.
    pub interval: Duration,
    /// Probe length in bytes.
    pub size: usize,
    /// The TOS byte the probes carry (`None`: the kernel's default, 0).
    pub tos: Option<u8>,
    /// A probe unanswered this long is lost.
    pub timeout: Duration,
    /// `--rounds`: probes sent to this target in all (`None`: until stopped).
    pub rounds: Option<u64>,
}

/// The command line's settings, for every target that does not override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `--stamp`.
    pub stamp: bool,
    /// `-i` (1 s in fleet mode).
    pub interval: Duration,
    /// `--size` when given (else 64 for echo, the packet's own for STAMP).
    pub size: Option<usize>,
    /// `--tos`.
    pub tos: Option<u8>,
    /// `-t`.
    pub timeout: Duration,
    /// STAMP targets are authenticated (`--stamp-key`): their packets are longer.
    pub stamp_authenticated: bool,
    /// `--rounds`: probes per target in all (`None`: until stopped).
    pub rounds: Option<u64>,
    /// `--label NAME=VALUE`: labels of every series, which no group may set.
    pub labels: Vec<(String, String)>,
}

/// The `__param_*` labels of one group, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    stamp: Option<bool>,
    interval: Option<Duration>,
    size: Option<usize>,
    tos: Option<u8>,
    timeout: Option<Duration>,
}

impl Overrides {
    /// Reads one label: a setting when it is one of ours (its value checked),
    /// nothing otherwise. `Err` says what is wrong with the value.
    pub fn read(&mut self, name: &str, value: &str) -> Result<(), String> {
        let Some(param) = name.strip_prefix("__param_") else {
            return Ok(());
        };
        match param {
            "mode" => {
                self.stamp = Some(match value {
                    "echo" => false,
                    "stamp" => true,
                    _ => return Err(format!("{name}: expected echo or stamp, not {value:?}")),
                })
            }
            "interval" => {
                let d = parse_duration(value).map_err(|e| format!("{name}: {e}"))?;
                if d < MIN_INTERVAL {
                    return Err(format!(
                        "{name}: {value:?} is shorter than the shortest interval, {MIN_INTERVAL:?}"
                    ));
                }
                self.interval = Some(d);
            }
            "timeout" => {
                self.timeout = Some(parse_duration(value).map_err(|e| format!("{name}: {e}"))?)
            }
            "size" => match value.trim().parse::<usize>() {
                Ok(n) if (16..=65507).contains(&n) => self.size = Some(n),
                _ => return Err(format!("{name}: expected 16 to 65507 bytes, not {value:?}")),
            },
            "tos" => {
                self.tos =
                    Some(crate::net::dscp::parse_tos(value).map_err(|e| format!("{name}: {e}"))?)
            }
            // Another exporter's parameter (e.g. `module`): not ours.
            _ => {}
        }
        Ok(())
    }

    /// The settings of a target with these overrides.
    pub fn apply(&self, d: &Defaults) -> Result<Settings, String> {
        let stamp = self.stamp.unwrap_or(d.stamp);
        let tos = self.tos.or(d.tos);
        let size = match (self.size.or(d.size), stamp) {
            (Some(size), true) => {
                crate::client::stamp::check_size(d.stamp_authenticated, tos, false, size)
                    .map_err(|e| e.replace("--size", "size"))?;
                size
            }
            (Some(size), false) => size,
            (None, true) => crate::client::stamp::min_packet_len(d.stamp_authenticated, tos, false),
            (None, false) => 64,
        };
        Ok(Settings {
            stamp,
            interval: self.interval.unwrap_or(d.interval),
            size,
            tos,
            timeout: self.timeout.unwrap_or(d.timeout),
            rounds: d.rounds,
        })
    }
}

/// Whether `name` is a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks one label of a group: its name, and its value when it is a
/// setting. `Err` is one line naming the label.
pub fn check_label(name: &str, value: &str) -> Result<(), String> {
    if name.len() > MAX_LABEL_NAME || value.len() > MAX_LABEL_VALUE {
        return Err(format!(
            "label {:?}: names are at most {MAX_LABEL_NAME} bytes, values {MAX_LABEL_VALUE}",
            name.chars().take(32).collect::<String>()
        ));
    }
    if !valid_label_name(name) {
        return Err(format!(
            "label name {name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "label {name:?} is the prober's own (target: the target as written; le: histogram buckets)"
        ));
    }
    Overrides::default().read(name, value)
}

/// Parses `--label NAME=VALUE`: a Prometheus label name the prober does
/// not set itself, and any value.
pub fn parse_constant_label(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=VALUE, e.g. source_node=node-1"))?;
    if name.starts_with("__") {
        return Err(format!("{name:?}: names starting with __ are reserved"));
    }
    check_label(name, value)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Checks a target as written: `host:port` or `[IPv6]:port`, port 1-65535.
pub fn check_target(text: &str) -> Result<(), String> {
    split_target(text).map(|_| ())
}

/// A target's host and port (`[IPv6]:port`: the host without brackets).
pub fn split_target(text: &str) -> Result<(&str, u16), String> {
    let bad = |why: &str| Err(format!("target {text:?}: {why}"));
    if text.len() > 300 {
        return bad("longer than a host name and a port can be");
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return bad("an IPv6 address in brackets needs its ']'");
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("expected an IPv6 address in the brackets");
        }
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None => return bad("expected [IPv6]:PORT"),
        }
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return bad("expected HOST:PORT");
        };
        if host.contains(':') {
            return bad("an IPv6 address needs brackets, e.g. [::1]:7");
        }
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return bad("expected a host name or an address before the ':'");
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host, p)),
        _ => bad("expected a port from 1 to 65535 after the ':'"),
    }
}

/// One target to probe, as its source wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// `host:port` as written: the `target` label.
    pub target: String,
    /// The metric labels (no `__` ones), sorted by name; shared by the
    /// targets of one group.
    pub labels: Arc<[(String, String)]>,
    /// How it is probed.
    pub settings: Settings,
}

/// What a source's groups come to: one spec per distinct target, and the
/// warnings to log (duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the order first written.
    pub specs: Vec<TargetSpec>,
    /// One line each, e.g. a target listed twice.
    pub warnings: Vec<String>,
}

/// Turns groups into specs: a target written twice is probed once, with the
/// labels of its first group (a warning says so). `Err`: a bad target,
/// label or setting, naming the target and the label.
pub fn plan(groups: &[TargetGroup], defaults: &Defaults) -> Result<Plan, String> {
    let mut seen = HashSet::new();
    let mut plan = Plan::default();
    let mut scrape_bytes = 0usize;
    for group in groups {
        let first = group.targets.first().map_or("", String::as_str);
        if group.labels.len() > MAX_GROUP_LABELS {
            return Err(format!(
                "target {first:?}: more than {MAX_GROUP_LABELS} labels in its group"
            ));
        }
        let mut overrides = Overrides::default();
        for (name, value) in &group.labels {
            check_label(name, value).map_err(|e| format!("target {first:?}: {e}"))?;
            if defaults.labels.iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "target {first:?}: label {name:?} is set for every series by --label"
                ));
            }
            overrides.read(name, value)?;
        }
        let labels: Arc<[(String, String)]> = metric_labels(&group.labels).into();
        let label_bytes: usize = labels.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        for target in &group.targets {
            check_target(target)?;
            let settings = overrides
                .apply(defaults)
                .map_err(|e| format!("target {target:?}: {e}"))?;
            if !seen.insert(target.as_str()) {
                plan.warnings.push(format!(
                    "target {target:?} is listed twice: probed once, with the labels of its first group"
                ));
                continue;
            }
            if plan.specs.len() == MAX_TARGETS {
                return Err(format!(
                    "more than {MAX_TARGETS} targets: refused (split the fleet over several probers)"
                ));
            }
            scrape_bytes += SERIES_PER_TARGET * (SERIES_BYTES + target.len() + label_bytes);
            if scrape_bytes > MAX_SCRAPE_BYTES {
                return Err(format!(
                    "the targets' labels would make every scrape more than {} MiB (at target {target:?}): fewer targets or shorter labels",
                    MAX_SCRAPE_BYTES >> 20
                ));
            }
            plan.specs.push(TargetSpec {
                target: target.clone(),
                labels: Arc::clone(&labels),
                settings,
            });
        }
    }
    Ok(plan)
}

/// Lines of `/metrics` a target has (STAMP targets have a few more), and
/// the bytes of one without its labels: for the scrape estimate.
const SERIES_PER_TARGET: usize = 32;
const SERIES_BYTES: usize = 64;

/// The labels that become metric labels: all but the `__` ones.
fn metric_labels(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            stamp: false,
            interval: Duration::from_secs(1),
            size: None,
            tos: None,
            timeout: Duration::from_secs(1),
            stamp_authenticated: false,
            rounds: None,
            labels: Vec::new(),
        }
    }

    fn group(targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn targets_are_host_port_with_ipv6_in_brackets() {
        assert_eq!(split_target("example.org:7"), Ok(("example.org", 7)));
        assert_eq!(split_target("[::1]:7"), Ok(("::1", 7)));
        assert_eq!(split_target("10.0.0.1:65535"), Ok(("10.0.0.1", 65535)));
        for bad in [
            "example.org",
            "::1:7",
            "[::1]",
            "[::1]7",
            "[nope]:7",
            ":7",
            "h:0",
            "h:65536",
            "h:x",
            "a b:7",
            "",
        ] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_names_follow_prometheus_and_ours_are_reserved() {
        assert!(check_label("site", "x").is_ok());
        assert!(check_label("_a1", "x").is_ok());
        assert!(check_label("__meta_x", "x").is_ok());
        for bad in ["1a", "a-b", "", "é", "target", "le"] {
            assert!(check_label(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn params_override_the_defaults_and_bad_ones_name_target_and_label() {
        let g = group(
            &["a:7", "b:862"],
            &[
                ("site", "x"),
                ("__param_mode", "stamp"),
                ("__param_interval", "500ms"),
                ("__param_timeout", "2s"),
                ("__param_tos", "EF"),
                ("__param_module", "whatever"),
                ("__address__", "ignored"),
            ],
        );
        let plan = plan(&[g], &defaults()).unwrap();
        assert_eq!(plan.specs.len(), 2);
        let s = plan.specs[1].settings;
        assert!(s.stamp);
        assert_eq!(s.interval, Duration::from_millis(500));
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.tos, Some(0xb8));
        // The STAMP packet with a Class of Service TLV: 44 + 8 bytes.
        assert_eq!(s.size, 52);
        assert_eq!(&plan.specs[1].labels[..], [("site".into(), "x".into())]);
        for (label, value) in [
            ("__param_mode", "icmp"),
            ("__param_interval", "1ms"),
            ("__param_interval", "soon"),
            ("__param_size", "8"),
            ("__param_tos", "nope"),
            ("__param_timeout", "0s"),
        ] {
            let e = super::plan(&[group(&["a:7"], &[(label, value)])], &defaults()).unwrap_err();
            assert!(e.contains("\"a:7\"") && e.contains(label), "{e}");
        }
        // A STAMP packet cannot be shorter than its header.
        let e = super::plan(
            &[group(
                &["a:7"],
                &[("__param_mode", "stamp"), ("__param_size", "20")],
            )],
            &defaults(),
        )
        .unwrap_err();
        assert!(e.contains("\"a:7\"") && e.contains("size 20"), "{e}");
    }

    #[test]
    fn targets_and_labels_are_bounded_whatever_the_source() {
        let many: Vec<String> = (0..=MAX_TARGETS).map(|i| format!("h{i}:7")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = plan(&[group(&refs, &[])], &defaults()).unwrap_err();
        assert!(e.contains("more than 20000 targets"), "{e}");
        assert_eq!(
            plan(&[group(&refs[..MAX_TARGETS], &[])], &defaults())
                .unwrap()
                .specs
                .len(),
            MAX_TARGETS
        );
        // Long labels on many targets: every scrape would be too large.
        let long = "x".repeat(MAX_LABEL_VALUE);
        let names: Vec<String> = (0..16).map(|i| format!("l{i}")).collect();
        let labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), long.as_str())).collect();
        let e = plan(&[group(&refs[..MAX_TARGETS], &labels)], &defaults()).unwrap_err();
        assert!(e.contains("every scrape more than 256 MiB"), "{e}");
        // A label too long, and too many of them.
        let e = check_label("a", &"x".repeat(MAX_LABEL_VALUE + 1)).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let names: Vec<String> = (0..=MAX_GROUP_LABELS).map(|i| format!("l{i}")).collect();
        let labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let e = plan(&[group(&["a:7"], &labels)], &defaults()).unwrap_err();
        assert!(e.contains("more than 64 labels"), "{e}");
    }

    #[test]
    fn a_target_listed_twice_is_probed_once_with_a_warning() {
        let plan = plan(
            &[
                group(&["a:7", "b:7"], &[("g", "1")]),
                group(&["a:7"], &[("g", "2")]),
            ],
            &defaults(),
        )
        .unwrap();
        assert_eq!(plan.specs.len(), 2);
        assert_eq!(&plan.specs[0].labels[..], [("g".into(), "1".into())]);
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("a:7"));
    }
}
