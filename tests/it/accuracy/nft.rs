//! nftables as ground truth: rules on each side drop, rewrite and duplicate
//! known probes and replies, and the client's `lost`, `duplicates` and
//! `corrupt` must equal their counters.

use super::*;

/// Every how many probes / replies the rules act.
const PROBE_DROP_EVERY: u32 = 10;
const REPLY_DROP_EVERY: u32 = 25;
const REPLY_REWRITE_EVERY: u32 = 20;
const REPLY_DUP_EVERY: u32 = 15;

/// Which reply byte the rewrite rule flips a bit of (offset in the UDP
/// payload: 0..8 sequence number, 8..16 send time, 16.. pattern body).
#[derive(Debug, Clone, Copy)]
enum Rewrite {
    /// Byte 20: the pattern body.
    Body,
    /// Byte 15: the lowest byte of the echoed send time.
    SendTime,
    /// Byte 7: the lowest byte of the sequence number (points at a
    /// neighbouring probe).
    Sequence,
}

impl Rewrite {
    fn byte(self) -> u32 {
        match self {
            Rewrite::Body => 20,
            Rewrite::SendTime => 15,
            Rewrite::Sequence => 7,
        }
    }
}

/// What the rules do to the traffic.
#[derive(Debug, Clone, Copy)]
struct Impairments {
    drops: bool,
    duplicates: bool,
    rewrite: Option<Rewrite>,
}

const ALL: Impairments = Impairments {
    drops: true,
    duplicates: true,
    rewrite: Some(Rewrite::Body),
};

/// The server host's rules: count every probe arriving on the link, drop
/// every 10th (`numgen inc` starts at 0: the 1st, 11th, 21st, …).
fn server_rules(net: &TestNet, family: Family, port: u16, imp: Impairments) -> String {
    let (table, dev) = (family.table(), &net.server_dev);
    let drop = if imp.drops {
        format!("numgen inc mod {PROBE_DROP_EVERY} == 0 counter name \"probes_dropped\" drop")
    } else {
        String::new()
    };
    format!(
        "table {table} udpecho_accuracy {{
            counter probes {{}}
            counter probes_dropped {{}}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                iifname \"{dev}\" udp dport {port} counter name \"probes\" {drop}
            }}
        }}"
    )
}

/// The client host's rules, in this order, on replies arriving on the link:
/// count; drop every 25th; in every 20th of the rest flip bit 0 of one byte
/// (`@th` is the UDP header, so payload byte `b` is at bit `(8 + b) * 8`)
/// and mark it; duplicate every 15th of the unmarked rest with `dup to` the
/// client's own address (the copy is routed to the local host and arrives a
/// moment later through `lo`, where these `iifname` rules do not see it
/// again). Duplicating only unrewritten replies keeps each counter's meaning
/// single: a copy of a corrupt reply would be both.
///
/// The bit flip leaves the UDP checksum as it was: on veth the checksum is
/// still `CHECKSUM_PARTIAL` (offloaded, never computed), so the kernel
/// delivers the rewritten datagram; the tests check `InCsumErrors` stays 0.
fn client_rules(net: &TestNet, family: Family, port: u16, imp: Impairments) -> String {
    let (table, dev) = (family.table(), &net.client_dev);
    let reply = format!("iifname \"{dev}\" udp sport {port}");
    let mut rules = format!("{reply} counter name \"replies\"\n");
    if imp.drops {
        let _ = writeln!(
            rules,
            "{reply} numgen inc mod {REPLY_DROP_EVERY} == 0 counter name \"replies_dropped\" drop"
        );
    }
    if let Some(rewrite) = imp.rewrite {
        let bit = (8 + rewrite.byte()) * 8;
        let _ = writeln!(
            rules,
            "{reply} numgen inc mod {REPLY_REWRITE_EVERY} == 0 counter name \"replies_rewritten\" \
             @th,{bit},8 set @th,{bit},8 ^ 0x01 meta mark set 0x1"
        );
    }
    if imp.duplicates {
        let _ = writeln!(
            rules,
            "{reply} meta mark != 0x1 numgen inc mod {REPLY_DUP_EVERY} == 0 \
             counter name \"replies_duplicated\" dup to {}",
            family.client()
        );
    }
    format!(
        "table {table} udpecho_accuracy {{
            counter replies {{}}
            counter replies_dropped {{}}
            counter replies_rewritten {{}}
            counter replies_duplicated {{}}
            chain prerouting {{
                type filter hook prerouting priority filter; policy accept;
                {rules}
            }}
        }}"
    )
}

