//! The batched loop (`--no-gro`, or no GRO here): `recvmmsg` in, `sendmmsg` out.

use std::net::UdpSocket;
use std::time::SystemTime;

use super::{EchoVerdict, LoopState, reply_tos, stamp};

/// The batched loop: one `recvmmsg` takes what is queued (up to the batch size),
/// one `sendmmsg` echoes it, each datagram with its request's DSCP (and, on a
/// wildcard socket, from its request's destination: `Batch::reply_from_destination`). Datagrams
/// before a stop datagram in the same batch are still echoed; those after it
/// were read too, and are counted as taken after the stop, not echoed.
pub(super) fn batched_loop(
    socket: &UdpSocket,
    state: &mut LoopState<'_>,
    batch: &mut crate::sys::Batch,
) {
    // Per slot: `Some(TOS to send with)`, or `None` for no echo.
    let mut keep: Vec<Option<u8>> = vec![None; batch.capacity()];
    let stamp = state.reflector.is_some();
    while !state.stopping() {
        let Some(received) = state.received(batch.recv(socket)) else {
            continue;
        };
        // STAMP's receive time where the kernel stamps none: right after the call.
        let received_at = stamp.then(SystemTime::now);
        state.tick();
        for i in 0..received {
            if let (data, Some(source)) = batch.datagram(i) {
                state.prefetch(data, source);
            }
        }
        let mut end = received;
        for (i, slot) in keep.iter_mut().enumerate().take(received) {
            let (data, source) = batch.datagram(i);
            *slot = match source {
                Some(source) => match state.inspect(data, source) {
                    EchoVerdict::Echo => Some(reply_tos(batch.tos(i))),
                    EchoVerdict::Drop => None,
                    EchoVerdict::Stop => {
                        end = i;
                        break;
                    }
                },
                None => None,
            };
        }
        if let Some(fallback) = received_at {
            stamp::reflect_slots(socket, state, batch, &mut keep, end, fallback);
        }
        let outcome = batch.echo(socket, |i| if i < end { keep[i] } else { None });
        if stamp {
            let kept = (0..end).filter(|&i| keep[i].is_some()).map(|i| (i, 0..1));
            // A refusal, or a reply sent again without its source: the
            // kernel's transmit-stamp count is in doubt.
            let failed = outcome.errors + outcome.source_refused > 0;
            state.tx_sent(socket, kept, failed);
        }
        state.echoed(outcome.sent, outcome.bytes, || {
            (0..end)
                .filter(|&i| keep[i].is_some())
                .filter_map(|i| match batch.datagram(i) {
                    (data, Some(source)) => Some((data.len(), source)),
                    (_, None) => None,
                })
        });
        state.unsourced(&outcome);
        state.batch_send_failed(&outcome);
        if end < received {
            state.taken_after_stop((end + 1..received).map(|i| batch.datagram(i).0.len()));
            state.publish();
            break;
        }
        state.publish();
    }
    state.publish();
}
