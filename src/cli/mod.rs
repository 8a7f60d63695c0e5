//! The command lines of both binaries (clap) and their conversion to the plain
//! configs the rest of the library takes: the only module that sees clap types.
//!
//! [`Common`] holds the flags both binaries share; [`client::Args`] and
//! [`server::Args`] flatten it beside their own flags and word its help for
//! their role.

pub mod client;
pub mod exit;
pub mod generate;
pub mod server;

use clap::Args;

use crate::logging;
use crate::net::Family;
use crate::units::parse_buffer_size;

/// The flags both binaries share: where (host, port, family), the socket buffers
/// and the log level. Names, defaults and value parsers are the same in both;
/// the help text differs by role (the server binds the address, the client sends
/// to it), so each binary sets it with `mut_arg` — only `-4`/`-6` read the same.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Address or name: the server binds it, the client sends to it.
    #[arg(short = 'H', long, default_value = "localhost")]
    pub host: String,

    /// UDP port.
    #[arg(short, long, default_value_t = 9999)]
    pub port: u16,

    /// Resolve the host to IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Resolve the host to IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// Request SO_RCVBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    pub recv_buf: Option<usize>,

    /// Request SO_SNDBUF, e.g. 256K, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_buffer_size)]
    pub send_buf: Option<usize>,

    /// Bind to this network interface or VRF device, e.g. eth0, vrf-blue.
    ///
    /// SO_BINDTODEVICE, which needs CAP_NET_RAW or root.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,

    // The log level comes last in `--help`, after each binary's own flags and
    // before `--help` / `--version` (which clap places at 999).
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, display_order = 900)]
    pub verbose: u8,

    /// Less logging (-q, -qq).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose", display_order = 901)]
    pub quiet: u8,

    /// Write the man page (man) or completions (complete-bash, complete-zsh,
    /// complete-fish, complete-powershell) to stdout and exit.
    #[arg(
        long,
        value_name = "KIND",
        value_enum,
        hide_short_help = true,
        hide_possible_values = true,
        display_order = 902
    )]
    pub generate: Option<generate::Kind>,
}

impl Common {
    /// The address family `-4` / `-6` ask for.
    pub fn family(&self) -> Family {
        Family::from_flags(self.ipv4, self.ipv6)
    }

    /// The log level `-v` / `-q` ask for, as [`logging::init`] takes it.
    pub fn verbosity(&self) -> i8 {
        logging::verbosity(self.verbose, self.quiet)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of both binaries has help text, and none shows a markdown
    /// escape (`\[`) that only rustdoc would have removed.
    #[test]
    fn every_flag_has_plain_help() {
        for cmd in [
            super::client::Args::command(),
            super::server::Args::command(),
        ] {
            for arg in cmd.get_arguments() {
                let help = arg.get_help().map(ToString::to_string);
                let help = help.unwrap_or_else(|| panic!("{}: no help", arg.get_id()));
                assert!(!help.contains('\\'), "{}: {help}", arg.get_id());
            }
        }
    }
}
