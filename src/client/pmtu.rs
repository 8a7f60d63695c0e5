//! `--pmtu`: with the don't-fragment bit set, the largest payload that echoes
//! intact, and what stops a larger one: a local `EMSGSIZE` (the kernel knows
//! the path MTU, from the interface or an ICMP "fragmentation needed"),
//! silence (dropped on the way without a word), or truncation.
//!
//! [`PmtuSearch`] is the pure search; [`find_pmtu`] probes with real datagrams.

use serde::Serialize;

use super::{Connection, Target};
use crate::client::probe::{self, Check};
use crate::error::{Error, Result};
use crate::sys;

/// Tries per size before silence counts as "too big" (a single loss is not).
pub const SILENT_TRIES: usize = 2;

/// What one probe size got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PmtuOutcome {
    /// Came back byte for byte.
    Intact,
    /// The kernel refused to send it (or reported ICMP "fragmentation needed"):
    /// larger than the path MTU it knows, which is given when readable.
    Emsgsize {
        /// The path MTU the kernel reports for the socket, when readable.
        path_mtu: Option<u32>,
    },
    /// No reply, `SILENT_TRIES` times.
    Silence,
    /// A shorter reply came back.
    Truncation,
    /// A reply of the right size with other bytes.
    Corruption,
}

impl PmtuOutcome {
    fn fits(self) -> bool {
        self == PmtuOutcome::Intact
    }
}

/// Bytes of IP and UDP header around a payload.
pub fn overhead(ipv6: bool) -> usize {
    if ipv6 { 40 + 8 } else { 20 + 8 }
}

/// Binary search for the largest size that fits between `min` and `max`.
#[derive(Debug, Clone)]
pub struct PmtuSearch {
    min: usize,
    max: usize,
    overhead: usize,
    /// Largest size known to fit.
    fits: Option<usize>,
    /// Smallest size known not to fit, and why.
    fails: Option<(usize, PmtuOutcome)>,
    /// A size the kernel's MTU suggests trying next.
    hint: Option<usize>,
}

impl PmtuSearch {
    /// A search over `min..=max` bytes of payload with `overhead` bytes of headers.
    pub fn new(min: usize, max: usize, overhead: usize) -> PmtuSearch {
        PmtuSearch {
            min,
            max: max.max(min),
            overhead,
            fits: None,
            fails: None,
            hint: None,
        }
    }

    /// The next size to try; `None` when the answer is known. The first try is
    /// the maximum (on loopback everything fits and one probe settles it).
    pub fn next_size(&self) -> Option<usize> {
        let low = self.fits.map_or(self.min as i64 - 1, |f| f as i64);
        let high = self.fails.map_or(self.max as i64 + 1, |(f, _)| f as i64);
        if high - low <= 1 {
            return None;
        }
        if self.fits.is_none() && self.fails.is_none() {
            return Some(self.max);
        }
        if let Some(h) = self.hint.filter(|&h| (h as i64) > low && (h as i64) < high) {
            return Some(h);
        }
        Some(((low + high) / 2).max(low + 1) as usize)
    }

    /// Books what `size` got.
    pub fn record(&mut self, size: usize, outcome: PmtuOutcome) {
        if outcome.fits() {
            self.fits = Some(self.fits.map_or(size, |f| f.max(size)));
            if self.hint == Some(size) {
                // The kernel's MTU held; one byte more should not.
                self.hint = Some(size + 1);
            }
            return;
        }
        if self.fails.is_none_or(|(f, _)| size < f) {
            self.fails = Some((size, outcome));
        }
        if let PmtuOutcome::Emsgsize {
            path_mtu: Some(mtu),
        } = outcome
        {
            // The kernel says exactly what fits: try that next.
            self.hint = (mtu as usize).checked_sub(self.overhead);
        }
    }

    /// The largest payload that came back intact.
    pub fn answer(&self) -> Option<usize> {
        self.fits
    }

    /// What stopped the next size up, if anything did.
    pub fn limit(&self) -> Option<PmtuOutcome> {
        self.fails.map(|(_, o)| o)
    }
}

/// One probed size.
#[derive(Debug, Clone, Serialize)]
pub struct PmtuStep {
    /// Payload bytes.
    pub size: usize,
    /// What it got.
    pub outcome: PmtuOutcome,
}

/// The result of `--pmtu`, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PmtuSummary {
    /// The server probed.
    pub target: String,
    /// Always `pmtu`.
    pub mode: &'static str,
    /// The largest payload that echoed intact with DF set (`null`: not even the smallest).
    pub largest_payload: Option<usize>,
    /// That payload plus IP and UDP headers: the path MTU it proves.
    pub proven_mtu: Option<usize>,
    /// What the kernel reports as the path MTU at the end (`IP_MTU`).
    pub kernel_path_mtu: Option<u32>,
    /// What stopped the next size up (`null`: nothing, the maximum fits).
    pub limit: Option<PmtuOutcome>,
    /// Every size tried, in order.
    pub steps: Vec<PmtuStep>,
}

