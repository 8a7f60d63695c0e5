//! DSCP re-marked on the way, proven against nftables: a rule re-marks the
//! probes (on the server's host, as they arrive) or the replies (on the
//! client's host, as they arrive) to CS1, and the client, which sent EF,
//! must see it.
//!
//! - In echo mode the reply carries back whatever DSCP the request arrived
//!   with, so either re-mark shows as `dscp_changed` = every reply, equal to
//!   the rule's counter — but echo cannot say which way it happened.
//! - With `--stamp`, the RFC 8972 Class of Service TLV says what the
//!   reflector received and asks it to reply with EF whatever came:
//!   `dscp_forward_changed` and `dscp_reverse_changed` name the direction
//!   (every reply on the re-marked side, none on the other), and only a
//!   reverse re-mark shows in `dscp_changed`.
//!
//! Two hosts in network namespaces of their own, joined by a veth link
//! (`common/netns.rs`); IPv4 and IPv6. Needs root, ip(8) and nft(8); skips
//! visibly without them. Linux only.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::netns;

use common::{json_of, run_client_in, skip, start_server_via};
use netns::TestNet;
use serde_json::Value;

/// Probes per run.
const PROBES: u64 = 40;
/// The DSCP the client marks its probes with (EF) and the one the rule sets (CS1).
const EF: u64 = 46;
const CS1: u64 = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    /// The probes are re-marked as they reach the server's host.
    Forward,
    /// The replies are re-marked as they reach the client's host.
    Reverse,
}

fn net_or_skip() -> Option<TestNet> {
    match netns::nft_available().and_then(|()| TestNet::new()) {
        Ok(net) => Some(net),
        Err(why) => {
            skip(&format!("DSCP re-mark tests: {why}"));
            None
        }
    }
}

/// A rule set for one host that re-marks, to CS1, the UDP datagrams arriving
/// on `dev` `from` or `to` port `port`, counting them in `remarked`.
fn remark_rules(v6: bool, dev: &str, match_port: &str) -> String {
    let (table, field) = if v6 { ("ip6", "ip6") } else { ("ip", "ip") };
    format!(
        "table {table} udpecho_dscp {{
            counter remarked {{}}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                iifname \"{dev}\" {match_port} counter name \"remarked\" {field} dscp set cs1
            }}
        }}"
    )
}

fn number(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {json}"))
}

/// Runs `PROBES` EF probes from the client host to a server (`--stamp` or
/// not) on the other through a CS1 re-mark on `way`; returns the client's
/// JSON and the rule's counter.
fn remarked_run(v6: bool, stamp: bool, way: Way, mode: &[&str]) -> Option<(Value, u64)> {
    let net = net_or_skip()?;
    let (server_ip, family) = if v6 {
        (netns::SERVER_V6, "-6")
    } else {
        (netns::SERVER_V4, "-4")
    };
    let mut server_args = vec!["--host", server_ip, "--port", "0"];
    if stamp {
        server_args.push("--stamp");
    }
    let server = start_server_via(&["ip", "netns", "exec", &net.server], &server_args);
    let port = server.addr.port().to_string();
    let (ns, dev, matcher) = match way {
        Way::Forward => (&net.server, &net.server_dev, format!("udp dport {port}")),
        Way::Reverse => (&net.client, &net.client_dev, format!("udp sport {port}")),
    };
    net.nft(ns, &remark_rules(v6, dev, &matcher));
    let mut args = vec![
        "--host", server_ip, family, "--port", &port, "--tos", "EF", "--json",
    ];
    if stamp {
        args.push("--stamp");
    }
    args.extend_from_slice(mode);
    let run = run_client_in(&net.client, &args);
    let json = json_of(&run);
    let remarked = net.counters(ns)["remarked"];
    drop(server);
    Some((json, remarked))
}

