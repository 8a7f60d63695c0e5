//! `--doctor`: one report of what matters for UDP on this host and on the path
//! to the target, each finding with a concrete fix.
//!
//! It reads the kernel's limits, the granted buffer sizes, the host's UDP
//! counters, the sockets that hold the target port and the route's MTU, then
//! runs a one-second ping and flood against the target — or, when nothing
//! answers there, against a server it starts in-process on loopback, so the
//! host itself is still checked.

use std::net::SocketAddr;

use serde::Serialize;
use std::time::Duration;

use super::Target;
use super::measure::{self, MeasureConfig, MeasureMode};
use crate::client::stats::RunSummary;
use crate::error::Result;
use crate::net::{self, Limits, snmp, udp_table};
use crate::server::guard::GuardConfig;
use crate::server::{DEFAULT_BATCH, Server, ServerConfig, StopPolicy};
use crate::shutdown::Stop;
use crate::sys;

/// A receive-buffer limit below this makes fast UDP receivers drop under bursts.
pub const RMEM_MAX_ADVISED: u64 = 4 * 1024 * 1024;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// As it should be.
    Ok,
    /// Worth knowing; nothing to do for most uses.
    Note,
    /// Something is wrong here: the doctor exits 1.
    Action,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What it is about, one word or two.
    pub topic: &'static str,
    /// What was found.
    pub text: String,
    /// What to do about it, when something can be done.
    pub fix: Option<String>,
}

fn finding(severity: Severity, topic: &'static str, text: String, fix: Option<String>) -> Finding {
    Finding {
        severity,
        topic,
        text,
        fix,
    }
}

/// Judges the kernel's limits.
pub fn check_limits(limits: &Limits) -> Vec<Finding> {
    let text = limits.to_string();
    let text = text.strip_prefix("limits: ").unwrap_or(&text).to_owned();
    let mut out = vec![finding(Severity::Ok, "limits", text, None)];
    match limits.rmem_max {
        Some(max) if max < RMEM_MAX_ADVISED => out.push(finding(
            Severity::Note,
            "rmem_max",
            format!("net.core.rmem_max is {max}: no socket can get a receive buffer above {} bytes, so bursts at high rates are dropped", max * 2),
            Some(format!("sysctl -w net.core.rmem_max={RMEM_MAX_ADVISED} (and --recv-buf 4M on the server)")),
        )),
        None => out.push(finding(Severity::Note, "rmem_max", "net.core.rmem_max is unknown here (no /proc)".into(), None)),
        _ => {}
    }
    if let Some(max) = limits.wmem_max.filter(|&m| m < RMEM_MAX_ADVISED) {
        out.push(finding(
            Severity::Note,
            "wmem_max",
            format!(
                "net.core.wmem_max is {max}: send buffers are capped at {} bytes",
                max * 2
            ),
            Some(format!("sysctl -w net.core.wmem_max={RMEM_MAX_ADVISED}")),
        ));
    }
    if let Some(s) = limits.somaxconn {
        out.push(finding(
            Severity::Note,
            "somaxconn",
            format!("net.core.somaxconn is {s} (SOMAXCONN {}): a TCP listen-backlog cap, not used by UDP", crate::net::limits::SOMAXCONN),
            None,
        ));
    }
    out
}

/// Judges the sockets that hold `port` in the kernel's table.
pub fn check_holders(target: SocketAddr, holders: &[udp_table::UdpSocketEntry]) -> Finding {
    let list = holders
        .iter()
        .map(|h| format!("{} (uid {}, inode {})", h.local, h.uid, h.inode))
        .collect::<Vec<_>>()
        .join(", ");
    match holders.len() {
        0 => finding(
            Severity::Ok,
            "port",
            format!("no socket on this host holds UDP port {}", target.port()),
            None,
        ),
        1 => finding(
            Severity::Ok,
            "port",
            format!("UDP port {} is held by one socket: {list}", target.port()),
            None,
        ),
        n => finding(
            Severity::Action,
            "port",
            format!(
                "UDP port {} is held by {n} sockets: {list}; datagrams for it are split or taken by the wrong one",
                target.port()
            ),
            Some(format!(
                "find them with `ss -ulpne 'sport = :{}'`, stop the intruder, and run udp-echo-server with --exclusive",
                target.port()
            )),
        ),
    }
}

