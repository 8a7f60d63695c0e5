//! Kernel transmit time stamps in ping and rate mode: round trips start as
//! the probe leaves the host (`rtt_send_clock` "kernel"), the host's own send
//! delay is reported per probe and as p50/p99, and the switch that turns the
//! stamps off falls back to the user-space send time and says so.

use crate::common;

use common::*;
use serde_json::Value;

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

fn n(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {json}"))
}

/// A scratch file for `--probes`, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(std::env::temp_dir().join(format!("udp-echo-{}-{name}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Ping `-c 20 -i 0.01 --json` with `--probes`, under `offload`: the summary
/// and the records.
fn ping_20(offload: &str, name: &str) -> (Value, Vec<Value>) {
    let server = start_server(&["--port", "0"]);
    let file = Scratch::new(name);
    let args = [
        "-H",
        "127.0.0.1",
        "-p",
        &port(server.addr),
        "-c",
        "20",
        "-i",
        "0.01",
        "--json",
        "--probes",
        file.0.to_str().unwrap(),
    ];
    let run = run_client_env(&args, &[("UDP_ECHO_CLIENT_OFFLOAD", offload)]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    let text = std::fs::read_to_string(&file.0).unwrap();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (json, records)
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn ping_starts_every_round_trip_at_the_kernels_transmit_stamp() {
    let (json, records) = ping_20("", "tx-ping.ndjson");
    assert_eq!(n(&json, "received"), 20, "{json}");
    assert_eq!(json["rtt_clock"], "kernel", "{json}");
    assert_eq!(json["rtt_send_clock"], "kernel", "{json}");
    assert_eq!(n(&json, "tx_stamp_missing"), 0, "{json}");
    let delay = &json["send_delay_us"];
    let (p50, p99) = (
        delay["p50"].as_f64().unwrap(),
        delay["p99"].as_f64().unwrap(),
    );
    let rtt_p50 = json["rtt_us"]["p50"].as_f64().unwrap();
    assert!(0.0 <= p50 && p50 <= p99, "{json}");
    // The send delay is one syscall's way down the stack; the round trip
    // (which starts after it) holds two of those and the server's wake-up.
    assert!(p50 <= rtt_p50, "{json}");
    assert_eq!(records.len(), 20);
    for r in &records {
        assert_eq!(r["outcome"], "answered", "{r}");
        let d = r["send_delay_us"].as_f64().unwrap_or_else(|| panic!("{r}"));
        assert!((0.0..1e6).contains(&d), "{r}");
    }
}

#[test]
fn without_transmit_stamps_ping_uses_the_user_space_send_time_and_says_so() {
    for offload in ["no-tx-time", "no-kernel-time"] {
        let (json, records) = ping_20(offload, "tx-off.ndjson");
        assert_eq!(n(&json, "received"), 20, "{offload}: {json}");
        assert_eq!(json["rtt_send_clock"], "user", "{offload}: {json}");
        assert!(json["send_delay_us"].is_null(), "{offload}: {json}");
        assert_eq!(n(&json, "tx_stamp_missing"), 0, "not asked: {json}");
        assert!(records.iter().all(|r| r["send_delay_us"].is_null()));
    }
}

#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn rate_mode_takes_transmit_stamps_too_and_flood_does_not() {
    let server = start_server(&["--port", "0"]);
    let p = port(server.addr);
    let base = [
        "-H",
        "127.0.0.1",
        "-p",
        &p,
        "-D",
        "0.5",
        "-t",
        "0.5",
        "--json",
    ];
    let mut args = base.to_vec();
    args.extend(["--rate", "5000"]);
    let run = run_client(&args, None);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let json = json_of(&run);
    let received = n(&json, "received");
    assert!(received > 1000, "{json}");
    assert_eq!(n(&json, "corrupt") + n(&json, "duplicates"), 0, "{json}");
    // Every stamp is queued during its send on loopback: none missing.
    assert_eq!(json["rtt_send_clock"], "kernel", "{json}");
    assert_eq!(n(&json, "tx_stamp_missing"), 0, "{json}");
    assert!(json["send_delay_us"]["p50"].as_f64().is_some(), "{json}");
    let mut args = base.to_vec();
    args.extend(["--flood", "-w", "16"]);
    let json = json_of(&run_client(&args, None));
    assert_eq!(json["rtt_send_clock"], "user", "{json}");
    assert!(json["send_delay_us"].is_null(), "{json}");
}

/// Over a real link (veth, between two namespaces) and not only loopback:
/// the device stamps every send too, and the round trips start there.
#[cfg(all(target_os = "linux", not(udp_echo_portable)))]
#[test]
fn ping_over_a_veth_link_gets_a_transmit_stamp_for_every_probe() {
    use crate::common::netns;
    let Some(net) = netns::test_net("transmit stamps over veth") else {
        return;
    };
    for server_ip in [netns::SERVER_V4, netns::SERVER_V6] {
        let server = start_server_via(
            &["ip", "netns", "exec", &net.server],
            &["--host", server_ip, "--port", "0"],
        );
        let p = port(server.addr);
        let args = [
            "-H", server_ip, "-p", &p, "-c", "20", "-i", "0.01", "--json",
        ];
        let run = run_client_in(&net.client, &args);
        assert_eq!(run.code(), Some(0), "{server_ip}: {}", run.stderr);
        let json = json_of(&run);
        assert_eq!(n(&json, "received"), 20, "{json}");
        assert_eq!(json["rtt_send_clock"], "kernel", "{json}");
        assert_eq!(json["rtt_clock"], "kernel", "{json}");
        assert_eq!(n(&json, "tx_stamp_missing"), 0, "{json}");
        assert!(json["send_delay_us"]["p50"].as_f64().is_some(), "{json}");
    }
}
