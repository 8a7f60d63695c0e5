//! The fleet prober as a full mesh on one machine (contrib/kubernetes/mesh.yaml
//! in miniature): hosts in network namespaces on one bridge, each running the
//! server and the fleet prober with the same target file, so every host
//! probes every host. nftables rules on three chosen pairs drop, duplicate
//! and corrupt a known share of the datagrams; each pair's books must equal
//! its rule's counter exactly, and every other pair must be clean.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::mesh::Mesh;
use crate::common::netns::{in_ns, nft_available, run};
use crate::metrics::http_get;

use crate::fleet::Fleet;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{ServerProcess, WAIT, skip, start_server_via};

/// Hosts in the mesh.
const HOSTS: usize = 4;

/// Probes each prober sends to each target (`-c`), one every 10 ms.
const PROBES: u64 = 200;

/// Starts host `i`'s prober in its namespace: `--rounds` probes to each
/// target of `file`, its series labelled `source_node`.
fn start_prober(ns: &str, file: &Path, node: &str) -> Fleet {
    let count = PROBES.to_string();
    let label = format!("source_node={node}");
    Fleet::start_via(
        &["ip", "netns", "exec", ns],
        file,
        &[
            "-i", "0.01", "-t", "1", "--rounds", &count, "--label", &label,
        ],
    )
}

/// One scrape of `fleet`, from inside its namespace `ns`.
fn scrape_in(ns: &str, fleet: &Fleet) -> String {
    let addr = fleet.metrics;
    let (status, body) = in_ns(ns, move || http_get(addr, "/metrics"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Every sample of the text format: (name, labels) → value.
fn samples(body: &str) -> HashMap<(String, BTreeMap<String, String>), f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(((name.to_owned(), labels), value.parse().ok()?))
        })
        .collect()
}

/// The value of `name` for one pair, from one prober's samples.
fn pair_value(
    samples: &HashMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    node: &str,
    target: &str,
) -> Option<f64> {
    samples.iter().find_map(|((n, labels), v)| {
        (n == name
            && labels.get("target").map(String::as_str) == Some(target)
            && labels.get("source_node").map(String::as_str) == Some(node))
        .then_some(*v)
    })
}

/// The nft rule set for the receiving host `ns`: `rules` (one per line),
/// each naming one of `counters`.
fn load_rules(ns: &str, counters: &[&str], rules: &str) {
    let decl: String = counters
        .iter()
        .map(|c| format!("counter {c} {{}}\n"))
        .collect();
    let ruleset = format!(
        "table ip udpecho_mesh {{
            {decl}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                {rules}
            }}
        }}"
    );
    run(
        "ip",
        &["netns", "exec", ns, "nft", "-f", "-"],
        Some(&ruleset),
    )
    .unwrap_or_else(|why| panic!("{why}\n{ruleset}"));
}