/// Judges a ping or flood result.
pub fn check_run(topic: &'static str, run: &RunSummary, against: &str) -> Finding {
    let c = &run.counts;
    let text = format!(
        "{} {against}: {} sent, {} received, {:.1}% loss, p50 {:.3} ms, p99 {:.3} ms{}",
        run.mode,
        c.sent,
        c.received,
        run.loss_percent,
        run.rtt_us.p50 / 1e3,
        run.rtt_us.p99 / 1e3,
        if run.mode == crate::client::stats::RunMode::Flood {
            format!(", {:.0} round trips/s", run.rtt_per_s)
        } else {
            String::new()
        },
    );
    if c.corrupt + c.truncated > 0 {
        return finding(Severity::Action, topic, format!("{text}; {} corrupt, {} truncated replies", c.corrupt, c.truncated), Some("the server or a middlebox alters datagrams: capture with `tshark -f 'udp port PORT'`".into()));
    }
    if c.received == 0 {
        return finding(
            Severity::Action,
            topic,
            format!("{text}; nothing came back"),
            Some("start the server, or check firewalls on the path".into()),
        );
    }
    let mine = run.lost_in_client.unwrap_or(0);
    if c.lost > 0 && run.mode == crate::client::stats::RunMode::Ping {
        return finding(
            Severity::Action,
            topic,
            format!("{text}; ping-rate probes should not be lost"),
            Some(
                "look for a congested or lossy link, or a rate limit on the server (--rate-limit)"
                    .into(),
            ),
        );
    }
    if run.loss_percent > 1.0 {
        let fix = if mine * 2 >= c.lost {
            "most of the loss is in this host's own receive buffers: raise net.core.rmem_max and --recv-buf".to_owned()
        } else {
            "the loss is on the path or at the server: check the server's kernel drops (its summary) and its --recv-buf".to_owned()
        };
        return finding(
            Severity::Note,
            topic,
            format!(
                "{text}; {mine} of the {} lost were dropped in this client's receive buffers",
                c.lost
            ),
            Some(fix),
        );
    }
    finding(Severity::Ok, topic, text, None)
}

/// Runs every check against `target` and returns the findings, worst last.
pub fn diagnose(target: &Target, stop: &Stop) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let limits = Limits::read();
    findings.extend(check_limits(&limits));

    let conn = super::connect(target)?;
    let peer = conn.peer;
    findings.extend(conn.buffers.iter().map(buffer_finding));
    match sys::path_mtu(&conn.socket, peer.is_ipv6()) {
        Ok(mtu) => findings.push(finding(
            Severity::Ok,
            "mtu",
            format!(
                "the route to {} has an MTU of {mtu}: payloads up to {} bytes leave unfragmented",
                peer.ip(),
                mtu as usize - super::pmtu::overhead(peer.is_ipv6())
            ),
            None,
        )),
        Err(e) => findings.push(finding(
            Severity::Note,
            "mtu",
            format!("cannot read the route's MTU: {e}"),
            None,
        )),
    }
    drop(conn);

    let is_local =
        peer.ip().is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(peer.ip(), 0)).is_ok();
    if is_local {
        // Every socket on the target's port and address (none is ours).
        match net::foreign_holders(peer, &[]) {
            Some(holders) => findings.push(check_holders(peer, &holders)),
            None => findings.push(finding(
                Severity::Note,
                "port",
                "cannot list the sockets on this host (no /proc/net/udp)".into(),
                None,
            )),
        }
    }

    let before = snmp::read_udp();
    let ping = quick_run(
        target,
        MeasureMode::Ping {
            count: Some(10),
            interval: Duration::from_millis(100),
        },
        stop,
    )?;
    let against = format!("against {peer}");
    if ping.counts.received == 0 && is_local && !stop.is_requested() {
        findings.push(finding(
            Severity::Note,
            "server",
            format!("no echo server answers at {peer}; checking this host with a server started in-process on loopback"),
            Some(format!("start one with: udp-echo-server --host {} --port {}", peer.ip(), peer.port())),
        ));
        findings.extend(self_test(stop)?);
    } else {
        findings.push(check_run("ping", &ping, &against));
        let flood = quick_run(target, MeasureMode::Flood { window: 32 }, stop)?;
        findings.push(check_run("flood", &flood, &against));
    }
    if let (Some(before), Some(after)) = (before, snmp::read_udp()) {
        findings.push(snmp_finding(&before, &after));
    }
    Ok(findings)
}

fn buffer_finding(size: &net::BufferSize) -> Finding {
    match size.clamp_warning() {
        Some(w) => finding(
            Severity::Action,
            "buffers",
            w,
            Some("raise the sysctl above, or ask for less".into()),
        ),
        None => finding(Severity::Ok, "buffers", size.to_string(), None),
    }
}