/// Sends one DF probe of `size` bytes and classifies what comes back.
fn probe_size(conn: &Connection, size: usize, seq: &mut u64, ipv6: bool) -> Result<PmtuOutcome> {
    let mut buf = vec![0u8; size];
    let mut reply = vec![0u8; crate::net::RECV_BUFFER_LEN];
    let emsgsize = |conn: &Connection| PmtuOutcome::Emsgsize {
        path_mtu: sys::path_mtu(&conn.socket, ipv6).ok(),
    };
    for _ in 0..SILENT_TRIES {
        *seq += 1;
        probe::fill(&mut buf, *seq, 0);
        match conn.send(&buf) {
            Ok(()) => {}
            Err(Error::Send { source, .. }) if source.raw_os_error() == Some(libc::EMSGSIZE) => {
                return Ok(emsgsize(conn));
            }
            Err(e) => return Err(e),
        }
        loop {
            match conn.recv(&mut reply, conn.timeout) {
                Ok(n) => match probe::verify(&reply[..n], size) {
                    Check::Intact { seq: s, .. } if s == *seq => return Ok(PmtuOutcome::Intact),
                    Check::Truncated { seq: s } if s == *seq => return Ok(PmtuOutcome::Truncation),
                    Check::Corrupt { seq: s } if s == *seq => return Ok(PmtuOutcome::Corruption),
                    _ => continue, // a late reply to an earlier probe
                },
                Err(Error::Timeout { .. }) => break,
                Err(Error::Recv { source, .. })
                    if source.raw_os_error() == Some(libc::EMSGSIZE) =>
                {
                    // An ICMP "fragmentation needed" lowered the route's MTU.
                    return Ok(emsgsize(conn));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(PmtuOutcome::Silence)
}

/// Searches the largest payload between `min` and the largest UDP payload
/// that echoes intact with DF set; `on_step` sees each size tried.
pub fn find_pmtu(
    target: &Target,
    min: usize,
    on_step: &mut dyn FnMut(&PmtuStep),
) -> Result<PmtuSummary> {
    let conn = super::connect(target)?;
    let ipv6 = conn.peer.is_ipv6();
    sys::set_dont_fragment(&conn.socket, ipv6).map_err(|source| Error::Socket {
        what: "set the don't-fragment bit",
        addr: conn.peer,
        source,
    })?;
    let mut search = PmtuSearch::new(min, probe::MAX_SIZE, overhead(ipv6));
    let mut steps = Vec::new();
    let mut seq = 0;
    while let Some(size) = search.next_size() {
        let outcome = probe_size(&conn, size, &mut seq, ipv6)?;
        search.record(size, outcome);
        let step = PmtuStep { size, outcome };
        on_step(&step);
        steps.push(step);
    }
    let largest = search.answer();
    Ok(PmtuSummary {
        target: conn.peer.to_string(),
        mode: "pmtu",
        largest_payload: largest,
        proven_mtu: largest.map(|l| l + overhead(ipv6)),
        kernel_path_mtu: sys::path_mtu(&conn.socket, ipv6).ok(),
        limit: search.limit(),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a simulated path: payloads up to `fits` come
    /// back; larger ones get `beyond` (with the MTU filled in for EMSGSIZE).
    fn simulate(min: usize, fits: usize, beyond: PmtuOutcome) -> (PmtuSearch, usize) {
        let mut search = PmtuSearch::new(min, 65507, 28);
        let mut steps = 0;
        while let Some(size) = search.next_size() {
            steps += 1;
            assert!(steps < 40, "the search must end");
            search.record(
                size,
                if size <= fits {
                    PmtuOutcome::Intact
                } else {
                    beyond
                },
            );
        }
        (search, steps)
    }

    #[test]
    fn loopback_fits_everything_in_one_probe() {
        let (search, steps) = simulate(64, 65507, PmtuOutcome::Silence);
        assert_eq!(
            (search.answer(), search.limit(), steps),
            (Some(65507), None, 1)
        );
    }

    #[test]
    fn a_local_mtu_is_found_in_two_probes_from_the_kernels_hint() {
        let (search, steps) = simulate(
            64,
            1252,
            PmtuOutcome::Emsgsize {
                path_mtu: Some(1280),
            },
        );
        assert_eq!(search.answer(), Some(1252));
        assert_eq!(
            search.limit(),
            Some(PmtuOutcome::Emsgsize {
                path_mtu: Some(1280)
            })
        );
        assert!(steps <= 3, "{steps}");
    }

    #[test]
    fn silent_drops_are_bisected_exactly() {
        for fits in [65, 576, 1472, 8972, 65506] {
            let (search, steps) = simulate(64, fits, PmtuOutcome::Silence);
            assert_eq!(search.answer(), Some(fits));
            assert_eq!(search.limit(), Some(PmtuOutcome::Silence));
            assert!(steps <= 18, "{fits}: {steps}");
        }
    }

    #[test]
    fn nothing_fits_when_even_the_minimum_fails() {
        let (search, _) = simulate(64, 10, PmtuOutcome::Truncation);
        assert_eq!(search.answer(), None);
        assert_eq!(search.limit(), Some(PmtuOutcome::Truncation));
    }
}
