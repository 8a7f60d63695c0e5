//! Loading the targets, and loading them again: the loader reads the source
//! (file or DNS), plans it ([`spec::plan`]) and resolves every name with the
//! system resolver, off the probing thread, then hands the engine the whole
//! new set; the engine keeps what did not change.
//!
//! A file is re-read when its size, mtime or inode changes (polled once a
//! second: an editor that writes a new file and renames it over the old one
//! changes the inode) and on SIGHUP; every source is re-read and every name
//! re-resolved each `--refresh` (a DNS source's answers, a name's new
//! address, a name that did not resolve before). A load that fails — a bad
//! file, a DNS error — is logged as one line, counted in
//! `udp_echo_client_fleet_reload_errors_total`, and the previous set keeps
//! running.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::engine::Resolved;
use super::metrics::ProcessMetrics;
use super::spec::{self, Defaults, TargetSpec};
use super::{SourceError, TargetSource};
use crate::net::{self, Family};
use crate::shutdown::Stop;

/// How often the file's identity is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Reads and resolves the targets, and remembers what it needs to do it again.
pub(crate) struct Loader {
    source: TargetSource,
    defaults: Defaults,
    family: Family,
    metrics: ProcessMetrics,
    /// Asked to stop: a load in progress gives up between two lookups (a
    /// name that does not resolve can take the resolver's whole timeout).
    stop: Stop,
    /// The last address each target resolved to: kept when a later
    /// resolution fails (a DNS hiccup must not stop a target).
    last_good: HashMap<String, SocketAddr>,
    /// Targets whose failure to resolve was logged (once each).
    logged: HashSet<String>,
    /// The specs of the last load, shared with the set handed over, so an
    /// unchanged target keeps its `Arc`.
    specs: HashMap<String, Arc<TargetSpec>>,
}

/// What a load found.
pub(crate) struct Loaded {
    pub(crate) set: Vec<Resolved>,
    pub(crate) unresolved: usize,
}

impl Loader {
    pub(crate) fn new(
        source: TargetSource,
        defaults: Defaults,
        family: Family,
        metrics: ProcessMetrics,
        stop: Stop,
    ) -> Loader {
        Loader {
            source,
            defaults,
            family,
            metrics,
            stop,
            last_good: HashMap::new(),
            logged: HashSet::new(),
            specs: HashMap::new(),
        }
    }

    /// Loads the source once: parsed, planned, resolved. `Err`: the source
    /// could not be read or is wrong (one line), or a stop came first.
    pub(crate) fn load(&mut self) -> Result<Loaded, SourceError> {
        let groups = self.source.load()?;
        let plan = spec::plan(&groups, &self.defaults).map_err(|problem| SourceError {
            source: self.source.describe(),
            problem,
        })?;
        for warning in &plan.warnings {
            log::warn!("targets {}: {warning}", self.source.describe());
        }
        let mut set = Vec::with_capacity(plan.specs.len());
        let mut unresolved = 0;
        let mut specs = HashMap::with_capacity(plan.specs.len());
        for s in plan.specs {
            if self.stop.is_requested() {
                return Err(SourceError {
                    source: self.source.describe(),
                    problem: "stopped while loading".into(),
                });
            }
            let spec = match self.specs.get(&s.target) {
                Some(old) if **old == s => Arc::clone(old),
                _ => Arc::new(s),
            };
            specs.insert(spec.target.clone(), Arc::clone(&spec));
            match self.resolve(&spec.target) {
                Some(addr) => set.push(Resolved { spec, addr }),
                None => unresolved += 1,
            }
        }
        self.specs = specs;
        self.last_good.retain(|t, _| self.specs.contains_key(t));
        self.metrics.unresolved.set(unresolved as i64);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics.last_reload.set(unix);
        Ok(Loaded { set, unresolved })
    }

    /// The address of `target` (`host:port`), per `-4`/`-6`; the last good
    /// one when it does not resolve now; `None` (logged once) without one.
    fn resolve(&mut self, target: &str) -> Option<SocketAddr> {
        let found = match target.parse::<SocketAddr>() {
            Ok(addr) => net::choose(&[addr], self.family).ok_or_else(|| {
                format!(
                    "is not an address of the family asked for ({:?})",
                    self.family
                )
            }),
            Err(_) => match target.to_socket_addrs() {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    net::choose(&addrs, self.family)
                        .ok_or_else(|| "has no address of the family asked for".to_owned())
                }
                Err(e) => Err(format!("does not resolve: {}", crate::error::describe(&e))),
            },
        };
        match found {
            Ok(addr) => {
                self.logged.remove(target);
                self.last_good.insert(target.to_owned(), addr);
                Some(addr)
            }
            Err(why) => {
                if let Some(&addr) = self.last_good.get(target) {
                    log::debug!("target {target:?} {why}: keeps {addr}");
                    return Some(addr);
                }
                if self.logged.insert(target.to_owned()) {
                    log::warn!(
                        "target {target:?} {why}: not probed, tried again at the next reload"
                    );
                }
                None
            }
        }
    }

    /// Reloads on change, SIGHUP and every `refresh` until the stop, handing
    /// each new set to the engine through `updates`. Runs on a thread of its
    /// own that nobody joins: a lookup stuck in the resolver must not hold
    /// the process's exit.
    pub(crate) fn watch(mut self, updates: &Sender<Vec<Resolved>>, refresh: Duration) {
        let stop = self.stop.clone();
        let path = match &self.source {
            TargetSource::File(path) => Some(path.clone()),
            _ => None,
        };
        let mut seen = path.as_deref().and_then(identity);
        let mut next_refresh = Instant::now() + refresh;
        while stop.sleep_until(Instant::now() + WATCH_EVERY) {
            let now_identity = path.as_deref().and_then(identity);
            let changed = now_identity.is_some() && now_identity != seen;
            let hangup = stop.take_hangup();
            let due = Instant::now() >= next_refresh;
            if !(changed || hangup || due) {
                continue;
            }
            seen = now_identity;
            next_refresh = Instant::now() + refresh;
            let why = if hangup {
                "SIGHUP"
            } else if changed {
                "the file changed"
            } else {
                "refresh"
            };
            match self.load() {
                Ok(loaded) => {
                    log::info!(
                        "fleet: {} targets from {} ({why}){}",
                        loaded.set.len(),
                        self.source.describe(),
                        unresolved_note(loaded.unresolved)
                    );
                    if updates.send(loaded.set).is_err() {
                        return;
                    }
                }
                Err(_) if stop.is_requested() => return,
                Err(e) => {
                    self.metrics.reload_errors.inc();
                    log::error!("{e}; the previous targets keep running");
                }
            }
        }
    }
}

/// ", N not resolved" when some were not.
pub(crate) fn unresolved_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} not resolved")
    }
}

/// What tells one version of a file from the next: size, mtime, inode.
fn identity(path: &Path) -> Option<(u64, i64, i64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}
