//! A `/probe` query: its parameters parsed, checked and bounded, and the
//! percent-decoding of a query string.

use std::time::Duration;

use super::*;

/// Echo probes or STAMP test packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// The echo probe format (any echo server).
    Echo,
    /// STAMP (RFC 8762) test packets, unauthenticated.
    Stamp,
}

/// One `/probe` request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeQuery {
    /// The host as given (brackets removed).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Echo or STAMP.
    pub mode: ProbeMode,
    /// Probes in the burst.
    pub count: u64,
    /// From one probe to the next.
    pub interval: Duration,
    /// Probe size in bytes; `None`: the mode's default.
    pub size: Option<usize>,
    /// How long each probe waits for its reply.
    pub timeout: Duration,
    /// How long a name's resolution is waited for (see the module doc).
    pub resolve_timeout: Duration,
}

impl ProbeQuery {
    /// Reads a query string (`target=…&count=…`, percent-encoded) and the
    /// scrape timeout Prometheus sent, if any. `Err` is the one-line reason
    /// a `400` gives.
    pub fn parse(query: &str, scrape_timeout: Option<&str>) -> Result<ProbeQuery, String> {
        let mut target = None;
        let mut probe = ProbeQuery {
            host: String::new(),
            port: 0,
            mode: ProbeMode::Echo,
            count: 5,
            interval: Duration::from_millis(100),
            size: None,
            timeout: Duration::from_secs(1),
            resolve_timeout: MAX_RESOLVE,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            let number = |max: f64| -> Result<f64, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && (0.0..=max).contains(v))
                    .ok_or_else(|| format!("{key}={value:?}: expected a number from 0 to {max}"))
            };
            match key.as_str() {
                "target" => target = Some(value.clone()),
                "mode" => {
                    probe.mode = match value.as_str() {
                        "echo" => ProbeMode::Echo,
                        "stamp" => ProbeMode::Stamp,
                        _ => return Err(format!("mode={value:?}: expected echo or stamp")),
                    }
                }
                "count" => {
                    probe.count = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=MAX_COUNT).contains(n))
                        .ok_or_else(|| {
                            format!("count={value:?}: expected 1 to {MAX_COUNT} probes")
                        })?;
                }
                "interval" => probe.interval = Duration::from_secs_f64(number(1.0)?),
                "timeout" => {
                    let secs = number(MAX_TIMEOUT.as_secs_f64())?;
                    if secs < 0.001 {
                        return Err(format!("timeout={value:?}: at least 0.001 s"));
                    }
                    probe.timeout = Duration::from_secs_f64(secs);
                }
                "size" => {
                    let size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (crate::client::probe::MIN_SIZE..=MAX_SIZE).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "size={value:?}: expected {} to {MAX_SIZE} bytes",
                                crate::client::probe::MIN_SIZE
                            )
                        })?;
                    probe.size = Some(size);
                }
                // blackbox_exporter's module: configs written for it pass one.
                "module" => {}
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        let target = target.ok_or("missing parameter target (HOST:PORT)")?;
        (probe.host, probe.port) = split_host_port(&target)?;
        if let (ProbeMode::Stamp, Some(size)) = (probe.mode, probe.size) {
            stamp::check_size(false, None, false, size).map_err(|e| e.replace("--size", "size"))?;
        }
        let burst = probe.burst();
        if burst > MAX_BURST {
            return Err(format!(
                "the burst takes up to {:.3} s (count x interval + timeout; interval 0: count x timeout), over the {} s allowed",
                burst.as_secs_f64(),
                MAX_BURST.as_secs()
            ));
        }
        let mut budget = MAX_BURST;
        if let Some(header) = scrape_timeout {
            let scrape = header
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    format!("X-Prometheus-Scrape-Timeout-Seconds {header:?} is not a number")
                })?;
            budget = Duration::from_secs_f64(scrape.min(3600.0)).saturating_sub(SCRAPE_MARGIN);
            if burst > budget {
                return Err(format!(
                    "the burst takes up to {:.3} s (count x interval + timeout; interval 0: count x timeout), over the scrape timeout of {scrape} s less {} s",
                    burst.as_secs_f64(),
                    SCRAPE_MARGIN.as_secs_f64()
                ));
            }
        }
        probe.resolve_timeout = budget.saturating_sub(burst).clamp(MIN_RESOLVE, MAX_RESOLVE);
        Ok(probe)
    }

    /// Whether the target is a name, which the system resolver must resolve
    /// (an address literal is not asked about).
    pub fn is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }

    /// The longest the burst can take: `count` × `interval` + `timeout`, or
    /// with `interval` 0 (the next probe when the last one's reply or timeout
    /// came) `count` × `timeout`.
    pub fn burst(&self) -> Duration {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        if self.interval.is_zero() {
            self.timeout.saturating_mul(count)
        } else {
            self.interval.saturating_mul(count) + self.timeout
        }
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`; the port is required (a UDP service has no
/// default one).
fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("target={text:?}: expected HOST:PORT or [IPv6]:PORT");
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':').ok_or_else(bad)?)
        }
        None => {
            let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad());
            }
            (host, port)
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(bad)?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Percent-decodes one query component (`+` is a space), as UTF-8.
pub fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{text:?}: a bad percent escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{text:?}: not UTF-8 once decoded"))
}