/// Runs one client measurement (`mode` arguments) from the client host to a
/// server on the other, through the rules of `imp`, and compares the books.
fn nft_run(family: Family, mode: &[&str], imp: Impairments) {
    let Some(net) = net_or_skip(true) else { return };
    let server = start_server_via(
        &["ip", "netns", "exec", &net.server],
        &["--host", family.server(), "--port", "0"],
    );
    let port = server.addr.port();
    let (server_rules, client_rules) = (
        server_rules(&net, family, port, imp),
        client_rules(&net, family, port, imp),
    );
    net.nft(&net.server, &server_rules);
    net.nft(&net.client, &client_rules);
    let v6 = family.is_v6();
    let (client_udp0, server_udp0) = (
        net.udp_counters(&net.client, v6),
        net.udp_counters(&net.server, v6),
    );

    let port_arg = port.to_string();
    let args = [
        &["-H", family.server(), "-p", &port_arg, "--json", "-q"][..],
        mode,
    ]
    .concat();
    let run = run_client_in(&net.client, &args);
    let json = json_of(&run);

    let at_server = net.counters(&net.server);
    let at_client = net.counters(&net.client);
    let delta = |after: HashMap<String, u64>, before: &HashMap<String, u64>| {
        after
            .into_iter()
            .map(|(k, v)| {
                let was = before.get(&k).copied().unwrap_or(0);
                (k, v - was)
            })
            .filter(|(_, v)| *v != 0)
            .collect::<HashMap<_, _>>()
    };
    let client_udp = delta(net.udp_counters(&net.client, v6), &client_udp0);
    let server_udp = delta(net.udp_counters(&net.server, v6), &server_udp0);
    let nft = |map: &HashMap<String, u64>, name: &str| {
        *map.get(name)
            .unwrap_or_else(|| panic!("no nft counter {name:?} in {map:?}"))
    };
    let udp = |map: &HashMap<String, u64>, name: &str| map.get(name).copied().unwrap_or(0);
    let context = format!(
        "client {args:?}: exit {:?}\nclient JSON: {json}\n\
         nft counters, server host: {at_server:?}\nnft counters, client host: {at_client:?}\n\
         kernel UDP counters (deltas), client host: {client_udp:?}\n\
         kernel UDP counters (deltas), server host: {server_udp:?}\n\
         client stderr:\n{}\nserver rules:\n{server_rules}\nclient rules:\n{client_rules}",
        run.code(),
        run.stderr
    );

    let probes = nft(&at_server, "probes");
    let probes_dropped = nft(&at_server, "probes_dropped");
    let replies = nft(&at_client, "replies");
    let replies_dropped = nft(&at_client, "replies_dropped");
    let rewritten = nft(&at_client, "replies_rewritten");
    let duplicated = nft(&at_client, "replies_duplicated");

    // The harness first: if it lost datagrams of its own, the client cannot
    // be judged.
    for (host, counters) in [("client", &client_udp), ("server", &server_udp)] {
        for name in ["InErrors", "RcvbufErrors", "InCsumErrors", "NoPorts"] {
            assert_eq!(
                udp(counters, name),
                0,
                "harness: the {host} host's kernel counted UDP {name}: \
                 datagrams were lost outside the rules\n{context}"
            );
        }
    }
    assert!(
        probes > 0,
        "harness: no probe reached the server\n{context}"
    );
    assert_eq!(
        replies,
        probes - probes_dropped,
        "harness: the server did not answer every probe that reached it\n{context}"
    );
    assert!(
        !imp.drops || (probes_dropped > 0 && replies_dropped > 0),
        "harness: too few probes for the drop rules to act\n{context}"
    );
    assert!(
        imp.rewrite.is_none() || rewritten > 0,
        "harness: too few replies for the rewrite rule to act\n{context}"
    );
    assert!(
        !imp.duplicates || duplicated > 0,
        "harness: too few replies for the dup rule to act\n{context}"
    );

    let lost = probes_dropped + replies_dropped;
    assert_books(
        &format!("{family:?} {mode:?} {imp:?}"),
        &[
            ("sent", count(&json, "sent"), probes),
            ("received", count(&json, "received"), probes - lost),
            ("lost", count(&json, "lost"), lost),
            ("late", count(&json, "late"), 0),
            ("duplicates", count(&json, "duplicates"), duplicated),
            ("corrupt", count(&json, "corrupt"), rewritten),
            ("truncated", count(&json, "truncated"), 0),
            ("foreign", count(&json, "foreign"), 0),
            ("in_flight", count(&json, "in_flight"), 0),
        ],
        &context,
    );
    // SPEC §4: exit 1 when any reply is corrupt, 0 otherwise.
    let expected_code = if rewritten > 0 { 1 } else { 0 };
    assert_eq!(run.code(), Some(expected_code), "exit code\n{context}");
    drop(server);
}

