//! Reloads of the `file_sd` file that add, keep and remove targets; bad files
//! at start and on reload.

use super::*;

#[test]
fn a_reload_adds_keeps_and_removes_targets() {
    let (kept, removed, added) = (
        start_server(&["--port", "0"]),
        start_server(&["--port", "0"]),
        start_server(&["--port", "0"]),
    );
    let (k, r, a) = (
        kept.addr.to_string(),
        removed.addr.to_string(),
        added.addr.to_string(),
    );
    let dir = Dir::new("reload");
    let group =
        |t: &str, site: &str| format!(r#"{{"targets": ["{t}"], "labels": {{"site": "{site}"}}}}"#);
    let file = dir.write(
        "targets.json",
        &format!("[{}, {}]", group(&k, "k"), group(&r, "r")),
    );
    let fleet = Fleet::start(&file, &["-i", "0.05"]);
    let sent = |b: &str, t: &str, site: &str| {
        value(b, "probes_sent_total", t, &format!(",site=\"{site}\""))
    };
    let body = fleet.scrape_until(|b| sent(b, &k, "k").is_some_and(|n| n >= 10.0));
    let mut last = sent(&body, &k, "k").expect("the kept target");
    assert!(sent(&body, &r, "r").is_some(), "{body}");
    dir.write(
        "targets.json",
        &format!("[{}, {}]", group(&k, "k"), group(&a, "a")),
    );
    // The change is seen within a second or two; meanwhile, and after, the
    // kept target's counter only grows.
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let body = fleet.scrape();
        let now = sent(&body, &k, "k").unwrap_or_else(|| panic!("kept target gone:\n{body}"));
        assert!(
            now >= last,
            "the kept target's counter went from {last} to {now}"
        );
        last = now;
        if sent(&body, &a, "a").is_some_and(|n| n >= 2.0) || Instant::now() >= deadline {
            break body;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        sent(&body, &a, "a").is_some_and(|n| n >= 2.0),
        "added target:\n{body}"
    );
    assert!(
        !body.contains(&r),
        "the removed target's series remain:\n{body}"
    );
    assert!(last >= 10.0);
    // SIGHUP reloads too, and changes nothing here.
    let pid = libc::pid_t::try_from(fleet.child.id()).unwrap();
    // SAFETY: kill(2) has no memory effects; the pid is our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let body = fleet.scrape_until(|b| sent(b, &k, "k").is_some_and(|n| n >= last + 20.0));
    assert!(
        sent(&body, &k, "k").is_some_and(|n| n >= last + 20.0),
        "stopped after SIGHUP:\n{body}\n{}",
        fleet.stderr()
    );
    assert_eq!(
        sample(&body, "udp_echo_client_fleet_reload_errors_total"),
        Some(0.0)
    );
}

#[test]
fn a_bad_file_at_start_exits_2_naming_the_line() {
    let dir = Dir::new("bad-start");
    let file = dir.write("targets.json", "[\n  {\"targets\": [\"127.0.0.1:0\"]}\n]\n");
    let path = file.to_str().unwrap();
    let run = run_client_within(&["--targets", path, "--metrics", "127.0.0.1:0"], WAIT);
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("line 2, column"), "{}", run.stderr);
    assert!(lines[0].contains("127.0.0.1:0"), "{}", run.stderr);
    let yaml = dir.write(
        "targets.yml",
        "- targets: [a:7]\n  labels:\n    bad-name: x\n",
    );
    let run = run_client_within(
        &[
            "--targets",
            yaml.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
        WAIT,
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("line 3, column"), "{}", run.stderr);
    // 100,000 targets: refused as parsed, with the bound named.
    let targets: Vec<String> = (0..100_000)
        .map(|i| format!("\"10.{}.{}.{}:7\"", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let big = dir.write(
        "big.json",
        &format!("[{{\"targets\": [{}]}}]", targets.join(",")),
    );
    let run = run_client_within(
        &[
            "--targets",
            big.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
        WAIT,
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("more than 20000 targets"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_file_on_reload_keeps_the_previous_targets_running() {
    let echo = start_server(&["--port", "0"]);
    let e = echo.addr.to_string();
    let dir = Dir::new("bad-reload");
    let file = dir.write("targets.json", &format!("[{{\"targets\": [\"{e}\"]}}]"));
    let fleet = Fleet::start(&file, &["-i", "0.05"]);
    let sent = |b: &str| value(b, "probes_sent_total", &e, "");
    let body = fleet.scrape_until(|b| sent(b).is_some_and(|n| n >= 5.0));
    let before = sent(&body).unwrap();
    dir.write(
        "targets.json",
        &format!("[{{\"targets\": [\"{e}\"],\n \"labels\": {{\"x\": 1}}}}]"),
    );
    let body =
        fleet.scrape_until(|b| sample(b, "udp_echo_client_fleet_reload_errors_total") == Some(1.0));
    assert_eq!(
        sample(&body, "udp_echo_client_fleet_reload_errors_total"),
        Some(1.0),
        "{body}"
    );
    let body = fleet.scrape_until(|b| sent(b).is_some_and(|n| n >= before + 20.0));
    assert!(sent(&body).is_some_and(|n| n >= before + 20.0), "{body}");
    let stderr = fleet.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("line 2, column") && l.contains("previous targets keep running")),
        "{stderr}"
    );
}
