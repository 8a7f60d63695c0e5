//! `--interface NAME` (SO_BINDTODEVICE) on both binaries, in a pair of network
//! namespaces the test creates (root and ip(8) needed; skipped visibly
//! otherwise): each host has two interfaces, `lo` and its end of the veth
//! link, so binding to one or the other decides what is received and where
//! sends go. Unknown interfaces fail with a one-line error, on any host.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::netns;

use common::*;
use netns::test_net;

#[test]
fn a_server_bound_to_an_interface_answers_only_what_arrives_on_it() {
    let Some(net) = test_net("interface binding") else {
        return;
    };
    let wrapper = ["ip", "netns", "exec", net.server.as_str()];
    let client = |port: &str, interface: &str| {
        run_client_in(
            &net.client,
            &[
                "-H",
                netns::SERVER_V4,
                "-p",
                port,
                "-t",
                "0.5",
                "--interface",
                interface,
            ],
        )
    };
    // Bound to the link: answers the other host.
    let on_link = start_server_via(
        &wrapper,
        &["-H", "0.0.0.0", "-p", "0", "--interface", &net.server_dev],
    );
    let port = on_link.addr.port().to_string();
    let run = client(&port, &net.client_dev);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout_text(), "data\n");
    // The client bound to its lo cannot reach the other host at all.
    let run = client(&port, "lo");
    assert_ne!(run.code(), Some(0), "{}", run.stdout_text());
    drop(on_link);
    // Bound to lo: the datagram from the link reaches the host but not the server.
    let on_lo = start_server_via(&wrapper, &["-H", "0.0.0.0", "-p", "0", "--interface", "lo"]);
    let port = on_lo.addr.port().to_string();
    let run = client(&port, &net.client_dev);
    assert_eq!(run.code(), Some(1), "no reply expected: {}", run.stderr);
}

#[test]
fn an_unknown_interface_is_named_in_one_line_by_both_binaries() {
    let name = "nosuchif0";
    let server = try_start_server(&["-H", "127.0.0.1", "-p", "0", "--interface", name]);
    let failure = match server {
        Ok(_) => panic!("the server started on interface {name}"),
        Err(failure) => failure,
    };
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    assert!(
        failure
            .stderr
            .contains("no interface nosuchif0 on this host; see `ip link`"),
        "{}",
        failure.stderr
    );
    let run = run_client(&["-H", "127.0.0.1", "-p", "9", "--interface", name], None);
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no interface nosuchif0 on this host; see `ip link`"),
        "{}",
        run.stderr
    );
}
