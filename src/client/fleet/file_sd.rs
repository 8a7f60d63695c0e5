//! Prometheus' `file_sd` format, JSON or YAML: a list of groups
//! `{"targets": ["host:port", …], "labels": {"name": "value", …}}`.
//!
//! The file is bounded before it is trusted: at most [`MAX_FILE_BYTES`], and
//! counted while it is parsed (not after), so a hostile file stops the parse
//! at [`MAX_TARGETS`] targets, [`MAX_GROUPS`] groups, [`MAX_LABELS`] labels
//! or 64 labels in a group instead of filling memory first. Targets and label names are
//! checked as they are read, so an error names its line and column: one
//! line, `line 3, column 14: target "a:0": expected a port …`.
//!
//! YAML by extension (`.yml`, `.yaml`), anything else as JSON. YAML is read
//! with `serde_yaml_ng`, the maintained fork of the archived `serde_yaml`
//! (same `unsafe-libyaml` parser, same API, four small dependencies).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::TargetGroup;
use super::spec::{check_label, check_target};

/// The most targets a file may list (all groups together; a target listed
/// twice counts twice here).
pub const MAX_TARGETS: usize = super::spec::MAX_TARGETS;
/// The most groups a file may hold.
pub const MAX_GROUPS: usize = 100_000;
/// The most labels all groups together may carry.
pub const MAX_LABELS: usize = 1_000_000;
/// The largest file read, bytes (64 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads and parses a `file_sd` file. `Err` is one line (without the path).
pub fn read(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let file = std::fs::File::open(path).map_err(|e| crate::error::describe(&e))?;
    let too_big = || format!("larger than {} MiB: refused", MAX_FILE_BYTES >> 20);
    if file.metadata().is_ok_and(|m| m.len() > MAX_FILE_BYTES) {
        return Err(too_big());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| crate::error::describe(&e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    parse(&text, is_yaml(path))
}

/// Whether a file is YAML by its name (`.yml`, `.yaml`).
pub fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

/// Parses `file_sd` text, YAML or JSON. `Err`: one line with the line and
/// column where the parse stopped.
pub fn parse(text: &str, yaml: bool) -> Result<Vec<TargetGroup>, String> {
    let budget = Budget::default();
    if yaml {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        Groups(&budget).deserialize(de).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()));
            format!(
                "{}{}",
                at.unwrap_or_default(),
                strip_position(&e.to_string())
            )
        })
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        let groups = Groups(&budget).deserialize(&mut de).and_then(|g| {
            de.end()?;
            Ok(g)
        });
        groups.map_err(|e| {
            format!(
                "line {}, column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            )
        })
    }
}

/// An error's text without the ` at line L column C` both parsers append
/// (the message puts the position first).
fn strip_position(text: &str) -> String {
    let text = text.lines().next().unwrap_or_default();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// What is left of the bounds while a file is parsed.
struct Budget {
    targets: Cell<usize>,
    groups: Cell<usize>,
    labels: Cell<usize>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            targets: Cell::new(MAX_TARGETS),
            groups: Cell::new(MAX_GROUPS),
            labels: Cell::new(MAX_LABELS),
        }
    }
}

/// Takes one from `cell`, or fails naming the bound.
fn spend<E: de::Error>(cell: &Cell<usize>, max: usize, what: &str) -> Result<(), E> {
    match cell.get().checked_sub(1) {
        Some(left) => {
            cell.set(left);
            Ok(())
        }
        None => Err(E::custom(format!(
            "more than {max} {what}: refused (split the fleet over several probers)"
        ))),
    }
}

/// The top level: a list of groups.
struct Groups<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Groups<'_> {
    type Value = Vec<TargetGroup>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Groups<'_> {
    type Value = Vec<TargetGroup>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of target groups ([{\"targets\": [...], \"labels\": {...}}])")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut groups = Vec::new();
        loop {
            if self.0.groups.get() == 0 {
                // One more element would be over the bound: say so if there is one.
                return match seq.next_element::<de::IgnoredAny>()? {
                    None => Ok(groups),
                    Some(_) => Err(spend::<A::Error>(&self.0.groups, MAX_GROUPS, "groups")
                        .expect_err("no groups left")),
                };
            }
            match seq.next_element_seed(Group(self.0))? {
                Some(group) => {
                    spend::<A::Error>(&self.0.groups, MAX_GROUPS, "groups")?;
                    groups.push(group);
                }
                None => return Ok(groups),
            }
        }
    }
}

/// One group: `targets` (required) and `labels` (optional), nothing else.
struct Group<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Group<'_> {
    type Value = TargetGroup;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Group<'_> {
    type Value = TargetGroup;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a target group ({\"targets\": [...], \"labels\": {...}})")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut targets = None;
        let mut labels = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "targets" if targets.is_none() => {
                    targets = Some(map.next_value_seed(Targets(self.0))?)
                }
                "labels" if labels.is_none() => labels = Some(map.next_value_seed(Labels(self.0))?),
                "targets" | "labels" => {
                    return Err(de::Error::custom(format!("field `{key}` given twice")));
                }
                _ => {
                    return Err(de::Error::unknown_field(&key, &["targets", "labels"]));
                }
            }
        }
        Ok(TargetGroup {
            targets: targets.ok_or_else(|| de::Error::missing_field("targets"))?,
            labels: labels.unwrap_or_default(),
        })
    }
}

/// A group's `targets`: `host:port` strings, each checked and counted.
struct Targets<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Targets<'_> {
    type Value = Vec<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Targets<'_> {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of \"host:port\" strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut targets = Vec::new();
        while let Some(target) = seq.next_element::<String>()? {
            spend::<A::Error>(&self.0.targets, MAX_TARGETS, "targets")?;
            check_target(&target).map_err(de::Error::custom)?;
            targets.push(target);
        }
        Ok(targets)
    }
}

/// A group's `labels`: names checked (and settings' values), counted.
struct Labels<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Labels<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Labels<'_> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of label names to string values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut labels = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if labels.len() == super::spec::MAX_GROUP_LABELS {
                return Err(de::Error::custom(format!(
                    "more than {} labels in one group",
                    super::spec::MAX_GROUP_LABELS
                )));
            }
            let value = map.next_value::<String>()?;
            spend::<A::Error>(&self.0.labels, MAX_LABELS, "labels")?;
            check_label(&name, &value).map_err(de::Error::custom)?;
            if labels.insert(name.clone(), value).is_some() {
                return Err(de::Error::custom(format!("label {name:?} given twice")));
            }
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests;