/// Ping mode: 200 probes 5 ms apart.
const PING: &[&str] = &["-c", "200", "-i", "0.005", "-t", "1"];
/// Rate mode: 2000 probes/s for 1 s.
const RATE: &[&str] = &["-r", "2000", "-D", "1", "-t", "1"];
/// Flood mode: 64 in flight for 1 s; a lost probe holds its slot for the
/// 0.5 s timeout.
const FLOOD: &[&str] = &["--flood", "-w", "64", "-D", "1", "-t", "0.5"];

#[test]
fn ping_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, PING, ALL);
}

#[test]
fn ping_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, PING, ALL);
}

#[test]
fn rate_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, RATE, ALL);
}

#[test]
fn rate_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, RATE, ALL);
}

#[test]
fn flood_v4_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V4, FLOOD, ALL);
}

#[test]
fn flood_v6_lost_duplicates_and_corrupt_equal_the_nft_counters() {
    nft_run(Family::V6, FLOOD, ALL);
}

/// Issue 11 §2: the echoed send time (bytes 8–15) is part of the reply and
/// must be checked like the rest.
#[test]
fn ping_v4_a_flipped_bit_in_the_echoed_send_time_is_counted_corrupt() {
    let imp = Impairments {
        drops: false,
        duplicates: false,
        rewrite: Some(Rewrite::SendTime),
    };
    nft_run(Family::V4, &["-c", "100", "-i", "0.005", "-t", "1"], imp);
}

/// Issue 11 §2: a reply whose sequence number was changed to a neighbour's
/// is corrupt — not a duplicate, not foreign, and its probe was answered.
#[test]
fn ping_v6_a_flipped_bit_in_the_sequence_number_is_corrupt_not_a_duplicate() {
    let imp = Impairments {
        drops: false,
        duplicates: false,
        rewrite: Some(Rewrite::Sequence),
    };
    nft_run(Family::V6, &["-c", "100", "-i", "0.005", "-t", "1"], imp);
}

/// Flood with a flipped send-time bit, and drops and duplicates around it.
#[test]
fn flood_v4_a_flipped_bit_in_the_echoed_send_time_is_counted_corrupt() {
    let imp = Impairments {
        rewrite: Some(Rewrite::SendTime),
        ..ALL
    };
    nft_run(Family::V4, FLOOD, imp);
}
