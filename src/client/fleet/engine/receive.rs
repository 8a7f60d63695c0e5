//! The engine's receive side: transmit stamps from the error queue, replies
//! in batches booked to their targets by source address, and the kernel's
//! drop counter; and [`TxRing`], which names the probe behind each stamp.

use super::*;
use crate::client::measure::codec::book_reply;

impl Engine {
    /// Takes every reply queued on the sockets, each socket's transmit
    /// stamps first: a stamp is queued during its send, so every reply in
    /// hand finds its probe's stamp booked.
    pub(super) fn receive(&mut self) {
        for v6 in [false, true] {
            self.take_tx_stamps(v6);
            // Bounded: a flood of datagrams cannot keep the thread from sending.
            for _ in 0..64 {
                let socket = if v6 { &self.v6 } else { &self.v4 };
                let Some(socket) = socket else { break };
                match self.inbox.recv_queued(socket) {
                    Ok(n) => self.book(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP errors are not reported on an unconnected
                        // socket; anything else is logged and survived.
                        log::debug!("fleet: receive failed: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Books the transmit stamps queued on one socket's error queue (none
    /// without blocking). Read every round, not only when one is awaited: a
    /// queued stamp makes `poll` return at once, so one left there would spin.
    fn take_tx_stamps(&mut self, v6: bool) {
        let (socket, tx) = if v6 {
            (&self.v6, &mut self.tx6)
        } else {
            (&self.v4, &mut self.tx4)
        };
        let (Some(socket), Some(tx)) = (socket, tx) else {
            return;
        };
        let (slots, clock) = (&mut self.slots, &self.clock);
        let mut pair = None;
        let read = sys::read_tx_timestamps(socket, &mut |key, kernel_ns| {
            let Some((i, generation, seq)) = tx.probe(key) else {
                return;
            };
            let Some(slot) = slots
                .get_mut(i as usize)
                .and_then(Option::as_mut)
                .filter(|s| s.generation == generation)
            else {
                return;
            };
            let (now, realtime_now) = *pair.get_or_insert_with(|| clock_pair(clock));
            slot.books
                .tx_stamp(seq, 1, kernel_at(now, realtime_now, kernel_ns));
        });
        if let Err(e) = read {
            log::debug!("fleet: reading transmit stamps failed: {e}");
        }
    }

    /// Books the `n` datagrams of the last receive.
    fn book(&mut self, n: usize) {
        let (now, realtime_now) = clock_pair(&self.clock);
        for k in 0..n {
            let (data, source) = self.inbox.datagram(k);
            let Some(&i) = source.and_then(|s| self.by_addr.get(&s)) else {
                self.metrics.process.replies_foreign.inc();
                continue;
            };
            let Some(slot) = self.slots[i as usize].as_mut() else {
                continue;
            };
            let (at, shared) = match self.inbox.rx_time_ns(k) {
                Some(kernel) => (kernel_at(now, realtime_now, kernel), false),
                None => (now, n > 1),
            };
            let tos = self.inbox.tos(k);
            let stamp = slot.stamp.as_deref_mut();
            let answer = book_reply(&mut slot.books, stamp, data, (at, shared), tos);
            let reply = answer.map(|answer| {
                let measured = answer.measured();
                Reply {
                    now_ns: now,
                    rtt_ns: measured.then_some(answer.rtt_ns),
                    dscp_changed: tos.is_some_and(|t| t >> 2 != slot.dscp_sent),
                }
            });
            publish(slot, reply);
        }
    }

    /// Moves the receive-drops counter to the kernel's count for our sockets.
    pub(super) fn read_drops(&mut self) {
        let inodes: Vec<u64> = [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .filter_map(udp_table::socket_inode)
            .collect();
        if let Some(drops) = udp_table::drops_of(&inodes) {
            let new = drops.saturating_sub(self.drops_seen);
            self.metrics.process.receive_drops.inc_by(new);
            self.drops_seen = self.drops_seen.max(drops);
        }
    }
}

/// Sends remembered by their transmit-stamp key (`OPT_ID`: the socket's
/// sends counted from 0): which target's which probe. A ring of the last
/// [`TX_KEYS`] sends, made once; a stamp read later than that is dropped
/// (its probe is timed from its send call).
pub(super) struct TxRing {
    next: u32,
    /// `(key, slot, generation, seq)` at `key % TX_KEYS`.
    ring: Vec<(u32, u32, u32, u64)>,
}

/// Sends a ring remembers: far more than one loop of the engine sends
/// (stamps are read every loop).
const TX_KEYS: usize = 4096;

impl TxRing {
    pub(super) fn new() -> TxRing {
        TxRing {
            next: 0,
            ring: vec![(u32::MAX, 0, 0, 0); TX_KEYS],
        }
    }

    /// Books one send: probe `seq` of the target in `slot` of `generation`.
    pub(super) fn sent(&mut self, slot: u32, generation: u32, seq: u64) {
        let key = self.next;
        self.ring[key as usize % TX_KEYS] = (key, slot, generation, seq);
        self.next = key.wrapping_add(1);
    }

    /// The probe the send numbered `key` carried, if still remembered.
    fn probe(&self, key: u32) -> Option<(u32, u32, u64)> {
        let (k, slot, generation, seq) = self.ring[key as usize % TX_KEYS];
        (k == key).then_some((slot, generation, seq))
    }
}
