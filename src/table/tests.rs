//! The table alone: what it finds, what it evicts, that it never grows, and
//! against a plain model of one set per hash under random traffic.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// A table of `u64` keys (0 empty) holding a last-seen time.
type Table = SetTable<u64, u64, 4>;

/// Looks `key` up or claims it at `now`, ages by last seen; its slot's
/// index and whether it was claimed.
fn touch(t: &mut Table, key: u64, now: u64) -> (usize, bool) {
    let slot = t.find_or_claim(t.hash(u128::from(key), 0), key, |&seen| seen.max(1));
    *slot.value = now;
    (slot.index, slot.claimed)
}

#[test]
fn capacity_is_whole_sets_a_power_of_two_and_taken_at_once() {
    for (asked, got) in [(0, 4), (1, 4), (4, 4), (5, 8), (13, 16), (4096, 4096)] {
        let t = Table::new(asked);
        assert_eq!(t.capacity(), got, "asked {asked}");
        assert_eq!(t.len(), 0);
    }
    let t = SetTable::<u64, [u64; 3], 8>::new(4096);
    assert_eq!(t.memory_bytes(), 4096 * 32, "keys and values, nothing else");
}

#[test]
fn a_key_keeps_its_slot_and_a_new_one_takes_a_free_or_the_stalest() {
    // One set of four: every key lands in it.
    let mut t = Table::new(4);
    let first: Vec<(usize, bool)> = (1..=4).map(|k| touch(&mut t, k, 10 * k)).collect();
    assert!(first.iter().all(|&(_, claimed)| claimed));
    assert_eq!(t.len(), 4);
    for (k, &(index, _)) in (1..=4).zip(&first) {
        assert_eq!(touch(&mut t, k, 100 + k), (index, false));
    }
    // Key 1 was seen longest ago (101): the new key takes its slot.
    let (fifth, claimed) = touch(&mut t, 5, 200);
    assert_eq!((fifth, claimed), (first[0].0, true));
    assert_eq!(*t.value_mut(fifth), 200);
    assert!(touch(&mut t, 1, 201).1, "1 was evicted");
    assert_eq!(t.len(), 4, "never more than its capacity");
}

#[test]
fn an_age_of_zero_marks_a_slot_free_before_any_older_one() {
    let mut t = SetTable::<u64, u64, 4>::new(4);
    let h = |t: &Table, k: u64| t.hash(u128::from(k), 0);
    for k in 1..=4 {
        let hash = h(&t, k);
        *t.find_or_claim(hash, k, |&v| v).value = k;
    }
    // Key 3 counts as expired (age 0), though 1 and 2 are older.
    let hash = h(&t, 9);
    let slot = t.find_or_claim(hash, 9, |&v| if v == 3 { 0 } else { v });
    assert!(slot.claimed);
    assert_eq!(*slot.value, 0, "a claimed slot starts at the default");
    let hash = h(&t, 3);
    assert!(t.find_or_claim(hash, 3, |&v| v).claimed, "3 is gone");
}

#[test]
fn the_hash_is_keyed_per_table() {
    let (a, b) = (Table::new(64), Table::new(64));
    let differ = (0..64u128)
        .filter(|&k| a.hash(k, 7) != b.hash(k, 7))
        .count();
    assert!(
        differ > 60,
        "two secrets, two hashes ({differ} of 64 differ)"
    );
    assert_eq!(a.hash(5, 7), a.hash(5, 7));
    assert_ne!(a.hash(5, 7), a.hash(5, 8));
}

proptest! {
    /// Under any traffic the table agrees with a model that knows, per set,
    /// which keys are there and when each was last seen: a key present is
    /// found in its old slot, an absent one evicts the first stalest of its
    /// set, and no set holds more than its ways.
    #[test]
    fn the_table_agrees_with_a_model_of_its_sets(keys in proptest::collection::vec(1u64..40, 1..300)) {
        let mut t = Table::new(16);
        let sets = t.capacity() / 4;
        // key -> (slot index, last seen)
        let mut model: HashMap<u64, (usize, u64)> = HashMap::new();
        for (now, &key) in (1u64..).zip(&keys) {
            let set = t.hash(u128::from(key), 0) as usize % sets;
            let before = model.get(&key).copied();
            let (index, claimed) = touch(&mut t, key, now);
            prop_assert_eq!(index / 4, set);
            match before {
                Some((was, _)) => prop_assert_eq!((index, claimed), (was, false)),
                None => {
                    prop_assert!(claimed);
                    let in_set: Vec<(u64, usize, u64)> = model
                        .iter()
                        .filter(|(_, (i, _))| i / 4 == set)
                        .map(|(&k, &(i, seen))| (k, i, seen))
                        .collect();
                    if in_set.len() == 4 {
                        let stalest = in_set.iter().min_by_key(|(_, _, seen)| *seen).unwrap();
                        prop_assert_eq!(index, stalest.1);
                        model.remove(&stalest.0);
                    } else {
                        prop_assert!(in_set.iter().all(|(_, i, _)| *i != index));
                    }
                }
            }
            model.insert(key, (index, now));
            prop_assert_eq!(t.len(), model.len());
            prop_assert!(t.len() <= t.capacity());
        }
    }
}
