//! `--probes` records in the books: one per settled probe and per extra
//! reply, kept in a buffer reserved once and handed out in batches.

use super::Books;
use crate::client::probes::{ProbeOutcome, ProbeRecord};

impl Books {
    /// Keeps a record of every settled probe and every extra reply from now
    /// on, for flow `flow` (the buffer is reserved once and reused).
    pub(crate) fn keep_records(&mut self, flow: u32, capacity: usize) {
        self.records = Some(Vec::with_capacity(capacity));
        self.flow = flow;
    }

    /// The records kept since the last call (none unless kept), moved into
    /// `into` (which is cleared first); the books keep the emptied buffer.
    pub(crate) fn take_records(&mut self, into: &mut Vec<ProbeRecord>) {
        into.clear();
        if let Some(records) = &mut self.records {
            std::mem::swap(records, into);
        }
    }

    /// How many records wait to be taken.
    pub(crate) fn records_waiting(&self) -> usize {
        self.records.as_ref().map_or(0, Vec::len)
    }

    /// Keeps the record of probe `seq`, when records are kept.
    pub(super) fn record(
        &mut self,
        seq: u64,
        sent_ns: Option<u64>,
        rtt_ns: u64,
        outcome: ProbeOutcome,
        (batch_timed, send_delay_ns): (bool, Option<u64>),
    ) {
        if let Some(records) = &mut self.records {
            records.push(ProbeRecord {
                seq,
                flow: self.flow,
                sent_ns,
                rtt_ns: (rtt_ns > 0).then_some(rtt_ns),
                outcome,
                batch_timed,
                send_delay_ns,
            });
        }
    }
}
