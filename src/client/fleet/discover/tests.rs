use super::wire::{self, Record, TYPE_A, TYPE_SRV, WireError};
use super::*;

/// An answer to `query` (as `wire::query` wrote it, OPT dropped) with
/// `records` (owner: a pointer to the question's name), flags `flags`.
fn answer_to(query: &[u8], flags: u16, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
    // The question ends 11 bytes before the end (the OPT record).
    let question = &query[12..query.len() - 11];
    let mut msg = query[..2].to_vec();
    msg.extend_from_slice(&(0x8180 | flags).to_be_bytes());
    msg.extend_from_slice(&[0, 1]);
    msg.extend_from_slice(&(records.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(question);
    for (rtype, rdata) in records {
        msg.extend_from_slice(&[0xC0, 12]);
        msg.extend_from_slice(&rtype.to_be_bytes());
        msg.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        msg.extend_from_slice(rdata);
    }
    msg
}

fn srv_rdata(priority: u16, port: u16, host: &str) -> Vec<u8> {
    let mut out = priority.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 10]);
    out.extend_from_slice(&port.to_be_bytes());
    for label in host.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

const NAME: &str = "_echo._udp.fleet.test";

fn srv_answer(n: usize) -> (Vec<u8>, u16) {
    let query = wire::query(0x1234, NAME, TYPE_SRV).unwrap();
    let records: Vec<_> = (0..n)
        .map(|i| {
            (
                TYPE_SRV,
                srv_rdata(0, 7000 + i as u16, &format!("h{i}.fleet.test.")),
            )
        })
        .collect();
    (answer_to(&query, 0, &records), 0x1234)
}

#[test]
fn a_query_carries_the_name_the_type_and_edns() {
    let q = wire::query(0xBEEF, "a.b", TYPE_A).unwrap();
    assert_eq!(&q[..2], &[0xBE, 0xEF]);
    assert_eq!(&q[12..17], &[1, b'a', 1, b'b', 0]);
    assert_eq!(&q[17..21], &[0, 1, 0, 1]);
    // OPT: root, type 41, class 4096.
    assert_eq!(&q[21..26], &[0, 0, 41, 0x10, 0]);
    assert_eq!(q.len(), 21 + 11);
    assert!(wire::query(1, "a..b", TYPE_A).is_err());
    assert!(wire::query(1, &"x".repeat(64), TYPE_A).is_err());
    assert!(wire::query(1, "a b", TYPE_A).is_err());
    assert!(wire::query(1, ".", TYPE_A).is_err());
}

#[test]
fn srv_answers_are_read_with_their_hosts_and_ports() {
    let (msg, id) = srv_answer(3);
    let records = wire::answer(&msg, id, NAME, TYPE_SRV).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[1],
        Record::Srv {
            priority: 0,
            host: "h1.fleet.test".into(),
            port: 7001
        }
    );
    // The question echoed in another case is still ours (0x20 randomisation).
    assert!(wire::answer(&msg, id, &NAME.to_uppercase(), TYPE_SRV).is_ok());
}

#[test]
fn answers_to_other_questions_are_not_ours() {
    let (msg, id) = srv_answer(1);
    assert_eq!(
        wire::answer(&msg, id ^ 1, NAME, TYPE_SRV),
        Err(WireError::NotOurs)
    );
    assert_eq!(
        wire::answer(&msg, id, "_x._udp.fleet.test", TYPE_SRV),
        Err(WireError::NotOurs)
    );
    assert_eq!(
        wire::answer(&msg, id, NAME, TYPE_A),
        Err(WireError::NotOurs)
    );
    let mut query_back = msg.clone();
    query_back[2] &= 0x7F; // QR clear: a query, not an answer
    assert_eq!(
        wire::answer(&query_back, id, NAME, TYPE_SRV),
        Err(WireError::NotOurs)
    );
}

#[test]
fn truncation_and_error_codes_are_told_apart() {
    let query = wire::query(7, NAME, TYPE_SRV).unwrap();
    let tc = answer_to(&query, 0x0200, &[]);
    assert_eq!(
        wire::answer(&tc, 7, NAME, TYPE_SRV),
        Err(WireError::Truncated)
    );
    let nx = answer_to(&query, 3, &[]);
    assert_eq!(
        wire::answer(&nx, 7, NAME, TYPE_SRV),
        Err(WireError::NoSuchName)
    );
    let servfail = answer_to(&query, 2, &[]);
    assert_eq!(
        wire::answer(&servfail, 7, NAME, TYPE_SRV),
        Err(WireError::Rcode(2))
    );
}

#[test]
fn a_srv_target_of_dot_or_port_0_is_no_service() {
    let query = wire::query(7, NAME, TYPE_SRV).unwrap();
    let msg = answer_to(
        &query,
        0,
        &[
            (TYPE_SRV, srv_rdata(0, 7, ".")),
            (TYPE_SRV, srv_rdata(0, 0, "h.test.")),
        ],
    );
    assert_eq!(wire::answer(&msg, 7, NAME, TYPE_SRV), Ok(vec![]));
}

