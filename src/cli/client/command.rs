//! The client's command line, converted: a [`Command`], its [`Target`] and
//! its [`Outputs`], free of clap types; the one-shot [`Payload`] and how its
//! bytes are read.

use std::io::Read;
use std::time::Duration;

use super::Args;
use crate::client::Target;
use crate::client::fleet::FleetConfig;
use crate::client::fleet::spec::Defaults;
use crate::client::measure::{MeasureConfig, MeasureMode};
use crate::client::session::Outputs;
use crate::client::stamp::StampConfig;
use crate::error::{Error, Result};
use crate::net;
use crate::stamp::StampOptions;

/// What the client was asked to do, free of clap types.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send one payload, wait for its echo and write the echo to stdout.
    OneShot(Payload),
    /// `--stop`: send the empty datagram that asks the server to stop.
    Stop,
    /// Ping (`--count`), flood (`--flood`) or rate (`--rate`) mode.
    Measure(MeasureConfig),
    /// `--find-rate`: rate-mode steps like `config` (each step sets its own
    /// rate), searching the highest rate whose loss stays within `max_loss` percent.
    FindRate {
        /// Each step's run; its rate is a placeholder.
        config: MeasureConfig,
        /// The loss allowed, in percent.
        max_loss: f64,
    },
    /// `--pmtu`: the largest payload, from `min_size` up, that echoes intact
    /// with don't-fragment set.
    Pmtu {
        /// The smallest payload tried, in bytes (`--size`).
        min_size: usize,
    },
    /// `--doctor`: diagnose UDP on this host and the path to the target.
    Doctor,
    /// `--list-targets SOURCE`: print the targets the source gives.
    ListTargets(crate::client::fleet::TargetSource),
    /// `--metrics ADDR:PORT` with no target and no mode: the `/probe`
    /// exporter, listening there, probing only inside `--probe-allow`
    /// (empty: anywhere).
    Exporter(std::net::SocketAddr, Vec<crate::net::cidr::Cidr>),
    /// `--targets`: probe a fleet until stopped, for Prometheus.
    Fleet(Box<FleetConfig>),
}

/// The payload of a one-shot probe (`--data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// This text; its echo is written with a newline after it.
    Text(String),
    /// `-`: raw bytes from stdin; the echo is written raw, without a newline.
    Stdin,
}

impl Payload {
    /// The bytes to send: the text, or what `stdin` holds — refused when it is
    /// more than one UDP datagram can carry.
    pub fn bytes(&self, stdin: impl Read) -> Result<Vec<u8>> {
        match self {
            Payload::Text(text) => Ok(text.clone().into_bytes()),
            Payload::Stdin => read_at_most(stdin, net::MAX_UDP_PAYLOAD_V6),
        }
    }
}

/// How far a too-large stdin payload is counted, to report its real size: past
/// this (a pipe from `/dev/zero`), the message says "more than".
const COUNT_LIMIT: u64 = 1 << 30;

/// Reads all of `input`, keeping at most `limit` bytes (+1, to tell "too large"
/// apart from "exactly the maximum"). Too large: the rest is counted, not kept,
/// so the error gives the real size. Empty: refused, since an empty datagram
/// is the stop signal (`--stop` sends it on purpose).
fn read_at_most(mut input: impl Read, limit: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        what: "read the payload from stdin",
        source,
    };
    let mut payload = Vec::new();
    (&mut input)
        .take(limit as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(io)?;
    if payload.is_empty() {
        return Err(Error::EmptyPayload);
    }
    if payload.len() > limit {
        let rest = std::io::copy(&mut input.take(COUNT_LIMIT), &mut std::io::sink()).map_err(io)?;
        let len = payload.len() as u64 + rest;
        return Err(Error::PayloadTooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: limit,
            at_least: rest == COUNT_LIMIT,
        });
    }
    Ok(payload)
}

/// A session-sender's STAMP options (`--stamp-key`, `--stamp-ptp`): the
/// reflector's own settings stay at their defaults. The measured modes and
/// the fleet send alike.
fn sender_stamp_options(args: &Args) -> StampOptions {
    StampOptions {
        key_file: args.stamp_key.clone(),
        ptp: args.stamp_ptp,
        ..StampOptions::default()
    }
}

