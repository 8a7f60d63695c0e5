//! What every datagram gets, whichever loop moved it: the own-socket check,
//! the guard's rules and rate limit, the stop policy and the loop detector
//! ([`LoopState::inspect`]), and the throttled warnings of what they drop.

use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, warn};

use super::throttle::suppressed_note;
use super::{DEBUG_PAYLOAD_BYTES, EchoVerdict, LoopState};
use crate::logging::escape_payload;
use crate::server::guard::loop_detect::{LoopVerdict, is_known_reply};
use crate::server::guard::{Decision, DropReason};

impl LoopState<'_> {
    /// Whether `source` is one of this server's wildcard sockets on another
    /// address of this host (the rules see the bound addresses themselves).
    /// One port comparison for any other source.
    #[inline]
    pub(super) fn is_own_socket(&mut self, source: SocketAddr) -> bool {
        match &mut self.locals {
            Some(locals) => locals.is_own_socket(source, self.now_ns),
            None => false,
        }
    }

    /// The guard's verdict: the stateless rules (asked once per run of
    /// datagrams from one source), then the source's token bucket.
    pub(super) fn guard(&mut self, source: SocketAddr) -> Decision {
        let rules = match self.last_rules {
            Some((last, decision)) if last == source => decision,
            _ => {
                let decision = self.context.rules.check(source);
                self.last_rules = Some((source, decision));
                decision
            }
        };
        match (rules, self.context.limiter) {
            (Decision::Echo, Some(limiter)) if !limiter.allow_at(source.ip(), self.now_ns) => {
                Decision::Drop(DropReason::RateLimited)
            }
            (decision, _) => decision,
        }
    }

    /// Books a dropped datagram, with a debug line at most once per interval.
    pub(super) fn dropped(&mut self, reason: DropReason, len: usize, source: SocketAddr) {
        self.counters.dropped[reason.index()] += 1;
        if self.debug {
            if let Some(suppressed) = self.drop_log.allow() {
                debug!(
                    "drop {len} bytes from {source}: {reason}{}",
                    suppressed_note(suppressed)
                );
            }
        }
    }

    #[cold]
    pub(super) fn warn_own_socket(&mut self, source: SocketAddr) {
        if let Some(suppressed) = self.loop_log.allow() {
            warn!(
                "datagram from {source} at {}: this server's own port on an address of this host, not answered, it would echo to itself for ever{}",
                self.context.local,
                suppressed_note(suppressed)
            );
        }
    }

    #[cold]
    pub(super) fn warn_reply(&mut self, source: SocketAddr) {
        if let Some(suppressed) = self.loop_log.allow() {
            warn!(
                "STAMP/TWAMP reply from {source}: not echoed, a reflector and an echo would answer each other for ever (--no-loop-detect turns this off){}",
                suppressed_note(suppressed)
            );
        }
    }

    #[cold]
    pub(super) fn warn_loop(&mut self, source: SocketAddr, silent_for: Duration) {
        if let Some(suppressed) = self.loop_log.allow() {
            warn!(
                "echo loop with {source}: it keeps sending back what it was sent (or near-copies of it); not answering it for {} s (--no-loop-detect turns this off){}",
                silent_for.as_secs(),
                suppressed_note(suppressed)
            );
        }
    }

    /// Before a batch is inspected: lets the loop detector start loading
    /// what it will read for each datagram (see [`LoopDetector::prefetch`]).
    #[inline]
    pub(super) fn prefetch(&self, data: &[u8], source: SocketAddr) {
        if let Some(loops) = &self.loops {
            loops.prefetch(source, data);
        }
    }

    /// Counts a received datagram and decides its fate.
    pub(super) fn inspect(&mut self, data: &[u8], source: SocketAddr) -> EchoVerdict {
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += data.len() as u64;
        if self.debug {
            debug!(
                "recv {} bytes from {source}: {}",
                data.len(),
                escape_payload(data, DEBUG_PAYLOAD_BYTES)
            );
        }
        if self.is_own_socket(source) {
            self.warn_own_socket(source);
            self.dropped(DropReason::BadSource, data.len(), source);
            return EchoVerdict::Drop;
        }
        if let Decision::Drop(reason) = self.guard(source) {
            self.dropped(reason, data.len(), source);
            return EchoVerdict::Drop;
        }
        if data.is_empty() && self.context.policy.stops(&source) {
            self.counters.stopped_by = Some(source);
            self.context.stop.request();
            return EchoVerdict::Stop;
        }
        // Last: the detector records what it lets through as echoed.
        if let Some(loops) = &mut self.loops {
            if is_known_reply(data, self.unix_secs) {
                self.warn_reply(source);
                self.dropped(DropReason::Loop, data.len(), source);
                return EchoVerdict::Drop;
            }
            if let LoopVerdict::Loop { first, silent_for } = loops.check(source, data, self.now_ns)
            {
                if first {
                    self.warn_loop(source, silent_for);
                }
                self.dropped(DropReason::Loop, data.len(), source);
                return EchoVerdict::Drop;
            }
        }
        EchoVerdict::Echo
    }
}
