//! The pictures of a run: the terminal histogram (`--histogram`) and the
//! `--plot` SVG.

use super::*;

#[test]
fn the_histogram_follows_the_summary_with_marked_percentiles() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "20",
            "-i",
            "0",
            "--histogram",
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let text = run.stdout_text();
    let (report, histogram) = text
        .split_once("RTT distribution: 20 round trips")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        report.contains("rtt p50/p90/p99"),
        "the summary comes first: {text}"
    );
    let lines: Vec<&str> = histogram.lines().skip(1).collect();
    assert!(lines.iter().any(|l| l.contains('#')), "{text}");
    // Each line: "LOW - HIGH |####  COUNT  <- p50".
    let count = |l: &str| -> u64 {
        let after_bar = l.split('|').nth(1).unwrap().trim_start_matches('#');
        after_bar
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        lines.iter().map(|l| count(l)).sum::<u64>(),
        20,
        "every round trip in a bucket: {text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("p50")).count(),
        1,
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("p99")).count(),
        1,
        "{text}"
    );
    let bars = lines.iter().filter(|l| l.contains('#')).count();
    let non_empty = lines.iter().filter(|l| count(l) > 0).count();
    assert_eq!(bars, non_empty, "{text}");
}

/// Element counts by class in an SVG, read by python's XML parser.
fn svg_classes(file: &Scratch) -> Option<HashMap<String, usize>> {
    let script = "import sys,collections,xml.etree.ElementTree as ET\nroot=ET.parse(sys.argv[1]).getroot()\nassert root.tag=='{http://www.w3.org/2000/svg}svg'\nfor k,v in collections.Counter(e.get('class') for e in root.iter() if e.get('class')).items(): print(k.replace(' ','_'),v)";
    let out = python(script, file.arg())?;
    Some(
        out.lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_owned(), v.parse().unwrap())
            })
            .collect(),
    )
}

#[test]
fn the_plot_has_both_panels_a_point_per_answer_and_a_tick_per_loss() {
    let (peer, _server) = every_second_dropped();
    let file = Scratch::new("ping.svg");
    let port = peer.port().to_string();
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "20",
            "-i",
            "0.01",
            "-t",
            "0.5",
            "--plot",
            file.arg(),
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let svg = file.text();
    assert!(
        svg.contains(&format!("127.0.0.1:{port}, ping mode, 64 bytes")),
        "title: {svg}"
    );
    let Some(classes) = svg_classes(&file) else {
        return;
    };
    let n = |k: &str| classes.get(k).copied().unwrap_or(0);
    assert_eq!(
        (n("panel_over-time"), n("panel_distribution")),
        (1, 1),
        "{classes:?}"
    );
    assert_eq!((n("point"), n("loss")), (10, 10), "{classes:?}");
    assert!(n("bar") >= 1, "{classes:?}");
}

#[test]
fn a_flood_plot_has_a_band_per_interval() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let file = Scratch::new("flood.svg");
    let run = run_client(
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-f",
            "-D",
            "2",
            "--plot",
            file.arg(),
        ],
        None,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let intervals = run
        .stdout_text()
        .lines()
        .filter(|l| l.starts_with('['))
        .count();
    let Some(classes) = svg_classes(&file) else {
        return;
    };
    assert_eq!(classes.get("band").copied(), Some(intervals), "{classes:?}");
    assert_eq!(classes.get("point"), None, "{classes:?}");
}
