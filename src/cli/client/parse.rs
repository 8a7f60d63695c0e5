//! Reading the client's command line: clap's parse, then what clap's rules
//! cannot say (the `/probe` exporter's refusals, the fleet's shortest
//! interval, a STAMP probe's size) and TARGET split into host and port; the
//! value parsers of single options.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::Args;

impl Args {
    /// Parses the process's command line like `Args::parse()`, then splits a
    /// TARGET or -H given as HOST:PORT; a usage error exits 2 with clap's
    /// message.
    pub fn from_command_line() -> Args {
        Args::try_from_command_line(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// [`Args::from_command_line`] for any argument list (tests), the error
    /// returned: the program name first, as in `argv`.
    pub fn try_from_command_line<I, T>(argv: I) -> std::result::Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut cmd = Args::command();
        let matches = cmd.try_get_matches_from_mut(argv)?;
        let mut args = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
        let port_given = matches.value_source("port") == Some(ValueSource::CommandLine);
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        args.size_given = given("size");
        if args.metrics.is_some() && args.count.is_none() && args.targets.is_none() {
            let target_given = args.target.is_some() || given("host") || port_given;
            check_exporter(target_given, given("timeout") || given("bind"))
                .map_err(|message| cmd.error(clap::error::ErrorKind::ArgumentConflict, message))?;
        }
        if args.targets.is_some()
            && args
                .interval
                .is_some_and(|i| i < crate::client::fleet::spec::MIN_INTERVAL)
        {
            return Err(cmd.error(
                clap::error::ErrorKind::ValueValidation,
                "-i: a fleet target is probed at most every 0.01 s",
            ));
        }
        args.resolve_target(port_given)
            .map_err(|message| cmd.error(clap::error::ErrorKind::ArgumentConflict, message))?;
        if args.stamp && matches.value_source("size") == Some(ValueSource::CommandLine) {
            // With `--stamp-tlv dna` the run checks it again for the
            // family the target resolves to.
            crate::client::stamp::check_size_unresolved(
                args.stamp_key.is_some(),
                args.tos,
                args.stamp_follow_up,
                args.stamp_tlv.unwrap_or_default(),
                args.size as usize,
            )
            .map_err(|message| cmd.error(clap::error::ErrorKind::ValueValidation, message))?;
            args.stamp_size = Some(args.size);
        }
        Ok(args)
    }

    /// Moves the positional TARGET (or a port in -H) into the host and port
    /// the rest of the client reads. `port_given`: -p was on the command line.
    fn resolve_target(&mut self, port_given: bool) -> std::result::Result<(), String> {
        let (text, name) = match &self.target {
            Some(target) => (target.clone(), "TARGET"),
            None => (self.common.host.clone(), "--host"),
        };
        let (host, port) =
            split_target(&text).map_err(|e| format!("invalid {name} '{text}': {e}"))?;
        if let Some(port) = port {
            if port_given && port != self.common.port {
                return Err(format!(
                    "the port is given twice: {name} '{text}' says {port}, --port says {}; give it once",
                    self.common.port
                ));
            }
            self.common.port = port;
        }
        self.common.host = host;
        Ok(())
    }
}

/// `--metrics` without `-c` is the `/probe` exporter: it probes the targets
/// each request names, so a TARGET (or -H, -p) and the per-probe -t and -b
/// would be silently ignored; they are refused instead.
fn check_exporter(target_given: bool, probe_options: bool) -> std::result::Result<(), String> {
    if target_given {
        return Err(
            "--metrics without -c is the /probe exporter, which takes no TARGET, -H or -p: \
                    add -c 0 to probe TARGET continuously"
                .to_owned(),
        );
    }
    if probe_options {
        return Err(
            "the /probe exporter takes -t and -b per request (timeout=), not on the command line"
                .to_owned(),
        );
    }
    Ok(())
}

/// Splits a target into its host and port, as ping and nc read it: `HOST`,
/// `HOST:PORT`, `[IPv6]:PORT`, `[IPv6]`; a bare IPv6 address (more than one
/// colon) is a host without a port.
fn split_target(text: &str) -> std::result::Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in brackets needs its ']'")?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("expected [IPv6]:PORT".to_owned()),
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            _ => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let port = port.map(parse_peer_port).transpose()?;
    Ok((host.to_owned(), port))
}

/// Parses `--plot`: the file is SVG, so its name must say so — an SVG in a
/// `.png` would open as a broken image.
pub(super) fn parse_svg_path(text: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("svg") => Ok(path),
        _ => Err("the plot is SVG: give a file name ending in .svg".to_owned()),
    }
}

/// Parses `--targets`: a file, `dns+srv:NAME` or `dns+a:NAME:PORT`.
pub(super) fn parse_targets(
    text: &str,
) -> std::result::Result<crate::client::fleet::TargetSource, String> {
    crate::client::fleet::TargetSource::parse(text)
}

/// Parses `--port` for the client: a port to send to, so not 0 (the server's
/// `-p 0` means "pick a free port"; there is no such thing to send to).
pub(super) fn parse_peer_port(text: &str) -> std::result::Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err("port 0 cannot be sent to: expected the server's port, 1 to 65535".to_owned()),
        Ok(port) => Ok(port),
        Err(_) => Err("expected a port number from 1 to 65535".to_owned()),
    }
}

/// Parses `--data`: any text but the empty one, which is the stop datagram —
/// a script whose variable came out empty must not stop the server by accident.
pub(super) fn parse_data(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err(
            "an empty payload is the datagram that stops the server; to stop it, use --stop"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}
