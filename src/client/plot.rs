//! `--plot FILE.svg`: round trips over time above their distribution, as a
//! hand-written SVG.
//!
//! Hand-written rather than drawn with `plotters`: plotters lays label text out
//! itself through a font backend (`ttf` finds system fonts through
//! fontconfig, `ab_glyph` needs a font file registered), while SVG can leave
//! text layout to the viewer. The picture is two panels of rectangles,
//! circles, lines and labels: no dependency, no system library, and every
//! element is one line of the file, easy to test.
//!
//! Ping runs get a point per answered probe and a red tick per lost one;
//! flood and rate runs, a band per interval from p50 to p99 (their losses
//! ticked too). The lower panel is the `--histogram`'s buckets as bars.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::measure::{Event, IntervalReport};
use crate::client::probe::Check;
use crate::client::stats::{Latency, RunSummary};

/// Points kept for a ping run; past this, every other point is dropped and
/// only every second one after that is kept (and so on): memory stays bounded.
const MAX_POINTS: usize = 20_000;

/// One flood/rate interval: p50 to p99 of its round trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Interval start and end, seconds since the run's start.
    pub from_s: f64,
    /// End of the interval.
    pub to_s: f64,
    /// Median round trip of the interval, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Probes lost in the interval.
    pub lost: u64,
}

/// What a run looked like over time, collected from its events and interval reports.
#[derive(Debug, Clone)]
pub struct Timeline {
    origin: Instant,
    /// Answered probes: (seconds since the start, RTT ms).
    pub points: Vec<(f64, f64)>,
    /// Lost probes: when they were sent, seconds since the start.
    pub losses: Vec<f64>,
    /// A loss is known a timeout after its probe left.
    timeout_s: f64,
    /// Flood and rate intervals.
    pub bands: Vec<Band>,
    stride: usize,
    seen: usize,
}

impl Timeline {
    /// An empty timeline starting now (reset by the run's start event), for
    /// probes lost after `timeout`.
    pub fn new(timeout: Duration) -> Timeline {
        Timeline {
            origin: Instant::now(),
            points: Vec::new(),
            losses: Vec::new(),
            timeout_s: timeout.as_secs_f64(),
            bands: Vec::new(),
            stride: 1,
            seen: 0,
        }
    }

    /// Takes one event of a ping run.
    pub fn event(&mut self, event: &Event) {
        let now = self.origin.elapsed().as_secs_f64();
        match *event {
            Event::Start { .. } => self.origin = Instant::now(),
            Event::Reply {
                rtt_ns,
                check: Check::Intact { .. },
                duplicate: false,
                late: false,
                ..
            } => {
                let rtt_s = rtt_ns as f64 / 1e9;
                self.push_point((now - rtt_s).max(0.0), rtt_s * 1e3);
            }
            Event::Timeout { .. } if self.losses.len() < MAX_POINTS => {
                self.losses.push((now - self.timeout_s).max(0.0));
            }
            _ => {}
        }
    }

    fn push_point(&mut self, t: f64, rtt_ms: f64) {
        self.seen += 1;
        if self.seen % self.stride != 0 {
            return;
        }
        if self.points.len() == MAX_POINTS {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            self.stride *= 2;
        }
        self.points.push((t, rtt_ms));
    }

    /// Takes one interval report of a flood or rate run.
    pub fn interval(&mut self, report: &IntervalReport) {
        self.bands.push(Band {
            from_s: report.from_s,
            to_s: report.to_s,
            p50_ms: report.latency.quantile_ns(0.50) as f64 / 1e6,
            p99_ms: report.latency.quantile_ns(0.99) as f64 / 1e6,
            lost: report.counts.lost,
        });
    }
}