/// The one place a [`Command`] is built from the arguments. It cannot fail
/// (clap has already refused every conflicting combination), so
/// `Command::try_from(&args)` comes with it, with `Infallible` as its error.
///
/// The modes are one clap group and `--stop` conflicts with each, so at most
/// one of them is set; every option outside its modes was refused by clap.
impl From<&Args> for Command {
    fn from(args: &Args) -> Self {
        let stamp = args.stamp.then(|| StampConfig {
            options: sender_stamp_options(args),
            size: args.stamp_size.map(|s| s as usize),
            follow_up: args.stamp_follow_up,
            tlvs: args.stamp_tlv.unwrap_or_default(),
            // Non-zero: some reflectors treat SSID 0 as "none".
            ssid: args
                .stamp_ssid
                .unwrap_or((std::process::id() as u16).max(1)),
        });
        // The one MeasureConfig literal; `default_secs` is `--duration`'s default.
        let measure = |mode, default_secs| MeasureConfig {
            mode,
            size: stamp
                .as_ref()
                .map_or(args.size as usize, |s| s.packet_len(args.tos)),
            timeout: args.timeout,
            duration: args.duration.unwrap_or(Duration::from_secs(default_secs)),
            flows: args.flows as usize,
            stamp: stamp.clone(),
            tos: args.tos,
        };
        let ping = args.count.map(|count| MeasureMode::Ping {
            count: (count > 0).then_some(count),
            interval: args.interval.unwrap_or(Duration::from_secs(1)),
        });
        let flood = args.flood.then_some(MeasureMode::Flood {
            window: args.window as usize,
        });
        let rate = args.rate.map(|pps| MeasureMode::Rate { pps });
        if let (Some(source), Some(metrics)) = (&args.targets, args.metrics) {
            Command::Fleet(Box::new(FleetConfig {
                source: source.clone(),
                metrics,
                defaults: Defaults {
                    stamp: args.stamp,
                    interval: args.interval.unwrap_or(Duration::from_secs(1)),
                    size: args.size_given.then_some(args.size as usize),
                    tos: args.tos,
                    timeout: args.timeout,
                    stamp_authenticated: args.stamp_key.is_some(),
                    rounds: args.rounds,
                    labels: args.label.clone(),
                },
                refresh: args.refresh,
                family: args.common.family(),
                stamp: sender_stamp_options(args),
                ssid: args
                    .stamp_ssid
                    .unwrap_or((std::process::id() as u16).max(1)),
                recv_buf: args.common.recv_buf,
                send_buf: args.common.send_buf,
                probe_allow: args.probe_allow.clone(),
            }))
        } else if let Some(source) = &args.list_targets {
            Command::ListTargets(source.clone())
        } else if let (Some(listen), None) = (args.metrics, args.count) {
            Command::Exporter(listen, args.probe_allow.clone())
        } else if args.find_rate {
            Command::FindRate {
                config: measure(MeasureMode::Rate { pps: 1.0 }, 1),
                max_loss: args.max_loss,
            }
        } else if args.pmtu {
            Command::Pmtu {
                min_size: args.size as usize,
            }
        } else if args.doctor {
            Command::Doctor
        } else if let Some(mode) = ping.or(flood).or(rate) {
            Command::Measure(measure(mode, 5))
        } else if args.stop {
            Command::Stop
        } else if args.data == "-" {
            Command::OneShot(Payload::Stdin)
        } else {
            Command::OneShot(Payload::Text(args.data.clone()))
        }
    }
}

/// The server and how to reach it, for every command.
impl From<&Args> for Target {
    fn from(args: &Args) -> Self {
        Target {
            host: args.common.host.clone(),
            port: args.common.port,
            family: args.common.family(),
            bind: args.bind,
            recv_buf: args.common.recv_buf,
            send_buf: args.common.send_buf,
            timeout: args.timeout,
            interface: args.common.interface.clone(),
        }
    }
}

/// Everything a measured run writes besides its summary.
impl From<&Args> for Outputs {
    fn from(args: &Args) -> Self {
        Outputs {
            json: args.json,
            metrics: args.metrics,
            probes: args.probes.clone(),
            histogram: args.histogram,
            plot: args.plot.clone(),
        }
    }
}
