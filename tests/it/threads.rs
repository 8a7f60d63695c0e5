//! The server's threads as the system shows them (`/proc/PID/task`): each
//! named, so that `top -H`, `ps -L` and `perf` tell the echo loops from the
//! rest.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

/// The names of the threads of `pid`.
fn threads_of(pid: u32) -> BTreeSet<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeSet::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn every_thread_of_a_running_server_has_a_name_that_says_what_it_does() {
    if !std::path::Path::new("/proc/self/task").is_dir() {
        skip("no /proc/PID/task here: cannot see the server's threads");
        return;
    }
    let server = start_server(&["--port", "0", "--threads", "2", "--stats-interval", "1"]);
    // The main thread keeps the binary's name; the port watch runs where
    // `/proc/net/udp` was readable at start, as it is wherever `/proc` is.
    let expected: BTreeSet<String> = ["udp-echo-server", "echo-0", "echo-1", "stats", "port-watch"]
        .map(String::from)
        .into();
    // The threads start as `listening on` is printed: wait for them all.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut threads = threads_of(server.pid());
    while threads != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        threads = threads_of(server.pid());
    }
    assert_eq!(threads, expected);
    let client = udp_client();
    assert_eq!(
        echo(&client, server.addr, b"still echoing"),
        b"still echoing"
    );
}
