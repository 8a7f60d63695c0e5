//! What a package ships, checked with the real tools: `--generate man` renders
//! with groff (and `man -l`) without a warning, each completion script passes
//! its shell's syntax check, the systemd units verify, and the Kubernetes
//! manifests parse. A test whose tool is missing says `SKIPPED: …` and passes
//! (fails under `UDP_ECHO_TESTS_NO_SKIP=1`); `.ci/run` installs the tools.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{CLIENT, SERVER, skip};

mod kubernetes;
mod systemd;

/// Both binaries, by path and name.
const PROGRAMS: [(&str, &str); 2] = [(SERVER, "udp-echo-server"), (CLIENT, "udp-echo-client")];

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program args`, asserting it succeeds; returns its output. In the C
/// locale with UTF-8, whatever the caller's language: tools' messages are
/// then the ones the tests expect.
fn run(program: &str, args: &[&str]) -> Output {
    let output = common::command(program)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
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
        let output = common::command(binary)
            .args(["--generate", "complete-tcsh"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("complete-bash"), "{stderr}");
    }
}

#[test]
fn the_man_pages_describe_every_option_with_its_value_name_and_no_markdown() {
    for (binary, name) in PROGRAMS {
        let page = String::from_utf8(run(binary, &["--generate", "man"]).stdout).unwrap();
        assert!(!page.contains('`'), "{name}: a markdown backtick:\n{page}");
        // Each .TP entry: a term line, then its description.
        let lines: Vec<&str> = page.lines().collect();
        for (i, _) in lines.iter().enumerate().filter(|(_, l)| **l == ".TP") {
            let body = lines.get(i + 2).copied().unwrap_or("");
            assert!(
                !body.trim().is_empty() && !body.starts_with('.'),
                "{name}: {} has no description:\n{page}",
                lines[i + 1]
            );
        }
        let synopsis = page
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|rest| rest.split(".SH ").next())
            .unwrap_or_else(|| panic!("{name}: no SYNOPSIS:\n{page}"));
        for expected in [
            r"[\fB\-H\fR|\fB\-\-host\fR \fIHOST\fR]",
            r"[\fB\-4\fR]",
            r"[\fB\-\-recv\-buf\fR \fISIZE\fR]",
            r"[\fB\-v\fR|\fB\-\-verbose\fR]...",
        ] {
            assert!(
                synopsis.contains(expected),
                "{name}: {expected} in\n{synopsis}"
            );
        }
        assert!(
            !synopsis.contains(r" \fR"),
            "{name}: padded flag in\n{synopsis}"
        );
        for long in ["--generate", "--help", "--port", "--stamp"] {
            let roff = long.replace('-', r"\-");
            assert!(
                synopsis.contains(&roff),
                "{name}: {long} not in\n{synopsis}"
            );
        }
    }
    let client = String::from_utf8(run(CLIENT, &["--generate", "man"]).stdout).unwrap();
    assert!(client.contains(r"[\fITARGET\fR]"), "{client}");
    assert!(client.contains(".SH MODES"), "{client}");
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
        assert!(!text.contains('`'), "{name}: a literal backtick:\n{text}");
        if has("man") {
            // Not the caller's man options, language or width.
            let output = Command::new("man")
                .args(["-l", page])
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .env("LC_ALL", "C.UTF-8")
                .env_remove("MANOPT")
                .env_remove("MANROFFOPT")
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
    // Without the caller's start-up files (zsh reads ~/.zshenv even for -n).
    for (kind, shell, check, file) in [
        (
            "complete-bash",
            "bash",
            &["--norc", "-n"][..],
            "completion.bash",
        ),
        ("complete-zsh", "zsh", &["-f", "-n"][..], "completion.zsh"),
        (
            "complete-fish",
            "fish",
            &["--no-config", "-n"][..],
            "completion.fish",
        ),
    ] {
        if !has(shell) {
            skip(&format!(
                "{shell} is not installed: its completions were not checked"
            ));
            continue;
        }
        for (binary, name) in PROGRAMS {
            let script = generated(binary, name, kind, file);
            run(shell, &[check, &[script.to_str().unwrap()]].concat());
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
