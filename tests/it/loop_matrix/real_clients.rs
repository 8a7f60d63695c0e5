//! What real clients do is never cut as a loop, and STAMP requests stamped
//! now are not taken for replies.

use super::*;

/// Runs `program` with `args` (bounded by timeout(1)) and waits for it.
fn run_bounded(program: &str, args: &[&str], limit_secs: u32) -> bool {
    Command::new("timeout")
        .arg(limit_secs.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn nothing_a_real_client_does_is_cut() {
    // Our client's flood and rate modes, one second each.
    for (mode, args) in [
        ("flood", &["-f", "-w", "32", "-D", "1"][..]),
        ("rate", &["-r", "100000", "-D", "1"]),
    ] {
        let server = start_server(&["--port", "0"]);
        let port = server.addr.port().to_string();
        let mut all = vec!["-H", "127.0.0.1", "-p", &port, "-q"];
        all.extend_from_slice(args);
        run_bounded(CLIENT, &all, 10);
        let row = Row::of(stop(server));
        eprintln!(
            "| client {mode} | - | IPv4 | {} | {} | {} |",
            row.received, row.echoed, row.loops
        );
        assert!(row.echoed >= 1_000, "{mode}: {}", row.stderr);
        assert_eq!(row.loops, 0, "{mode}: {}", row.stderr);
    }
    // A constant payload with a counter at window 1 (sockperf's ping-pong):
    // 20,000 round trips, every one answered.
    let server = start_server(&["--port", "0"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.connect(server.addr).unwrap();
    let mut payload = [b'p'; 64];
    let mut buf = [0u8; 128];
    for n in 0..20_000u64 {
        payload[..8].copy_from_slice(&n.to_le_bytes());
        socket.send(&payload).unwrap();
        let got = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("round trip {n}: {e}"));
        assert_eq!(&buf[..got], &payload[..]);
    }
    let row = Row::of(stop(server));
    eprintln!(
        "| ping-pong, constant payload | 1 | IPv4 | {} | {} | {} |",
        row.received, row.echoed, row.loops
    );
    assert_eq!(row.echoed, 20_000);
    assert_eq!(row.loops, 0);
    // The C load generator of bench/ (UDP_ECHO_LOADGEN_C names another),
    // when gcc can build it.
    let source = std::env::var("UDP_ECHO_LOADGEN_C")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/loadgen.c")
        });
    let binary = std::env::temp_dir().join(format!("udp-echo-loadgen-{}", std::process::id()));
    let built = source.is_file()
        && run_bounded(
            "gcc",
            &[
                "-O2",
                "-o",
                binary.to_str().unwrap(),
                source.to_str().unwrap(),
            ],
            60,
        );
    if !built {
        skip("loadgen: no loadgen.c or no gcc");
        return;
    }
    for window in ["1", "32"] {
        let server = start_server(&["--port", "0"]);
        let port = server.addr.port().to_string();
        run_bounded(
            binary.to_str().unwrap(),
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--window",
                window,
                "--duration",
                "2",
                "--warmup",
                "0",
            ],
            15,
        );
        let row = Row::of(stop(server));
        eprintln!(
            "| loadgen, window {window} | {window} | IPv4 | {} | {} | {} |",
            row.received, row.echoed, row.loops
        );
        assert!(
            row.echoed >= 1_000,
            "loadgen window {window}: {}",
            row.stderr
        );
        assert_eq!(row.loops, 0, "loadgen window {window}: {}", row.stderr);
    }
    let _ = std::fs::remove_file(&binary);
}

#[test]
fn stamp_requests_time_stamped_now_are_not_replies() {
    // A STAMP session-sender's packet (MBZ where a reply has stamps) sent to
    // the plain echo comes back: the plain echo is a fine dumb reflector.
    let server = start_server(&["--port", "0"]);
    let socket = udp_client();
    let mut request = [0u8; 44];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ntp = (now.as_secs() + 2_208_988_800) << 32;
    request[4..12].copy_from_slice(&ntp.to_be_bytes());
    assert_eq!(echo(&socket, server.addr, &request), request);
    let row = Row::of(stop(server));
    assert_eq!(row.loops, 0);
}
