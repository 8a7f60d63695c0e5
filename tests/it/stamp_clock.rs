//! The STAMP error estimate's S bit and error, both roles, against what the
//! kernel says of this host's clock (`adjtimex(2)`, read here through libc
//! on our own): S set exactly when `STA_UNSYNC` is clear, the call does not
//! return `TIME_ERROR` and `maxerror` is within the documented bound; the
//! scale and multiplier the kernel's `esterror`, rounded up.

use crate::common;

use common::*;
use udp_echo::stamp::{MAX_SYNC_ERROR_US, Mode, ReflectedPacket, S_BIT, encode_error_us};

/// (synchronised, esterror µs) as the kernel says now.
fn kernel_says() -> (bool, u64) {
    // SAFETY: all-zero is a valid timex; modes 0 only reads the clock state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is live and writable for the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    assert!(state >= 0, "adjtimex: {}", std::io::Error::last_os_error());
    let synced = tx.status & libc::STA_UNSYNC == 0
        && state != libc::TIME_ERROR
        && (tx.maxerror as u64) <= MAX_SYNC_ERROR_US;
    (synced, tx.esterror as u64)
}

#[test]
fn the_reflectors_error_estimate_is_the_kernels_in_every_loop() {
    for batch in ["1", "32"] {
        let server = start_server(&["--stamp", "--batch", batch, "-H", "127.0.0.1", "-p", "0"]);
        let socket = udp_client();
        let before = kernel_says();
        let reply = echo(
            &socket,
            server.addr,
            &stamp_request(Mode::Open, 1, 44, None, 7),
        );
        let after = kernel_says();
        let got = ReflectedPacket::decode(Mode::Open, &reply).unwrap();
        let s = got.error_estimate & S_BIT != 0;
        assert!(
            s == before.0 || s == after.0,
            "--batch {batch}: S {s}, kernel {before:?} / {after:?}"
        );
        let error = got.error_estimate & 0x3fff;
        assert!(
            error == encode_error_us(before.1) || error == encode_error_us(after.1),
            "--batch {batch}: error {error:#x}, kernel esterror {} / {} µs",
            before.1,
            after.1
        );
    }
}

#[test]
fn the_sender_reports_both_clocks() {
    let server = start_server(&["--stamp", "-H", "127.0.0.1", "-p", "0"]);
    let port = server.addr.port().to_string();
    let (synced, esterror) = kernel_says();
    let run = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "3",
            "-i",
            "0.01",
            "--json",
        ],
        None,
    );
    let json = json_of(&run);
    assert_eq!(json["received"], 3, "{json}");
    assert_eq!(json["sender_clock_synchronized"], synced, "{json}");
    assert_eq!(json["reflector_clock_synchronized"], synced, "{json}");
    let expected = udp_echo::stamp::error_estimate_us(encode_error_us(esterror));
    assert_eq!(json["sender_clock_error_us"], expected, "{json}");
    assert_eq!(json["reflector_clock_error_us"], expected, "{json}");
    let text = run_client(
        &[
            "--stamp",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "2",
            "-i",
            "0.01",
        ],
        None,
    );
    let out = text.stdout_text();
    let claim = if synced { "claims" } else { "does not claim" };
    assert!(
        out.contains(&format!(
            "this sender {claim} a synchronised clock (S bit {}",
            u8::from(synced)
        )),
        "{out}"
    );
}
