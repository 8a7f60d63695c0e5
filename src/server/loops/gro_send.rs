//! The send side of the GRO loop, shared by its echo and STAMP paths: the
//! marks of the datagrams the guard dropped in a buffer, and the runs of kept
//! datagrams queued for `sendmmsg` with `UDP_SEGMENT` (GSO) and sent.

use std::io;
use std::net::UdpSocket;
use std::ops::Range;

use log::warn;

use super::LoopState;
use crate::sys::{GRO_BUFFER_LEN, GroBatch};

/// Datagrams the guard dropped in the buffer at hand, one bit each (a 64 KiB
/// buffer holds at most 65,536 of them, of one byte). Allocated once per loop;
/// only the words a buffer used are cleared after it.
pub(super) struct DropMarks(Vec<u64>);

impl DropMarks {
    pub(super) fn new() -> Self {
        DropMarks(vec![0; GRO_BUFFER_LEN.div_ceil(64)])
    }

    pub(super) fn mark(&mut self, k: usize) {
        self.0[k / 64] |= 1 << (k % 64);
    }

    pub(super) fn is_marked(&self, k: usize) -> bool {
        self.0[k / 64] & (1 << (k % 64)) != 0
    }

    /// Clears the marks of datagrams `0..datagrams`.
    pub(super) fn clear(&mut self, datagrams: usize) {
        self.0[..datagrams.div_ceil(64)].fill(0);
    }
}

/// Queues datagrams `run` of buffer `slot` for echo with TOS `tos`,
/// flushing whenever the batch's send list fills up.
pub(super) fn echo_run(
    socket: &UdpSocket,
    state: &mut LoopState<'_>,
    batch: &mut GroBatch,
    slot: usize,
    mut run: Range<usize>,
    tos: u8,
) {
    while !run.is_empty() {
        run.start += batch.queue(slot, run.clone(), tos);
        if !run.is_empty() {
            flush(socket, state, batch);
        }
    }
}

/// Sends what is queued and books it: echoes, refusals, and GSO's refusal,
/// which the batch reports once (it sends datagram by datagram from then on).
pub(super) fn flush(socket: &UdpSocket, state: &mut LoopState<'_>, batch: &mut GroBatch) {
    let outcome = batch.flush(socket);
    if outcome.sent + outcome.errors > 0 || outcome.gso_refused.is_some() {
        // Kernel transmit stamps (STAMP Follow-Up Telemetry): one per message;
        // a refusal or a send again (without GSO, or its source): in doubt.
        let failed = outcome.errors + outcome.source_refused > 0 || outcome.gso_refused.is_some();
        state.tx_sent(socket, batch.queued_messages(), failed);
    }
    state.echoed(outcome.sent, outcome.bytes, || batch.queued_datagrams());
    if let Some(errno) = outcome.gso_refused {
        gso_refused(errno);
    }
    state.unsourced(&outcome);
    state.batch_send_failed(&outcome);
}

#[cold]
fn gso_refused(errno: i32) {
    warn!(
        "the kernel refuses UDP GSO sends on this socket ({}): echoing its datagrams one by one from now on",
        io::Error::from_raw_os_error(errno)
    );
}
