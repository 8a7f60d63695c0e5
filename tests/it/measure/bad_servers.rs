//! Ping against deliberately bad echo servers written here (dropping,
//! duplicating, swapping, rewriting, truncating, lengthening, silent): each
//! fault lands in its own count.

use super::*;

#[test]
fn a_server_that_drops_every_second_datagram_shows_half_lost() {
    let mut count = 0;
    let (addr, _h) = fake_server_with(10_000, move |d| {
        count += 1;
        if count % 2 == 0 {
            vec![]
        } else {
            vec![d.to_vec()]
        }
    });
    let run = run_client(
        &[
            "-p",
            &port(addr),
            "-c",
            "20",
            "-i",
            "0",
            "-t",
            "0.1",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(
        run.code(),
        Some(0),
        "some replies came back intact: {}",
        run.stderr
    );
    assert_eq!(n(&json, "sent"), 20);
    assert_eq!(n(&json, "received"), 10);
    assert_eq!(n(&json, "lost"), 10);
    assert_eq!(json["loss_percent"].as_f64(), Some(50.0));
    assert_books_balance(&json);
}

#[test]
fn a_server_that_duplicates_has_its_duplicates_counted() {
    let (addr, _h) = fake_server_with(10_000, |d| vec![d.to_vec(), d.to_vec()]);
    let run = run_client(
        &["-p", &port(addr), "-c", "10", "-i", "0.02", "--json"],
        None,
    );
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(n(&json, "received"), 10);
    assert_eq!(n(&json, "duplicates"), 10);
    assert_eq!(n(&json, "lost"), 0);
}

#[test]
fn a_server_that_swaps_pairs_has_reordering_counted() {
    let mut held: Option<Vec<u8>> = None;
    let (addr, _h) = fake_server_with(1_000_000, move |d| match held.take() {
        None => {
            held = Some(d.to_vec());
            vec![]
        }
        Some(first) => vec![d.to_vec(), first],
    });
    let run = run_client(
        &[
            "-p",
            &port(addr),
            "--flood",
            "-w",
            "8",
            "-D",
            "0.5",
            "-t",
            "0.2",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let received = n(&json, "received");
    assert!(received > 100, "{json}");
    // Every pair arrives second-first: about half the replies are reordered.
    let reordered = n(&json, "reordered");
    assert!(
        reordered * 10 >= received * 4 && reordered * 10 <= received * 6,
        "{json}"
    );
    assert_books_balance(&json);
}

#[test]
fn a_server_that_flips_a_byte_is_caught_and_fails_the_run() {
    let (addr, _h) = fake_server(10_000, |d| {
        let mut r = d.to_vec();
        let last = r.len() - 1;
        r[last] ^= 0x40;
        Some(r)
    });
    let run = run_client(
        &["-p", &port(addr), "-c", "3", "-i", "0.02", "--json"],
        None,
    );
    let json = json_of(&run);
    assert_eq!(
        run.code(),
        Some(1),
        "a corrupt reply fails the run: {}",
        run.stderr
    );
    assert_eq!(n(&json, "corrupt"), 3);
    assert_eq!(n(&json, "received"), 3);
    let human = run_client(&["-p", &port(addr), "-c", "1"], None);
    assert!(
        human
            .stdout_text()
            .contains("(CORRUPT: bytes differ from the probe)"),
        "{}",
        human.stdout_text()
    );
}

#[test]
fn a_server_that_truncates_is_caught_and_fails_the_run() {
    let (addr, _h) = fake_server(10_000, |d| Some(d[..d.len() / 2].to_vec()));
    let run = run_client(
        &[
            "-p",
            &port(addr),
            "-c",
            "3",
            "-i",
            "0.02",
            "-s",
            "200",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert_eq!(n(&json, "truncated"), 3);
}

#[test]
fn a_silent_server_means_total_loss_and_exit_1() {
    let (addr, _h) = fake_server(10_000, |_| None);
    let run = run_client(
        &["-p", &port(addr), "-c", "3", "-i", "0", "-t", "0.1"],
        None,
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    let out = run.stdout_text();
    assert_eq!(
        out.lines().filter(|l| l.contains("(timeout)")).count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("3 probes sent, 0 received, 100.0% loss"),
        "{out}"
    );
}

/// Runs `-c 5` against a fake server that alters each reply with `alter` and
/// returns the JSON summary (the run must fail: every reply is corrupt).
fn ping_five_through(alter: impl FnMut(&mut Vec<u8>) + Send + 'static) -> Value {
    let mut alter = alter;
    let (addr, _h) = fake_server_with(10_000, move |d| {
        let mut r = d.to_vec();
        alter(&mut r);
        vec![r]
    });
    let run = run_client(
        &["-p", &port(addr), "-c", "5", "-i", "0.02", "--json"],
        None,
    );
    let json = json_of(&run);
    assert_eq!(run.code(), Some(1), "corrupt replies fail the run: {json}");
    assert_books_balance(&json);
    json
}

#[test]
fn a_server_that_changes_the_send_time_is_caught() {
    let json = ping_five_through(|r| r[15] ^= 0x01);
    assert_eq!(n(&json, "corrupt"), 5, "{json}");
    assert_eq!((n(&json, "received"), n(&json, "lost")), (5, 0), "{json}");
}

#[test]
fn a_server_that_rewrites_the_sequence_number_is_corrupt_not_duplicated() {
    let mut first = None;
    let json = ping_five_through(move |r| {
        let seq: [u8; 8] = r[..8].try_into().unwrap();
        r[..8].copy_from_slice(first.get_or_insert(seq));
    });
    assert_eq!(n(&json, "corrupt"), 4, "{json}");
    assert_eq!(n(&json, "duplicates"), 0, "{json}");
    assert_eq!((n(&json, "received"), n(&json, "lost")), (5, 0), "{json}");
}

#[test]
fn a_server_that_lengthens_replies_is_caught_and_nothing_is_lost() {
    let json = ping_five_through(|r| r.push(0));
    assert_eq!(n(&json, "corrupt"), 5, "{json}");
    assert_eq!((n(&json, "foreign"), n(&json, "lost")), (0, 0), "{json}");
    assert_eq!(n(&json, "received"), 5, "{json}");
}