/// Now as `2026-11-27 03:55 UTC`, for the title.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_minute(secs)
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar).
pub fn utc_minute(unix_s: u64) -> String {
    let (days, rem) = ((unix_s / 86_400) as i64, unix_s % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Round ticks (1, 2 or 5 × 10^n apart, at most 8 steps) from 0 up to the
/// first at or above `max`, which becomes the axis's end: both edges of an
/// axis carry a label, and the axis wastes less than a step.
fn edge_ticks(max: f64) -> (f64, Vec<f64>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let magnitude = 10f64.powf((max / 10.0).log10().floor());
    let (step, steps) = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .map(|m| m * magnitude)
        .map(|step| (step, (max / step - 1e-9).ceil().max(1.0) as usize))
        .find(|&(_, steps)| steps <= 8)
        .unwrap_or((max, 1));
    let t: Vec<f64> = (0..=steps).map(|i| i as f64 * step).collect();
    (steps as f64 * step, t)
}

/// A tick value without needless decimals.
fn tick_label(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Escapes text for an SVG text node.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 680.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 910.0;
/// Top panel: RTT over time.
const TOP: (f64, f64) = (70.0, 360.0);
/// Bottom panel: the distribution.
const BOTTOM: (f64, f64) = (440.0, 620.0);

/// The whole picture: title, RTT over time, RTT distribution.
pub fn svg(summary: &RunSummary, timeline: &Timeline, latency: &Latency, date: &str) -> String {
    let mut s = String::with_capacity(64 * 1024 + timeline.points.len() * 64);
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let title = format!(
        "udp-echo RTT — {}, {} mode, {} bytes, {}",
        summary.target,
        summary.mode.name(),
        summary.size,
        date
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"##,
        WIDTH / 2.0,
        escape(&title)
    );
    let r = &summary.rtt_us;
    let c = &summary.counts;
    let subtitle = format!(
        "sent {}, received {}, lost {} ({:.2}%); p50 {:.3} ms, p99 {:.3} ms",
        c.sent,
        c.received,
        c.lost,
        summary.loss_percent,
        r.p50 / 1e3,
        r.p99 / 1e3
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="50" text-anchor="middle" fill="#444444">{}</text>"##,
        WIDTH / 2.0,
        escape(&subtitle)
    );
    over_time(&mut s, timeline, summary.duration_s);
    distribution(&mut s, latency);
    s.push_str("</svg>\n");
    s
}

/// Axes, ticks, grid and labels of one panel: x ticks at their pixel
/// positions, y ticks as values that `y` maps to pixels.
#[allow(clippy::too_many_arguments)]
fn axes(
    s: &mut String,
    (top, bottom): (f64, f64),
    x_ticks: &[(f64, String)],
    y_ticks: &[(f64, String)],
    y: &dyn Fn(f64) -> f64,
    x_label: &str,
    y_label: &str,
    class: &str,
) {
    let _ = writeln!(s, r##"<g class="{class}">"##);
    for (v, label) in y_ticks {
        let py = y(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            py + 4.0,
            escape(label)
        );
    }
    for (px, label) in x_ticks {
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{}" stroke="#333333"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="M{LEFT},{top} V{bottom} H{RIGHT}" fill="none" stroke="#333333"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">{}</text>"##,
        (LEFT + RIGHT) / 2.0,
        bottom + 36.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate(22,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        (top + bottom) / 2.0,
        escape(y_label)
    );
    s.push_str("</g>\n");
}

/// The upper panel: a point per answered probe (ping) or a p50–p99 band per
/// interval (flood, rate), losses as red ticks along the top.
fn over_time(s: &mut String, t: &Timeline, duration_s: f64) {
    let t_max = t
        .points
        .iter()
        .map(|p| p.0)
        .chain(t.losses.iter().copied())
        .chain(t.bands.iter().map(|b| b.to_s))
        .fold(duration_s, f64::max)
        .max(1e-3);
    let rtt_max = t
        .points
        .iter()
        .map(|p| p.1)
        .chain(t.bands.iter().map(|b| b.p99_ms))
        .fold(0.0, f64::max)
        * 1.1;
    let (t_max, t_ticks) = edge_ticks(t_max);
    let x = |v: f64| LEFT + v / t_max * (RIGHT - LEFT);
    let x_ticks: Vec<(f64, String)> = t_ticks.into_iter().map(|v| (x(v), tick_label(v))).collect();
    let (rtt_max, rtt_ticks) = edge_ticks(rtt_max.max(1e-3));
    let (top, bottom) = TOP;
    let y = move |v: f64| bottom - v / rtt_max * (bottom - top);
    let y_ticks: Vec<(f64, String)> = rtt_ticks.into_iter().map(|v| (v, tick_label(v))).collect();
    let what = if t.bands.is_empty() {
        "RTT (ms), a point per answered probe; red ticks: lost probes"
    } else {
        "RTT (ms), p50–p99 band per interval; red ticks: losses"
    };
    axes(
        s,
        TOP,
        &x_ticks,
        &y_ticks,
        &y,
        "time since start (s)",
        "RTT (ms)",
        "panel over-time",
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{}" fill="#444444">{what}</text>"##,
        TOP.0 - 6.0
    );
    for b in &t.bands {
        let _ = writeln!(
            s,
            r##"<rect class="band" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#4c78a8" fill-opacity="0.35"/><line class="p50" x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="#1f4e79" stroke-width="1.5"/>"##,
            x(b.from_s),
            y(b.p99_ms),
            (x(b.to_s) - x(b.from_s)).max(0.5),
            (y(b.p50_ms) - y(b.p99_ms)).max(0.5),
            x(b.from_s),
            y(b.p50_ms),
            x(b.to_s),
            y(b.p50_ms)
        );
    }
    for &(tp, rtt) in &t.points {
        let _ = writeln!(
            s,
            r##"<circle class="point" cx="{:.2}" cy="{:.2}" r="2" fill="#1f77b4"/>"##,
            x(tp),
            y(rtt)
        );
    }
    let losses = t.losses.iter().copied().chain(
        t.bands
            .iter()
            .filter(|b| b.lost > 0)
            .map(|b| (b.from_s + b.to_s) / 2.0),
    );
    for tl in losses {
        let _ = writeln!(
            s,
            r##"<line class="loss" x1="{0:.2}" y1="{1}" x2="{0:.2}" y2="{2}" stroke="#d62728" stroke-width="2"/>"##,
            x(tl),
            TOP.0,
            TOP.0 + 12.0
        );
    }
}

/// The most bars in the distribution panel.
const MAX_BARS: usize = 48;

/// The lower panel: the round trips in buckets of equal ratio (8, 4, 2 or 1
/// per doubling, at most [`MAX_BARS`]) as bars on a log count scale, so a tail of a
/// few dozen shows beside a bulk of thousands, and the cumulative percentage
/// as a line on a right-hand axis. Every axis edge is labelled.
fn distribution(s: &mut String, latency: &Latency) {
    let (per_doubling, buckets) = [8, 4, 2]
        .into_iter()
        .map(|per| (per, latency.buckets(per)))
        .find(|(_, b)| b.len() <= MAX_BARS)
        .unwrap_or_else(|| (1, latency.buckets(1)));
    let per_doubling = per_doubling as usize;
    let n = buckets.len().max(1);
    let slot = (RIGHT - LEFT) / n as f64;
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    // Counts: 0, then powers of ten up to the first at or above the most.
    let mut y_ticks = vec![(0.0, "0".to_owned())];
    let mut decade = 1u64;
    loop {
        y_ticks.push((decade as f64, decade.to_string()));
        if decade >= most.max(10) {
            break;
        }
        decade = decade.saturating_mul(10);
    }
    let (top, bottom) = BOTTOM;
    let y_top = decade as f64;
    let y = move |v: f64| bottom - v.ln_1p() / y_top.ln_1p() * (bottom - top);
    let label = |ns: u64| tick_label(ns as f64 / 1e6);
    // A label at every doubling (every bucket when they double), thinned
    // to about 12, and always at both ends.
    let step = per_doubling * n.div_ceil(per_doubling * 12).max(1);
    let bounds = buckets
        .iter()
        .map(|b| b.low_ns)
        .chain(buckets.last().map(|b| b.high_ns));
    let mut x_ticks: Vec<(f64, String)> = bounds
        .enumerate()
        .filter(|&(i, _)| i % step == 0 || i == n)
        .map(|(i, ns)| (LEFT + i as f64 * slot, label(ns)))
        .collect();
    // The right edge keeps its label; a regular one too close before it goes.
    if let [.., (before, _), (edge, _)] = x_ticks[..] {
        if x_ticks.len() > 2 && edge - before < 45.0 {
            x_ticks.remove(x_ticks.len() - 2);
        }
    }
    let x_label = match per_doubling {
        1 => "RTT (ms), buckets doubling in width".to_owned(),
        k => format!("RTT (ms), {k} buckets per doubling"),
    };
    axes(
        s,
        BOTTOM,
        &x_ticks,
        &y_ticks,
        &y,
        &x_label,
        "round trips (log scale)",
        "panel distribution",
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{}" fill="#444444">RTT distribution ({}); line: cumulative % (right axis)</text>"##,
        top - 6.0,
        crate::client::report::count(latency.count(), "round trip", "round trips")
    );
    for (i, b) in buckets.iter().enumerate().filter(|(_, b)| b.count > 0) {
        let bar_top = y(b.count as f64);
        let _ = writeln!(
            s,
            r##"<rect class="bar" x="{:.2}" y="{bar_top:.2}" width="{:.2}" height="{:.2}" fill="#4c78a8"><title>{} – {} ms: {}</title></rect>"##,
            LEFT + i as f64 * slot + 1.0,
            (slot - 2.0).max(1.0),
            bottom - bar_top,
            label(b.low_ns),
            label(b.high_ns),
            b.count
        );
    }
    // The CDF: from 0 at the left edge to 100% at the right, a point at each
    // bucket's upper bound.
    let total = buckets.iter().map(|b| b.count).sum::<u64>().max(1) as f64;
    let percent_y = |p: f64| bottom - p / 100.0 * (bottom - top);
    let mut path = format!("M{LEFT:.2},{bottom:.2}");
    let mut below = 0;
    for (i, b) in buckets.iter().enumerate() {
        below += b.count;
        let _ = write!(
            path,
            " L{:.2},{:.2}",
            LEFT + (i + 1) as f64 * slot,
            percent_y(below as f64 * 100.0 / total)
        );
    }
    let _ = writeln!(
        s,
        r##"<path class="cdf" d="{path}" fill="none" stroke="#d62728" stroke-width="1.5"/>"##
    );
    let _ = writeln!(
        s,
        r##"<path d="M{RIGHT},{top} V{bottom}" fill="none" stroke="#333333"/>"##
    );
    for p in [0.0, 50.0, 90.0, 100.0] {
        let _ = writeln!(
            s,
            r##"<text class="cdf-tick" x="{}" y="{:.1}" fill="#d62728">{p}%</text>"##,
            RIGHT + 4.0,
            percent_y(p) + 4.0
        );
    }
}

#[cfg(test)]
mod tests;
