//! The matrix's rows: our server against each kind of peer, every number in
//! flight and every family, each loop ended within its bound.

use super::*;

#[test]
fn two_of_our_servers() {
    rows_of(PeerKind::Ours, ends_within_the_budget);
}

#[test]
fn our_server_and_a_python_echo() {
    rows_of(PeerKind::Python, ends_within_the_budget);
}

#[test]
fn our_server_and_socat() {
    if Command::new("socat").arg("-V").output().is_err() {
        skip("socat is not installed (apt-get install socat)");
        return;
    }
    rows_of(PeerKind::Socat, ends_within_the_budget);
}

#[test]
fn our_server_and_stamp_suites_reflector() {
    if crate::stamp::stamp_suite("loop matrix: stamp-suite's reflector").is_none() {
        return;
    }
    // The reflector's second round of replies carries its time twice: no
    // more than two rounds are echoed.
    rows_of(PeerKind::StampSuite, |k, row| {
        assert!(row.echoed <= 2 * k as u64, "k {k}: {}", row.stderr);
        assert!(
            row.stderr.contains("STAMP/TWAMP reply from"),
            "{}",
            row.stderr
        );
    });
}

#[test]
fn our_server_and_a_counter_echo() {
    // Not a return, ever: the budget ends it (k = 1, or datagrams alike at
    // one end), and never later than budget + k.
    rows_of(PeerKind::Counter, |k, row| {
        assert!(
            row.echoed <= TEST_NEAR_COPY_BUDGET * k as u64 + k as u64,
            "k {k}: {}",
            row.stderr
        );
    });
}

#[test]
fn our_server_and_an_appending_echo() {
    // The default budget: 1,024 grown datagrams in a row spend it.
    rows_of(PeerKind::Appending, |k, row| {
        assert!(
            row.echoed <= (GROWN_BUDGET + 3) * k as u64,
            "k {k}: {}",
            row.stderr
        );
    });
}
