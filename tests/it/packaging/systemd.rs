//! The systemd units: `systemd-analyze verify` clean (beside a noisy
//! third-party unit too) and the socket-activated service's security score.

use super::*;

/// The units of `contrib/`, copied to a temp dir with ExecStart pointing at
/// the binary just built (verify checks that the path exists; the .deb puts
/// it at /usr/bin, where .ci/run verifies the installed units again).
fn units_for_verify() -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("udp-echo-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let contrib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(contrib).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.ends_with(".service") || name.ends_with(".socket")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("/usr/bin/udp-echo-server") || name.ends_with(".socket"),
            "{name}"
        );
        std::fs::write(
            dir.join(&name),
            text.replace("/usr/bin/udp-echo-server", SERVER),
        )
        .unwrap();
        units.push(name);
    }
    units.sort();
    (dir, units)
}

/// A unit another package installed, with a warning of its own: `verify`
/// loads the units ours pull in (sockets.target, multi-user.target, …) and
/// reports on everything wanted by them, so this one is reported too when
/// verify is asked to look beyond our files. The tests put it on the unit
/// path (`SYSTEMD_UNIT_PATH` ending in `:` keeps the built-in path after it)
/// so every host looks like a noisy one, and nothing is written to /etc.
fn noisy_unit_path(dir: &std::path::Path) -> String {
    let noisy = dir.join("noisy-units");
    for target in ["sockets.target.wants", "multi-user.target.wants"] {
        std::fs::create_dir_all(noisy.join(target)).unwrap();
        let link = noisy.join(target).join("third-party-noisy.service");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("../third-party-noisy.service", link).unwrap();
    }
    std::fs::write(
        noisy.join("third-party-noisy.service"),
        "[Service]\nUser=nobody\nExecStart=/bin/true\n",
    )
    .unwrap();
    format!("{}:", noisy.display())
}

/// `systemd-analyze verify` of `units` (files in `dir`) on the noisy unit
/// path, judged on our units only: `--recursive-errors=no` (systemd 250+)
/// neither loads nor fails on anything but the files named, and of what is
/// printed only lines naming one of our files count (older systemd prints
/// every loaded unit's warnings). Returns the problems found, if any.
fn verify_problems(dir: &std::path::Path, units: &[String], recursive: &str) -> Vec<String> {
    let unit_path = noisy_unit_path(dir);
    let paths: Vec<String> = units.iter().map(|u| format!("./{u}")).collect();
    let verify = |extra: &[&str]| {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .args(extra)
            .args(&paths)
            .current_dir(dir)
            .env("SYSTEMD_UNIT_PATH", &unit_path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mode = format!("--recursive-errors={recursive}");
    let mut output = verify(&[&mode]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let old_systemd = !output.status.success() && stderr.contains("recursive-errors");
    if old_systemd {
        output = verify(&[]);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut problems: Vec<String> = stderr
        .lines()
        .filter(|l| recursive != "no" || units.iter().any(|u| l.contains(u.as_str())))
        .map(str::to_owned)
        .collect();
    if !output.status.success() && !old_systemd && problems.is_empty() {
        problems.push(format!("exit {:?}:\n{stderr}", output.status));
    }
    problems
}

#[test]
fn the_systemd_units_verify_clean_even_beside_a_noisy_third_party_unit() {
    if !has("systemd-analyze") {
        return skip(
            "systemd-analyze is not installed (package systemd): the units were not verified",
        );
    }
    let (dir, units) = units_for_verify();
    assert!(units.contains(&"udp-echo.socket".to_owned()), "{units:?}");
    // The noise is there for verify to see (else this test proves nothing)…
    let everything = verify_problems(&dir, &units, "yes");
    assert!(
        everything
            .iter()
            .any(|l| l.contains("third-party-noisy.service")),
        "the third-party unit was not loaded: {everything:?}"
    );
    // …and our units are judged without it.
    let ours = verify_problems(&dir, &units, "no");
    assert!(ours.is_empty(), "systemd-analyze verify: {ours:#?}");
    // The judge still sees a fault in one of ours.
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let service = std::fs::read_to_string(dir.join("udp-echo.service")).unwrap();
    std::fs::write(
        broken.join("udp-echo.service"),
        service.replace("DevicePolicy=closed", "DevicePolicy=closedx"),
    )
    .unwrap();
    std::fs::copy(dir.join("udp-echo.socket"), broken.join("udp-echo.socket")).unwrap();
    let names = ["udp-echo.service".to_owned(), "udp-echo.socket".to_owned()];
    let faults = verify_problems(&broken, &names, "no");
    assert!(
        faults.iter().any(|l| l.contains("closedx")),
        "a bad DevicePolicy= went unreported: {faults:?}"
    );
}

#[test]
fn the_socket_activated_service_scores_ok_in_systemd_analyze_security() {
    if !has("systemd-analyze") {
        return skip("systemd-analyze is not installed (package systemd): no security score");
    }
    let (dir, _) = units_for_verify();
    let output = Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=true",
            "--no-pager",
            "./udp-echo.service",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() && stdout.is_empty() {
        // systemd before 250 has no --offline.
        return skip(&format!(
            "systemd-analyze security --offline failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split("udp-echo.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    // README reports 1.1; 2.0 and above is no longer "OK".
    assert!(score < 2.0, "exposure {score}:\n{stdout}");
}