fn snmp_finding(before: &[(String, u64)], after: &[(String, u64)]) -> Finding {
    let delta = |name: &str| {
        snmp::get(after, name)
            .unwrap_or(0)
            .saturating_sub(snmp::get(before, name).unwrap_or(0))
    };
    let totals = [
        "InDatagrams",
        "OutDatagrams",
        "NoPorts",
        "InErrors",
        "RcvbufErrors",
        "SndbufErrors",
        "InCsumErrors",
    ]
    .iter()
    .map(|n| format!("{n} {}", snmp::get(after, n).unwrap_or(0)))
    .collect::<Vec<_>>()
    .join(", ");
    let (rcvbuf, csum) = (delta("RcvbufErrors"), delta("InCsumErrors"));
    if rcvbuf > 0 || csum > 0 {
        finding(
            Severity::Note,
            "counters",
            format!(
                "host UDP counters (/proc/net/snmp): {totals}; during these checks {rcvbuf} datagrams were dropped for full receive buffers and {csum} for bad checksums, host-wide"
            ),
            Some(
                "full receive buffers: raise net.core.rmem_max and the buffers of the busy sockets"
                    .into(),
            ),
        )
    } else {
        finding(
            Severity::Ok,
            "counters",
            format!(
                "host UDP counters (/proc/net/snmp): {totals}; no receive-buffer or checksum drops during these checks"
            ),
            None,
        )
    }
}

/// One second of ping or flood.
fn quick_run(target: &Target, mode: MeasureMode, stop: &Stop) -> Result<RunSummary> {
    let config = MeasureConfig {
        mode,
        size: 64,
        timeout: target.timeout.min(Duration::from_secs(1)),
        duration: Duration::from_secs(1),
        flows: 1,
        stamp: None,
        tos: None,
    };
    measure::measure(target, &config, stop, &mut |_| {}, &mut |_| {})
}

/// Starts an echo server on 127.0.0.1 in this process and checks the host
/// against it: whether this host's UDP stack itself is healthy.
fn self_test(stop: &Stop) -> Result<Vec<Finding>> {
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        family: net::Family::Any,
        recv_buf: None,
        send_buf: None,
        stop_on_empty: StopPolicy::Never,
        batch: DEFAULT_BATCH,
        gro: true,
        threads: 1,
        stats_interval: None,
        guard: GuardConfig::default(),
        exclusive: false,
        interface: None,
        stamp: None,
        stamp_ecn: Default::default(),
    };
    // Its start-up report stays unlogged, and its per-datagram lines off even
    // at -v: they would drown the doctor's own.
    let server = Server::bind(&config)?.without_datagram_log();
    let addr = server.local_addr();
    let server_stop = Stop::new();
    std::thread::scope(|scope| {
        let flag = server_stop.clone();
        let handle = scope.spawn(move || server.run(&flag));
        let target = Target {
            host: addr.ip().to_string(),
            port: addr.port(),
            family: net::Family::Any,
            bind: None,
            recv_buf: None,
            send_buf: None,
            timeout: Duration::from_secs(1),
            interface: None,
        };
        let against = format!("against an in-process server on {addr}");
        let result = (|| {
            let ping = quick_run(
                &target,
                MeasureMode::Ping {
                    count: Some(10),
                    interval: Duration::from_millis(100),
                },
                stop,
            )?;
            let flood = quick_run(&target, MeasureMode::Flood { window: 32 }, stop)?;
            Ok(vec![
                check_run("ping", &ping, &against),
                check_run("flood", &flood, &against),
            ])
        })();
        server_stop.request();
        let _ = handle.join();
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_rmem_max_is_a_note_with_the_sysctl() {
        let limits = Limits {
            rmem_max: Some(212992),
            wmem_max: Some(212992),
            somaxconn: Some(4096),
            ..Limits::default()
        };
        let f = check_limits(&limits);
        let rmem = f.iter().find(|f| f.topic == "rmem_max").unwrap();
        assert_eq!(rmem.severity, Severity::Note);
        assert!(
            rmem.fix
                .as_ref()
                .unwrap()
                .contains("sysctl -w net.core.rmem_max=4194304")
        );
        let somax = f.iter().find(|f| f.topic == "somaxconn").unwrap();
        assert!(somax.text.contains("not used by UDP"));
        assert!(f.iter().all(|f| f.severity != Severity::Action));
    }

    fn holder(inode: u64) -> udp_table::UdpSocketEntry {
        udp_table::UdpSocketEntry {
            local: "127.0.0.1:9999".parse().unwrap(),
            uid: 1000,
            inode,
            drops: 0,
        }
    }

    #[test]
    fn two_holders_of_the_port_need_action() {
        let target: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        assert_eq!(check_holders(target, &[holder(1)]).severity, Severity::Ok);
        let shared = check_holders(target, &[holder(1), holder(2)]);
        assert_eq!(shared.severity, Severity::Action);
        assert!(shared.text.contains("held by 2 sockets"), "{}", shared.text);
        assert!(shared.fix.unwrap().contains("--exclusive"));
    }
}