/// Every probe answered, the rule re-marked at least every one of them, and
/// every reply arrived with `arrived` (sent as EF).
fn assert_replies(json: &Value, remarked: u64, arrived: u64, what: &str) {
    let received = number(json, "received");
    // Ping sends exactly its count; rate mode what its schedule allows in
    // the time (400/s for 0.1 s: at most 41, one at 0 s and one per 2.5 ms),
    // never more. How many of them a loaded host gets out in 0.1 s is timing,
    // which is for benchmarks: this test is about what each reply carries.
    let sent = number(json, "sent");
    if json["mode"] == "ping" {
        assert_eq!(sent, PROBES, "{what}: {json}");
    } else {
        assert!((1..=PROBES + 1).contains(&sent), "{what}: {json}");
    }
    assert_eq!(number(json, "lost"), 0, "{what}: {json}");
    assert_eq!(received, number(json, "sent"), "{what}: {json}");
    assert!(
        remarked >= received,
        "{what}: the rule re-marked {remarked} datagrams, fewer than the {received} replies: {json}"
    );
    assert_eq!(number(json, "dscp_sent"), EF, "{what}: {json}");
    let changed = if arrived == EF { 0 } else { received };
    assert_eq!(number(json, "dscp_changed"), changed, "{what}: {json}");
    assert_eq!(
        json["dscp_seen"][arrived.to_string()].as_u64(),
        Some(received),
        "{what}: every reply arrived with DSCP {arrived}: {json}"
    );
}

const PING: &[&str] = &["-c", "40", "-i", "0.005"];
const RATE: &[&str] = &["--rate", "400", "-D", "0.1"];

fn echo_case(v6: bool, way: Way, mode: &[&str]) {
    let what = format!(
        "echo, {}, {way:?}, {mode:?}",
        if v6 { "IPv6" } else { "IPv4" }
    );
    let Some((json, remarked)) = remarked_run(v6, false, way, mode) else {
        return;
    };
    // The echo carries back the DSCP the probe arrived with: CS1 either way.
    assert_replies(&json, remarked, CS1, &what);
    // Echo cannot tell the way: no direction figures.
    assert!(
        json.get("dscp_forward_changed").is_none_or(Value::is_null),
        "{what}: {json}"
    );
}

fn stamp_case(v6: bool, way: Way, mode: &[&str]) {
    let what = format!(
        "STAMP, {}, {way:?}, {mode:?}",
        if v6 { "IPv6" } else { "IPv4" }
    );
    let Some((json, remarked)) = remarked_run(v6, true, way, mode) else {
        return;
    };
    // The reflector sends the reply with the DSCP1 the TLV asks for (EF),
    // so a forward re-mark is undone on the way back; a reverse one is not.
    let received = number(&json, "received");
    let (arrived, forward, reverse) = match way {
        Way::Forward => (EF, received, 0),
        Way::Reverse => (CS1, 0, received),
    };
    assert_replies(&json, remarked, arrived, &what);
    assert_eq!(
        (
            number(&json, "dscp_forward_changed"),
            number(&json, "dscp_reverse_changed")
        ),
        (forward, reverse),
        "{what}: the Class of Service TLV must name the re-marking direction: {json}"
    );
}

#[test]
fn echo_sees_a_forward_remark_ipv4_and_ipv6() {
    echo_case(false, Way::Forward, PING);
    echo_case(true, Way::Forward, RATE);
}

#[test]
fn echo_sees_a_reverse_remark_ipv4_and_ipv6() {
    echo_case(false, Way::Reverse, RATE);
    echo_case(true, Way::Reverse, PING);
}

#[test]
fn stamp_attributes_a_forward_remark_to_the_way_out() {
    stamp_case(false, Way::Forward, PING);
    stamp_case(true, Way::Forward, RATE);
}

#[test]
fn stamp_attributes_a_reverse_remark_to_the_way_back() {
    stamp_case(false, Way::Reverse, RATE);
    stamp_case(true, Way::Reverse, PING);
}

#[test]
fn no_remark_no_change_through_the_same_link() {
    let Some(net) = net_or_skip() else { return };
    let server = start_server_via(
        &["ip", "netns", "exec", &net.server],
        &["--host", netns::SERVER_V4, "--port", "0"],
    );
    let port = server.addr.port().to_string();
    let run = run_client_in(
        &net.client,
        &[
            "--host",
            netns::SERVER_V4,
            "--port",
            &port,
            "--tos",
            "EF",
            "--json",
            "--rate",
            "400",
            "-D",
            "0.1",
        ],
    );
    let json = json_of(&run);
    assert_eq!(number(&json, "dscp_changed"), 0, "{json}");
    assert_eq!(
        json["dscp_seen"][EF.to_string()].as_u64(),
        Some(number(&json, "received")),
        "{json}"
    );
}
