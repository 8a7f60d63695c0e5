//! The test suite's own rules: a test that cannot run here says so and passes
//! for a person, but fails the run under `UDP_ECHO_TESTS_NO_SKIP=1`, which
//! `.ci/run` sets, so a missing install step cannot hide in CI.

use crate::common;

use std::process::{Command, Stdio};

use common::{NO_SKIP, run_client, skip, start_server};

/// Runs only when asked (`--ignored`): a test that always skips, for
/// [`a_skip_passes_for_a_person_and_fails_under_the_ci_variable`] to run in a
/// child process with and without the variable.
#[test]
#[ignore = "run by a_skip_passes_for_a_person_and_fails_under_the_ci_variable"]
fn always_skips() {
    skip("always_skips: nothing to run here");
}

/// This test binary again, running only [`always_skips`], with `NO_SKIP` set
/// to `value` (or removed).
fn run_always_skips(value: Option<&str>) -> std::process::Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "hermetic::always_skips",
            "--ignored",
            "--nocapture",
        ])
        .stdin(Stdio::null());
    match value {
        Some(v) => command.env(NO_SKIP, v),
        None => command.env_remove(NO_SKIP),
    };
    command.output().unwrap()
}

#[test]
fn a_skip_passes_for_a_person_and_fails_under_the_ci_variable() {
    for value in [None, Some(""), Some("0")] {
        let out = run_always_skips(value);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{NO_SKIP}={value:?}: {stderr}");
        assert!(
            stderr.contains("SKIPPED: always_skips: nothing to run here"),
            "{NO_SKIP}={value:?}: {stderr}"
        );
    }
    let out = run_always_skips(Some("1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a skip passed under {NO_SKIP}=1");
    assert!(
        stderr.contains(&format!(
            "would skip, and {NO_SKIP} is set: always_skips: nothing to run here"
        )),
        "{stderr}"
    );
}

#[test]
fn ci_fails_on_any_skip() {
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| l.trim() == format!("export {NO_SKIP}=1")),
        ".ci/run does not export {NO_SKIP}=1"
    );
}

/// Every test that cannot run goes through `common::skip`: no test file
/// prints its own `SKIPPED` (which the CI variable would not catch).
#[test]
fn every_skip_goes_through_common_skip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it");
    let mut offenders = Vec::new();
    for path in files_under(std::path::Path::new(dir)) {
        if path.extension().is_none_or(|e| e != "rs")
            || path.ends_with("common/mod.rs")
            || path.ends_with("hermetic.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("SKIPPED") || code.contains("SKIP:") {
                offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Every file under `dir`, in its folders too (a split test file's
/// modules sit in a folder of its name).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs only when asked (`--ignored`): one echo, judged as every test judges
/// it, for [`the_callers_environment_does_not_reach_the_binaries`] to run
/// under a polluted environment.
#[test]
#[ignore = "run by the_callers_environment_does_not_reach_the_binaries"]
fn one_echo_as_the_tests_see_it() {
    let server = start_server(&["--port", "0"]);
    let port = server.addr.port().to_string();
    let run = run_client(&["-p", &port, "--data", "hermetic"], None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"hermetic\n");
    // `sent …` and `recv …`: nothing from RUST_LOG.
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
}

/// What the shell or service manager running `cargo test` has set does not
/// reach the binaries the tests start: a trace log level, a service
/// manager's notify socket (the server would report READY=1 to it). Run in
/// a child test process with those variables set.
#[test]
#[cfg(target_os = "linux")]
fn the_callers_environment_does_not_reach_the_binaries() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let name = format!("udp-echo-hermetic-{}", std::process::id());
    let manager = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap())
        .expect("bind an abstract notify socket");
    manager.set_nonblocking(true).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hermetic::one_echo_as_the_tests_see_it",
            "--ignored",
        ])
        .env("RUST_LOG", "trace")
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut buf = [0u8; 512];
    if let Ok(n) = manager.recv(&mut buf) {
        panic!(
            "the server told the caller's service manager: {}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A name that matches nothing runs no test and passes as well.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

/// All integration tests are one binary, `tests/it/main.rs` (one link per
/// change, not one per file): no other test target beside it in `tests/`.
#[test]
fn the_integration_tests_are_one_binary() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let target = if path.is_dir() {
            path.join("main.rs")
        } else {
            path.clone()
        };
        if target.extension().is_some_and(|e| e == "rs")
            && target.is_file()
            && !path.ends_with("it")
        {
            others.push(target.display().to_string());
        }
    }
    assert!(
        others.is_empty(),
        "test targets beside tests/it: {others:?}"
    );
}

/// Every file in `tests/it/` is a module of `main.rs`: a file without its
/// `mod` line would compile nowhere and its tests would silently not run.
#[test]
fn every_test_file_is_a_module_of_main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it");
    let main = std::fs::read_to_string(format!("{dir}/main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module && name != "main" && !main.lines().any(|l| l.trim() == format!("mod {name};"))
        {
            missing.push(name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "not declared in tests/it/main.rs: {missing:?}"
    );
}

/// Every file in a folder of `tests/it/` (`X/Y.rs`) is a module of its
/// parent (`X.rs` or `X/mod.rs`), for the same reason.
#[test]
fn every_file_in_a_folder_is_a_module_of_its_parent() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it"));
    let mut missing = Vec::new();
    for path in files_under(dir) {
        let folder = path.parent().unwrap();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if folder == dir || path.extension().is_none_or(|e| e != "rs") || name == "mod" {
            continue;
        }
        let parent = std::fs::read_to_string(folder.join("mod.rs"))
            .or_else(|_| std::fs::read_to_string(folder.with_extension("rs")))
            .unwrap_or_default();
        if !parent
            .lines()
            .any(|l| l.trim().ends_with(&format!("mod {name};")))
        {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "not declared in their parent: {missing:?}"
    );
}