/// The packet count of nft counter `name` in `ns`.
fn counter(ns: &str, name: &str) -> u64 {
    let text = run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "nft",
            "-j",
            "list",
            "counter",
            "ip",
            "udpecho_mesh",
            name,
        ],
        None,
    )
    .unwrap_or_else(|why| panic!("{why}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|item| item.get("counter")?["packets"].as_u64())
        .unwrap_or_else(|| panic!("no counter {name} in {text}"))
}

#[test]
fn every_host_probes_every_other_and_each_impairment_shows_on_its_pair_only() {
    if let Err(why) = nft_available() {
        return skip(&format!("fleet mesh: {why}"));
    }
    let mesh = match Mesh::new(HOSTS) {
        Ok(mesh) => mesh,
        Err(why) => return skip(&format!("fleet mesh: {why}")),
    };
    let servers: Vec<ServerProcess> = mesh
        .hosts
        .iter()
        .map(|h| {
            start_server_via(
                &["ip", "netns", "exec", &h.ns],
                &["--host", &h.addr, "--port", "0"],
            )
        })
        .collect();
    let target = |i: usize| servers[i].addr.to_string();
    let port = |i: usize| servers[i].addr.port();
    let addr = |i: usize| mesh.hosts[i].addr.as_str();
    let node = |i: usize| format!("h{i}");

    // Drop every 10th probe from h1 on its way into h2.
    load_rules(
        &mesh.hosts[2].ns,
        &["probes_dropped"],
        &format!(
            "iifname \"eth0\" ip saddr {} udp dport {} numgen inc mod 10 == 0 \
             counter name \"probes_dropped\" drop",
            addr(1),
            port(2)
        ),
    );
    // Duplicate every 7th reply from h3 into h0, and corrupt (one bit of the
    // probe's pattern) every 9th reply from h0 into h3.
    load_rules(
        &mesh.hosts[0].ns,
        &["replies_duplicated"],
        &format!(
            "iifname \"eth0\" ip saddr {} udp sport {} numgen inc mod 7 == 0 \
             counter name \"replies_duplicated\" dup to {}",
            addr(3),
            port(3),
            addr(0)
        ),
    );
    let bit = (8 + 20) * 8;
    load_rules(
        &mesh.hosts[3].ns,
        &["replies_rewritten"],
        &format!(
            "iifname \"eth0\" ip saddr {} udp sport {} numgen inc mod 9 == 0 \
             counter name \"replies_rewritten\" @th,{bit},8 set @th,{bit},8 ^ 0x01",
            addr(0),
            port(0)
        ),
    );

    // One target file for every host, as a headless Service's name would give.
    let dir = std::env::temp_dir().join(format!("udp-echo-mesh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("targets.json");
    let targets: Vec<String> = (0..HOSTS).map(target).collect();
    std::fs::write(
        &file,
        serde_json::json!([{"targets": targets, "labels": {"mesh": "test"}}]).to_string(),
    )
    .unwrap();
    let probers: Vec<Fleet> = (0..HOSTS)
        .map(|i| start_prober(&mesh.hosts[i].ns, &file, &node(i)))
        .collect();
    let scrape = |i: usize| scrape_in(&mesh.hosts[i].ns, &probers[i]);

    // Every pair settled: all probes sent, each answered or past its timeout.
    let deadline = Instant::now() + 3 * WAIT;
    let scraped: Vec<_> = loop {
        let scraped: Vec<_> = (0..HOSTS).map(|i| samples(&scrape(i))).collect();
        let settled = (0..HOSTS).all(|i| {
            (0..HOSTS).all(|j| {
                let v = |name| pair_value(&scraped[i], name, &node(i), &target(j));
                v("udp_echo_client_probes_sent_total") == Some(PROBES as f64)
                    && v("udp_echo_client_probes_received_total")
                        .zip(v("udp_echo_client_probes_lost_total"))
                        .is_some_and(|(r, l)| r + l == PROBES as f64)
            })
        });
        if settled {
            break scraped;
        }
        assert!(
            Instant::now() < deadline,
            "the mesh did not settle; last scrape of h0:\n{}",
            scrape(0)
        );
        thread::sleep(Duration::from_millis(100));
    };

    let dropped = counter(&mesh.hosts[2].ns, "probes_dropped");
    let duplicated = counter(&mesh.hosts[0].ns, "replies_duplicated");
    let rewritten = counter(&mesh.hosts[3].ns, "replies_rewritten");
    assert!(
        dropped > 0 && duplicated > 0 && rewritten > 0,
        "the rules never matched: {dropped} {duplicated} {rewritten}"
    );
    // One pair's figure; the matrix first, for `--nocapture` readers (and
    // for a failure's context), then the checks.
    let figure = |i: usize, j: usize, name: &str| {
        pair_value(
            &scraped[i],
            &format!("udp_echo_client_{name}"),
            &node(i),
            &target(j),
        )
    };
    eprintln!(
        "source → target: sent received lost duplicate corrupt (nft: dropped {dropped} h1→h2, duplicated {duplicated} h3→h0 replies, rewritten {rewritten} h0→h3 replies)"
    );
    for i in 0..HOSTS {
        for j in 0..HOSTS {
            let v = |name| figure(i, j, name).unwrap_or(f64::NAN);
            eprintln!(
                "h{i} → h{j}: {} {} {} {} {}",
                v("probes_sent_total"),
                v("probes_received_total"),
                v("probes_lost_total"),
                v("replies_duplicate_total"),
                v("replies_corrupt_total")
            );
        }
    }
    for i in 0..HOSTS {
        for j in 0..HOSTS {
            let v = |name| figure(i, j, name).unwrap_or_else(|| panic!("h{i} → h{j}: no {name}"));
            let want = |pair: (usize, usize), n: u64| if (i, j) == pair { n as f64 } else { 0.0 };
            let books = (
                v("probes_lost_total"),
                v("replies_duplicate_total"),
                v("replies_corrupt_total"),
            );
            assert_eq!(
                books,
                (
                    want((1, 2), dropped),
                    want((0, 3), duplicated),
                    want((3, 0), rewritten)
                ),
                "h{i} → h{j}: (lost, duplicate, corrupt) against the nft counters"
            );
            assert_eq!(v("replies_late_total"), 0.0, "h{i} → h{j}");
        }
    }

    // Every metric the mesh dashboard queries is one the prober exports.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/kubernetes/mesh-dashboard.json"
    ))
    .unwrap();
    let exported: Vec<String> = scraped[0].keys().map(|(name, _)| name.clone()).collect();
    let mut queried = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("udp_echo_client_") {
            queried += 1;
            assert!(
                exported
                    .iter()
                    .any(|e| e == word || e.starts_with(&format!("{word}_"))),
                "the dashboard queries {word}, which the prober does not export"
            );
        }
    }
    assert!(queried >= 6, "only {queried} metric names in the dashboard");
    let _ = std::fs::remove_dir_all(&dir);
}
