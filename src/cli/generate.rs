//! `--generate KIND`: the man page (roff, `clap_mangen`) and the shell
//! completions (`clap_complete`) of either binary, written from its clap
//! definition, so they never drift from the real options (as ripgrep does).
//!
//! The man page gets two sections clap cannot know, written here by hand:
//! EXIT STATUS and EXAMPLES (plus ENVIRONMENT and SEE ALSO).

use std::io::{self, Write};

use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// What `--generate` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// The man page, roff source for section 1 (`man -l -` reads it).
    Man,
    /// Completions for bash (install as /usr/share/bash-completion/completions/NAME).
    #[value(name = "complete-bash")]
    CompleteBash,
    /// Completions for zsh (install as _NAME in a directory of $fpath).
    #[value(name = "complete-zsh")]
    CompleteZsh,
    /// Completions for fish (install as NAME.fish in a fish completions directory).
    #[value(name = "complete-fish")]
    CompleteFish,
    /// Completions for PowerShell (dot-source it from $PROFILE).
    #[value(name = "complete-powershell")]
    CompletePowershell,
}

/// Which binary to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `udp-echo-server`.
    Server,
    /// `udp-echo-client`.
    Client,
}

impl Program {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Program::Server => super::server::PROGRAM,
            Program::Client => super::client::PROGRAM,
        }
    }

    fn command(self) -> clap::Command {
        match self {
            Program::Server => super::server::Args::command(),
            Program::Client => super::client::Args::command(),
        }
    }
}