#[test]
fn compression_pointers_must_go_back_and_cannot_loop() {
    let query = wire::query(7, NAME, TYPE_SRV).unwrap();
    // An SRV target that points at the question's name: fine.
    let mut rdata = srv_rdata(0, 7, ".");
    rdata.pop();
    rdata.extend_from_slice(&[0xC0, 12]);
    let msg = answer_to(&query, 0, &[(TYPE_SRV, rdata)]);
    let records = wire::answer(&msg, 7, NAME, TYPE_SRV).unwrap();
    assert!(matches!(&records[0], Record::Srv { host, .. } if host == NAME));
    // A pointer to itself, one forward, and a label then a pointer back to
    // that label (a loop made of backward jumps alone).
    for (tail, back_to_start) in [
        (vec![0xC0u8, 0], true),
        (vec![0xC0, 0xFF], false),
        (vec![1, b'a', 0xC0, 0], true),
    ] {
        let mut rdata = srv_rdata(0, 7, ".");
        rdata.pop();
        rdata.extend_from_slice(&tail);
        let mut bad = answer_to(&query, 0, &[(TYPE_SRV, rdata)]);
        let (name_at, n) = (bad.len() - tail.len(), bad.len());
        if back_to_start {
            // The last pointer goes to the name's own first byte.
            bad[n - 2] = 0xC0 | (name_at >> 8) as u8;
            bad[n - 1] = name_at as u8;
        }
        assert!(
            matches!(
                wire::answer(&bad, 7, NAME, TYPE_SRV),
                Err(WireError::Malformed(_))
            ),
            "{tail:?}"
        );
    }
}

#[test]
fn every_truncation_of_a_valid_answer_is_refused_without_panic() {
    let (msg, id) = srv_answer(5);
    for len in 0..msg.len() {
        assert!(
            wire::answer(&msg[..len], id, NAME, TYPE_SRV).is_err(),
            "{len}"
        );
    }
}

/// Every byte of valid answers flipped in many ways, and random bytes: the
/// parser answers something and never panics or hangs.
#[test]
fn mutated_and_random_answers_never_panic() {
    let (msg, id) = srv_answer(4);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..msg.len() {
        for value in [0u8, 0xFF, 0xC0, 0x3F, 0x40, msg[i] ^ 1] {
            let mut bad = msg.clone();
            bad[i] = value;
            let _ = wire::answer(&bad, id, NAME, TYPE_SRV);
        }
    }
    for _ in 0..20_000 {
        let mut bad = msg.clone();
        for _ in 0..1 + next() % 4 {
            let at = next() as usize % bad.len();
            bad[at] = next() as u8;
        }
        let _ = wire::answer(&bad, id, NAME, TYPE_SRV);
        let len = next() as usize % 600;
        let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = wire::answer(&random, id, NAME, TYPE_SRV);
    }
}

#[test]
fn resolv_conf_gives_servers_search_and_options() {
    let conf = ResolvConf::parse(
        "# comment\nnameserver 192.0.2.53\nnameserver ::1 ; x\nnameserver fe80::1%eth0\n\
         nameserver 192.0.2.54\nnameserver 192.0.2.55\nsearch svc.cluster.local cluster.local\n\
         options ndots:5 timeout:1 attempts:3 rotate\n",
    );
    assert_eq!(
        conf.nameservers,
        vec![
            "192.0.2.53".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap(),
            "192.0.2.54".parse().unwrap()
        ]
    );
    assert_eq!(conf.ndots, 5);
    assert_eq!(conf.timeout, Duration::from_secs(1));
    assert_eq!(conf.attempts, 3);
    assert_eq!(
        conf.candidates("_echo._udp.udp-echo"),
        vec![
            "_echo._udp.udp-echo.svc.cluster.local",
            "_echo._udp.udp-echo.cluster.local",
            "_echo._udp.udp-echo"
        ]
    );
    assert_eq!(conf.candidates("a.b.c.d.e.f."), vec!["a.b.c.d.e.f"]);
    let empty = ResolvConf::parse("");
    assert_eq!(empty.nameservers, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert_eq!((empty.timeout, empty.attempts), (Duration::from_secs(5), 2));
    assert_eq!(empty.candidates("x.y"), vec!["x.y"]);
}

#[test]
fn a_lists_every_address_sorted() {
    let groups = a("127.0.0.1", 7).unwrap();
    assert_eq!(groups[0].targets, vec!["127.0.0.1:7"]);
    let groups = a("::1", 7).unwrap();
    assert_eq!(groups[0].targets, vec!["[::1]:7"]);
}
