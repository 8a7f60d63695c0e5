//! The plain loop (`--batch 1`): one datagram per receive and per send.

use std::net::UdpSocket;
use std::time::SystemTime;

use super::{EchoVerdict, LoopState, reply_tos};
use crate::net;

/// The plain echo loop: one `recv_from` and one `send_to` per datagram (`--batch 1`);
/// on a wildcard socket each reply leaves from its request's destination.
/// Allocates nothing per datagram; the socket's read timeout lets it see `stop`.
/// With `--stamp` it sends the reflector's reply, built over the request.
pub(super) fn plain_loop(socket: &UdpSocket, state: &mut LoopState<'_>) {
    let mut buf = vec![0u8; net::RECV_BUFFER_LEN];
    let stamp = state.reflector.is_some();
    while !state.stopping() {
        let Some((len, source, meta)) = state.received(crate::sys::recv_from_meta(
            socket,
            &mut buf,
            state.reply_source,
        )) else {
            continue;
        };
        // STAMP's receive time stamp: right after the syscall.
        let received = stamp.then(SystemTime::now);
        // The loop detector's table lines are cold after a syscall: start
        // loading them now, to arrive while the clock is read and the
        // rules run.
        state.prefetch(&buf[..len], source);
        state.tick();
        match state.inspect(&buf[..len], source) {
            EchoVerdict::Echo => {}
            EchoVerdict::Drop => continue,
            EchoVerdict::Stop => break,
        }
        // The request's DSCP goes back on the reply; ECN is not copied (Not-ECT).
        let (tos, to) = match received {
            None => (reply_tos(meta.tos), source),
            Some(received) => {
                let arrival = crate::stamp::Arrival {
                    received,
                    tos: meta.tos,
                    ttl: meta.ttl,
                    destination: meta.destination,
                };
                let transmit = SystemTime::now();
                match state.reflect(socket, &mut buf[..len], source, &arrival, transmit, (0, 0)) {
                    // A Return Path the operator allows may send it elsewhere.
                    Some((tos, to)) => (tos, to.unwrap_or(source)),
                    None => continue,
                }
            }
        };
        // A wildcard socket: from the address asked (`meta.reply_source`).
        let sent = state.send_one(socket, &buf[..len], to, tos, meta.reply_source);
        if stamp {
            state.tx_sent(socket, std::iter::once((0, 0..1)), !sent);
        }
        state.publish();
    }
    state.publish();
}