/// Writes `kind` for `program` to `out`.
pub fn generate(program: Program, kind: Kind, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = program.command();
    let shell = match kind {
        Kind::Man => return man(program, cmd, out),
        Kind::CompleteBash => Shell::Bash,
        Kind::CompleteZsh => Shell::Zsh,
        Kind::CompleteFish => Shell::Fish,
        Kind::CompletePowershell => Shell::PowerShell,
    };
    // clap_complete writes through `write_all(..).expect(..)`: render into
    // memory, so a closed stdout is an error here, not a panic there.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, program.name(), &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Writes `kind` for `program` to stdout, for `--generate`; a closed stdout
/// (`| head`) is the reader's choice, not an error.
pub fn to_stdout(program: Program, kind: Kind) -> io::Result<()> {
    match generate(program, kind, &mut io::stdout().lock()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// The man page: clap_mangen's title, NAME, our SYNOPSIS, clap_mangen's
/// DESCRIPTION and options (a section per `--help` heading), then the
/// hand-written sections, then VERSION.
fn man(program: Program, cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let cmd = for_man(cmd);
    let synopsis = synopsis(&cmd, program.name());
    let page = Man::new(cmd)
        .manual("User Commands")
        .source(format!("udp-echo {}", env!("CARGO_PKG_VERSION")));
    let mut text = Vec::new();
    page.render_title(&mut text)?;
    page.render_name_section(&mut text)?;
    synopsis.to_writer(&mut text)?;
    page.render_description_section(&mut text)?;
    page.render_options_section(&mut text)?;
    if program == Program::Client {
        let mut modes = Roff::new();
        modes.control("SH", ["MODES"]);
        // The table is laid out in columns: no filling, no adjusting.
        modes.control("nf", []);
        for line in super::client::mode_table().lines() {
            modes.text([roman(line)]);
        }
        modes.control("fi", []);
        modes.to_writer(&mut text)?;
    }
    hand_written(program).to_writer(&mut text)?;
    page.render_version_section(&mut text)?;
    out.write_all(&text)?;
    out.flush()
}

/// The command as the man page shows it: every option with its long help
/// (clap_mangen leaves an option hidden from `-h` without any, and takes the
/// short help when there is no long one), and no markdown backticks, which a
/// man page would print as they are.
fn for_man(cmd: clap::Command) -> clap::Command {
    let plain = |text: &clap::builder::StyledStr| text.to_string().replace('`', "'");
    let mut cmd = cmd;
    if let Some(about) = cmd.get_about().map(plain) {
        cmd = cmd.about(about);
    }
    if let Some(about) = cmd.get_long_about().map(plain) {
        cmd = cmd.long_about(about);
    }
    cmd = cmd.mut_args(
        |arg| match arg.get_long_help().or(arg.get_help()).map(plain) {
            Some(help) => arg.long_help(help).hide_short_help(false),
            None => arg,
        },
    );
    cmd.build();
    cmd
}

/// SYNOPSIS: every option with its value name, `[-H|--host HOST]`, and the
/// positionals (clap_mangen names no values and pads short-only flags).
fn synopsis(cmd: &clap::Command, name: &str) -> Roff {
    // In `--help`'s order: by heading, then display order; the options
    // without a heading (help, version, generate) and the positionals last.
    let mut headings: Vec<&str> = Vec::new();
    for heading in cmd.get_arguments().filter_map(|a| a.get_help_heading()) {
        if !headings.contains(&heading) {
            headings.push(heading);
        }
    }
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    args.sort_by_key(|a| {
        let heading = a
            .get_help_heading()
            .and_then(|h| headings.iter().position(|&x| x == h));
        (
            a.is_positional(),
            heading.unwrap_or(usize::MAX),
            a.get_display_order(),
        )
    });
    let mut line = vec![bold(name)];
    for arg in args {
        line.push(roman(" ["));
        if arg.is_positional() {
            let value = arg
                .get_value_names()
                .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.join(" "));
            line.extend([italic(value), roman("]")]);
            continue;
        }
        let short = arg.get_short().map(|s| format!("-{s}"));
        let long = arg.get_long().map(|l| format!("--{l}"));
        match (short, long) {
            (Some(short), Some(long)) => line.extend([bold(short), roman("|"), bold(long)]),
            (Some(flag), None) | (None, Some(flag)) => line.push(bold(flag)),
            (None, None) => {}
        }
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        if let (true, Some(values)) = (takes_value, arg.get_value_names()) {
            line.extend([roman(" "), italic(values.join(" "))]);
        }
        line.push(roman("]"));
        if matches!(
            arg.get_action(),
            clap::ArgAction::Count | clap::ArgAction::Append
        ) {
            line.push(roman("..."));
        }
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    // Option names are not words to hyphenate or spread apart.
    roff.control("nh", []).control("ad", ["l"]);
    roff.text(line);
    roff.control("ad", ["b"]).control("hy", []);
    roff
}

/// One `.TP` entry: a bold term and its paragraph.
fn entry(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", [])
        .text([bold(term)])
        .text([roman(text)]);
}

/// EXIT STATUS, ENVIRONMENT, EXAMPLES and SEE ALSO, as README's tables say.
fn hand_written(program: Program) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    let (statuses, examples, see_also): (Entries, Entries, &str) = match program {
        Program::Server => (SERVER_EXIT, SERVER_EXAMPLES, "udp-echo-client"),
        Program::Client => (CLIENT_EXIT, CLIENT_EXAMPLES, "udp-echo-server"),
    };
    for (code, meaning) in statuses {
        entry(&mut roff, code, meaning);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut roff,
        "RUST_LOG",
        "Overrides the log level of -v and -q, e.g. RUST_LOG=debug.",
    );
    let environment = match program {
        Program::Server => SERVER_ENVIRONMENT,
        Program::Client => CLIENT_ENVIRONMENT,
    };
    for (name, meaning) in environment {
        entry(&mut roff, name, meaning);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (command, meaning) in examples {
        entry(&mut roff, command, meaning);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = vec![bold(see_also), roman("(1), ")];
    if program == Program::Server {
        refs.extend([
            bold("systemd.socket"),
            roman("(5), "),
            bold("systemd-socket-activate"),
            roman("(1), "),
        ]);
    }
    refs.extend([
        roman("RFC 862; the project's README and docs/ "),
        italic("(/usr/share/doc/udp-echo)"),
        roman("."),
    ]);
    roff.text(refs);
    roff
}

/// Terms and their paragraphs, for `.TP` entries.
type Entries = &'static [(&'static str, &'static str)];

const SERVER_EXIT: Entries = &[
    (
        "0",
        "Stopped normally: an allowed empty datagram, SIGINT, SIGTERM or SIGHUP.",
    ),
    (
        "1",
        "Refused to start: the host does not resolve, the address is not local, the port is privileged or already held, or an inherited socket (socket activation) is not a UDP socket.",
    ),
    ("2", "Usage error: a bad option or value."),
    ("130", "A second SIGINT, SIGTERM or SIGHUP while stopping."),
];

const CLIENT_EXIT: Entries = &[
    (
        "0",
        "The reply came back intact (--stop: the server went quiet); measured modes: at least one reply and none corrupt or truncated.",
    ),
    (
        "1",
        "No reply, a reply that differs, or connection refused; measured modes: no reply at all, or a corrupt or truncated one; --doctor: a finding needs action.",
    ),
    (
        "2",
        "Usage error (including an option outside its mode), or a local problem: cannot resolve, cannot bind, payload empty or too large.",
    ),
    (
        "130",
        "--find-rate cut short by Ctrl-C, or a second signal in any mode.",
    ),
];

const CLIENT_ENVIRONMENT: Entries = &[(
    "UDP_ECHO_CLIENT_OFFLOAD",
    "Comma-separated offloads to switch off: no-gso (flood and rate send one datagram per sendmmsg entry), no-gro (replies are received one per buffer), no-kernel-time (round trips are timed with the client's own clock instead of the kernel's receive and transmit time stamps), no-tx-time (the kernel's transmit stamps only: round trips start at the user-space send time).",
)];

const SERVER_ENVIRONMENT: Entries = &[
    (
        "LISTEN_FDS, LISTEN_PID",
        "Socket activation (sd_listen_fds): when LISTEN_PID is this process, the LISTEN_FDS sockets from file descriptor 3 on are served instead of binding --host and --port, one thread each. Each must be a UDP socket.",
    ),
    (
        "NOTIFY_SOCKET",
        "Readiness (sd_notify): READY=1 once serving, STATUS= with the counters, STOPPING=1 at stop.",
    ),
    (
        "WATCHDOG_USEC, WATCHDOG_PID",
        "With NOTIFY_SOCKET: WATCHDOG=1 every half of WATCHDOG_USEC.",
    ),
];

const SERVER_EXAMPLES: Entries = &[
    (
        "udp-echo-server",
        "Echo on localhost:9999 until an empty datagram from this host (udp-echo-client --stop) or Ctrl-C.",
    ),
    (
        "udp-echo-server --port 0",
        "Let the kernel pick a free port; the first stdout line says which (listening on 127.0.0.1:PORT).",
    ),
    (
        "udp-echo-server -H :: -p 9999 --threads 4 --rate-limit 1000 --stats-interval 10",
        "All interfaces (IPv6 and, where the host allows it, IPv4), four sockets sharing the port, at most 1000 datagrams/s per source, a counter line every 10 s.",
    ),
    (
        "systemd-socket-activate --datagram -l 127.0.0.1:9999 udp-echo-server",
        "Serve a socket bound by someone else, as the udp-echo.socket unit does for port 7.",
    ),
    (
        "udp-echo-server --generate man | man -l -",
        "This page; --generate complete-bash (zsh, fish, powershell) writes completions.",
    ),
];

const CLIENT_EXAMPLES: Entries = &[
    (
        "udp-echo-client --data 'hello, world'",
        "One probe to localhost:9999; the reply goes to stdout, exit 0 when it came back intact.",
    ),
    (
        "udp-echo-client -H 192.0.2.7 -p 7 -c 5 -i 0.2",
        "Ping mode: five probes, 0.2 s apart, with ping's summary.",
    ),
    (
        "udp-echo-client --flood -D 3",
        "Closed loop for 3 s: the round trips per second the path sustains.",
    ),
    (
        "udp-echo-client --rate 20000 -D 2 --flows 2 --json",
        "Open loop at 20000 probes/s from two source ports; the summary as one JSON object.",
    ),
    (
        "udp-echo-client --find-rate --max-loss 0.1",
        "Search the highest rate with at most 0.1% loss.",
    ),
    (
        "udp-echo-client --pmtu",
        "The largest payload that echoes intact with don't-fragment set.",
    ),
    (
        "udp-echo-client --doctor",
        "What matters for UDP on this host and the path to the server, each finding with a fix.",
    ),
    (
        "udp-echo-client --stop",
        "Ask a server on this host to stop (an empty datagram).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn text(program: Program, kind: Kind) -> String {
        let mut out = Vec::new();
        generate(program, kind, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_man_page_has_the_hand_written_sections_in_order() {
        for program in [Program::Server, Program::Client] {
            let page = text(program, Kind::Man);
            let at = |heading: &str| {
                page.find(&format!(".SH {heading}"))
                    .unwrap_or_else(|| panic!("{heading} missing:\n{page}"))
            };
            let order = [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "OPTIONS",
                "\"EXIT STATUS\"",
                "ENVIRONMENT",
                "EXAMPLES",
                "\"SEE ALSO\"",
                "VERSION",
            ]
            .map(at);
            assert!(order.is_sorted(), "{order:?}\n{page}");
            assert!(page.contains(&format!(".TH {}", program.name())), "{page}");
            // The long help's hidden-from-short-help flag is documented too.
            assert!(page.contains("generate"), "{page}");
        }
    }

    #[test]
    fn every_completion_names_the_binary() {
        for program in [Program::Server, Program::Client] {
            for kind in [
                Kind::CompleteBash,
                Kind::CompleteZsh,
                Kind::CompleteFish,
                Kind::CompletePowershell,
            ] {
                let script = text(program, kind);
                assert!(script.contains(program.name()), "{kind:?}");
                assert!(script.contains("recv-buf"), "{kind:?}");
            }
        }
    }
}
