//! [`SetTable`]: the fixed-size, set-associative table behind the server's
//! per-source state (rate-limit buckets, loop-detection peers) and the STAMP
//! reflector's sessions — state kept per sender, where the senders are
//! whoever the network brings, spoofers included.
//!
//! What every such table must promise, written once here:
//!
//! - **Fixed memory**: every slot is taken at creation ([`SetTable::new`]);
//!   nothing is allocated after, whatever the traffic.
//! - **Constant work**: a key lives in one set of `WAYS` slots, picked by its
//!   hash, so a lookup scans one set, however many keys or spoofed sources.
//! - **No aiming**: [`SetTable::hash`] is keyed by a secret drawn per process,
//!   so no sender can choose keys that crowd one set and push out another's.
//! - **Eviction by the owner's rule**: a new key takes a free slot of its set
//!   or the stalest one, "stale" being the owner's age function (last seen,
//!   or 0 for an entry it counts as expired).
//!
//! Each set keeps its keys apart from its values and starts on a cache line,
//! so a lookup reads the keys' line(s), then the one value it found. Keys
//! compare exactly; `K::default()` marks an empty slot, so it must be no real
//! key (the owners use a never-zero hash, an inverted address, `None`).
//!
//! Everything on the per-datagram path is `#[inline]` and generic (const
//! `WAYS`, the age a closure): a caller compiles to the loop it would write
//! by hand. The hash is two 64×64→128-bit multiplies (wyhash's mixer).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// One set: `WAYS` keys, then their values, from a cache line's start.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Set<K, V, const WAYS: usize> {
    keys: [K; WAYS],
    values: [V; WAYS],
}

/// A key's slot in a [`SetTable`], as [`SetTable::find_or_claim`] returns it.
#[derive(Debug)]
pub(crate) struct Slot<'a, V> {
    /// Set × `WAYS` + way: the slot's place until a claim evicts it (see
    /// [`SetTable::value_mut`]).
    pub(crate) index: usize,
    /// True when the key was not there: the slot was free or evicted, and its
    /// value is now `V::default()`.
    pub(crate) claimed: bool,
    /// The key's value.
    pub(crate) value: &'a mut V,
}

/// Keys `K` with values `V` in sets of `WAYS` slots; a power of two of sets.
/// See the module docs.
#[derive(Debug)]
pub(crate) struct SetTable<K, V, const WAYS: usize> {
    sets: Box<[Set<K, V, WAYS>]>,
    /// Random per process: the key of [`SetTable::hash`].
    secret: [u64; 3],
}

impl<K: Copy + Eq + Default, V: Copy + Default, const WAYS: usize> SetTable<K, V, WAYS> {
    /// Room for at least `capacity` keys, rounded up to a power of two of
    /// whole sets (at least one), every slot empty; its memory is taken here.
    pub(crate) fn new(capacity: usize) -> Self {
        const { assert!(WAYS > 0, "a set has at least one way") };
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        let empty = Set {
            keys: [K::default(); WAYS],
            values: [V::default(); WAYS],
        };
        let random = RandomState::new();
        SetTable {
            sets: vec![empty; sets].into_boxed_slice(),
            secret: [0u8, 1, 2].map(|i| random.hash_one(i) | 1),
        }
    }

    /// How many keys the table holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// How many slots hold a key (a scan of the whole table: not per datagram).
    pub(crate) fn len(&self) -> usize {
        self.sets
            .iter()
            .flat_map(|set| &set.keys)
            .filter(|&&key| key != K::default())
            .count()
    }

    /// Bytes of the table: fixed at creation.
    #[cfg(test)]
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.sets)
    }

    /// The keyed hash of a key given as 128 bits and 64 more (an address
    /// and, say, a port): what picks its set. Keyed by the table's secret, so
    /// its sets cannot be aimed at.
    #[inline]
    pub(crate) fn hash(&self, bits: u128, extra: u64) -> u64 {
        let [a, b, c] = self.secret;
        mix(mix(bits as u64 ^ a, (bits >> 64) as u64 ^ b) ^ extra, c)
    }

    /// The keys of the set `hash` picks, to prefetch before a batch.
    #[inline]
    pub(crate) fn keys(&self, hash: u64) -> &[K; WAYS] {
        &self.sets[hash as usize & (self.sets.len() - 1)].keys
    }

    /// The slot of `key` in the set `hash` picks; when it is not there, the
    /// slot it now takes: the first of the set with the lowest age, an empty
    /// slot's age being 0, any other's `age(value)` (so an age of 0 marks an
    /// entry free to take, e.g. expired). A claimed slot holds `key` and
    /// `V::default()`.
    #[inline]
    pub(crate) fn find_or_claim(
        &mut self,
        hash: u64,
        key: K,
        age: impl Fn(&V) -> u64,
    ) -> Slot<'_, V> {
        let s = hash as usize & (self.sets.len() - 1);
        let set = &mut self.sets[s];
        if let Some(way) = set.keys.iter().position(|&k| k == key) {
            return Slot {
                index: s * WAYS + way,
                claimed: false,
                value: &mut set.values[way],
            };
        }
        let way = (0..WAYS)
            .min_by_key(|&w| {
                if set.keys[w] == K::default() {
                    0
                } else {
                    age(&set.values[w])
                }
            })
            .unwrap_or(0);
        set.keys[way] = key;
        set.values[way] = V::default();
        Slot {
            index: s * WAYS + way,
            claimed: true,
            value: &mut set.values[way],
        }
    }

    /// The value of `key` in the set `hash` picks, when it is there; never
    /// claims a slot.
    #[inline]
    pub(crate) fn find(&mut self, hash: u64, key: K) -> Option<&mut V> {
        let s = hash as usize & (self.sets.len() - 1);
        let set = &mut self.sets[s];
        let way = set.keys.iter().position(|&k| k == key)?;
        Some(&mut set.values[way])
    }

    /// The value in slot `index` (from [`find_or_claim`](Self::find_or_claim)).
    #[inline]
    pub(crate) fn value_mut(&mut self, index: usize) -> &mut V {
        &mut self.sets[index / WAYS].values[index % WAYS]
    }
}

/// The 128-bit product of `a` and `b`, folded to 64 bits (wyhash's mixer).
#[inline]
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests;
