//! Logging in one format, `[udp-echo-server (PID)] message`, on stderr.
//!
//! Only the binaries call [`init`]; the library logs through the `log` macros.
//! Results (the `listening on` line, replies, JSON) never go through here.

use std::io::Write;

use log::LevelFilter;

/// Installs the logger for `program` at a verbosity: 0 = info, 1 = debug, 2+ = trace,
/// -1 = warnings only, -2 or less = errors only. `RUST_LOG` overrides it.
pub fn init(program: &'static str, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let pid = std::process::id();
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env(env_logger::Env::new().filter("RUST_LOG"))
        .format(move |out, record| {
            let tag = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            writeln!(out, "[{program} ({pid})] {tag}{}", record.args())
        })
        .init();
}

/// Turns `-v`/`-q` counts into the signed verbosity [`init`] takes.
pub fn verbosity(verbose: u8, quiet: u8) -> i8 {
    let clamp = |n: u8| i8::try_from(n).unwrap_or(i8::MAX);
    clamp(verbose).saturating_sub(clamp(quiet))
}

/// Prints a fatal error as one line in the log format, whatever the log level:
/// a user who silenced logging with `RUST_LOG=off` still learns why it exited.
pub fn report_error(program: &str, error: &dyn std::fmt::Display) {
    eprintln!("[{program} ({})] error: {error}", std::process::id());
}

/// Renders a payload for a debug line like Python's bytes repr, `b"hello\n"`, cut
/// after `limit` bytes so a 64 KiB datagram costs one short line.
pub fn escape_payload(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    let mut text = String::with_capacity(shown.len() + 8);
    text.push_str("b\"");
    for &b in shown {
        text.extend(std::ascii::escape_default(b).map(char::from));
    }
    text.push('"');
    if bytes.len() > limit {
        text.push_str(&format!("… ({} more bytes)", bytes.len() - limit));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_escaped_and_cut() {
        assert_eq!(escape_payload(b"hello", 64), "b\"hello\"");
        assert_eq!(escape_payload(b"a\n\x00\"", 64), "b\"a\\n\\x00\\\"\"");
        assert_eq!(escape_payload(b"", 64), "b\"\"");
        assert_eq!(escape_payload(&[b'x'; 70], 4), "b\"xxxx\"… (66 more bytes)");
    }
}
