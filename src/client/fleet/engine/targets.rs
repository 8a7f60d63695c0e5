//! The engine's target set: a new set from the loader replaces the old one,
//! a target that did not change keeping its slot (books, counters), a new
//! one getting a slot, its books and its first send timer.

use super::*;

impl Engine {
    /// Replaces the targets with `set`: a target with the same string, labels
    /// and settings keeps its books and counters (its address may change);
    /// any other is new; those not in `set` stop, and their series leave.
    pub(crate) fn apply(&mut self, set: Vec<Resolved>) {
        let now = self.clock.now_ns();
        let mut by_target: HashMap<Arc<str>, u32> = HashMap::with_capacity(set.len());
        let mut by_addr: HashMap<SocketAddr, u32> = HashMap::with_capacity(set.len());
        let mut published = Vec::with_capacity(set.len());
        for r in set {
            if let Some(&other) = by_addr.get(&r.addr) {
                let other = self.slots[other as usize]
                    .as_ref()
                    .map_or("?", |s| &s.spec.target);
                log::warn!(
                    "target {:?} is {} as {other:?} is: not probed (replies could not be told apart)",
                    r.spec.target,
                    r.addr
                );
                continue;
            }
            let kept = self
                .by_target
                .get(r.spec.target.as_str())
                .copied()
                .filter(|&i| {
                    self.slots[i as usize]
                        .as_ref()
                        .is_some_and(|s| s.spec == r.spec)
                });
            let idx = match kept {
                Some(i) => {
                    let slot = self.slots[i as usize].as_mut().expect("kept slot");
                    slot.addr = r.addr;
                    i
                }
                None => match self.add(&r, now) {
                    Ok(i) => i,
                    Err(e) => {
                        log::error!("target {:?}: {e}", r.spec.target);
                        continue;
                    }
                },
            };
            let slot = self.slots[idx as usize].as_ref().expect("live slot");
            published.push(Arc::clone(&slot.metrics));
            by_target.insert(Arc::from(r.spec.target.as_str()), idx);
            by_addr.insert(r.addr, idx);
        }
        // Those no longer listed (or changed: replaced above) stop.
        for i in 0..self.slots.len() {
            let live = self.slots[i]
                .as_ref()
                .is_some_and(|s| by_target.get(s.spec.target.as_str()) == Some(&(i as u32)));
            if self.slots[i].is_some() && !live {
                self.slots[i] = None;
                self.generations[i] = self.generations[i].wrapping_add(1);
                self.free.push(i as u32);
            }
        }
        self.by_target = by_target;
        self.by_addr = by_addr;
        self.metrics.publish(published);
    }

    /// Starts probing a new target: its slot, books and first send.
    fn add(&mut self, r: &Resolved, now: u64) -> Result<u32> {
        self.socket_for(r.addr)?;
        let s = r.spec.settings;
        let codec = if s.stamp {
            Codec::Stamp(Box::new(StampCodec {
                mode: if self.stamp.key.is_some() {
                    Mode::Authenticated
                } else {
                    Mode::Open
                },
                key: self.stamp.key.clone(),
                format: self.stamp.format,
                ssid: self.stamp.ssid,
                origin_unix_ns: self.origin_unix_ns,
                cos: s.tos.map(|tos| ClassOfService {
                    dscp1: tos >> 2,
                    ..ClassOfService::default()
                }),
                follow_up: false,
                tlvs: Default::default(),
                // Read when the target starts: every packet of its session
                // says the same, so a reply's copy checks against one value.
                error_estimate: self
                    .stamp
                    .format
                    .error_estimate_of(crate::sys::kernel_clock()),
            }))
        } else {
            Codec::Echo
        };
        let interval_ns = nanos(s.interval).max(1);
        let timeout_ns = nanos(s.timeout);
        // Probes a target has out at once: those of one timeout, and one more.
        let in_flight = usize::try_from(timeout_ns / interval_ns + 2).unwrap_or(usize::MAX);
        let stamp = StampBooks::compact(&codec).map(Box::new);
        let mut books = Books::compact(codec, s.size, s.timeout, in_flight);
        let tx = match r.addr {
            SocketAddr::V4(_) => &self.tx4,
            SocketAddr::V6(_) => &self.tx6,
        };
        if tx.is_some() {
            books.ask_tx_stamps();
        }
        let slot = Slot {
            books,
            stamp,
            metrics: Arc::new(TargetMetrics::new(&r.spec, now)),
            spec: Arc::clone(&r.spec),
            addr: r.addr,
            generation: 0,
            interval_ns,
            timeout_ns,
            dscp_sent: s.tos.unwrap_or(0) >> 2,
        };
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 targets")
            }
        };
        let generation = self.generations[idx as usize];
        self.slots[idx as usize] = Some(Box::new(Slot { generation, ..slot }));
        self.schedule.push(Timer {
            due_ns: first_due(now, phase_ns(&r.spec.target, interval_ns), interval_ns),
            kind: Kind::Send,
            slot: idx,
            generation,
        });
        Ok(idx)
    }
}
