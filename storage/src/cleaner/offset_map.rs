//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`), bounded by
//! `log.cleaner.dedupe.buffer.size`.
//!
//! Keys are stored as a 128-bit hash, as Kafka stores an MD5 digest: two distinct keys
//! colliding would make the cleaner drop the older one's latest value, which at 2^-128
//! per pair is accepted (Kafka accepts the same risk). The bound counts the memory a
//! `HashMap<u128, i64>` entry really takes (key, value, control byte and the table's
//! spare capacity), so the map never grows past its budget.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Bytes one entry costs in the hash table: 16 (hash) + 8 (offset), padded to 32 by the
/// u128 alignment, plus a control byte and ~1/8 spare capacity.
pub const OFFSET_MAP_ENTRY_BYTES: usize = 40;
/// Kafka's `log.cleaner.io.buffer.load.factor`: fill the map at most this far.
const LOAD_FACTOR: f64 = 0.9;

/// Key hash → offset of the latest record with that key in the dirty range.
pub struct OffsetMap {
    entries: HashMap<u128, i64>,
    entries_max: usize,
    /// Largest offset put so far (−1: none): the map covers offsets up to here.
    latest_offset: i64,
}

impl OffsetMap {
    /// A map that holds at most as many keys as fit in `buffer_bytes`.
    pub fn with_budget(buffer_bytes: u64) -> OffsetMap {
        let slots = (buffer_bytes / OFFSET_MAP_ENTRY_BYTES as u64) as f64;
        OffsetMap {
            entries: HashMap::new(),
            entries_max: ((slots * LOAD_FACTOR) as usize).max(1),
            latest_offset: -1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// How many more keys fit in the budget.
    pub fn free_entries(&self) -> usize {
        self.entries_max - self.entries.len()
    }
    pub fn entries_max(&self) -> usize {
        self.entries_max
    }

    /// Records `offset` as the latest for `key`. Offsets are put in increasing order.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        assert!(
            offset > self.latest_offset,
            "offsets go into the map in increasing order: {offset} after {}",
            self.latest_offset
        );
        let hash = key_hash(key);
        if !self.entries.contains_key(&hash) {
            assert!(
                self.entries.len() < self.entries_max,
                "the offset map is full"
            );
        }
        self.entries.insert(hash, offset);
        self.latest_offset = offset;
    }

    /// Marks every offset up to `offset` as covered (a batch was fully read).
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// The latest offset of `key`, if the map holds it.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&key_hash(key)).copied()
    }

    /// Largest offset the map covers (−1 when nothing was read).
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
}

/// Two SipHash-1-3 runs with fixed, different keys (std's `DefaultHasher::new()` is
/// deterministic) make a 128-bit digest.
fn key_hash(key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0x5a)) << 64) | u128::from(half(0xa5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_put_wins_and_the_budget_bounds_the_keys() {
        let mut map = OffsetMap::with_budget(10 * OFFSET_MAP_ENTRY_BYTES as u64);
        assert_eq!(map.entries_max(), 9);
        map.put(b"driver-1", 0);
        map.put(b"driver-2", 2);
        map.put(b"driver-1", 3);
        assert_eq!(map.get(b"driver-1"), Some(3));
        assert_eq!(map.get(b"driver-2"), Some(2));
        assert_eq!(map.get(b"driver-3"), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.free_entries(), 7);
        assert_eq!(map.latest_offset(), 3);
        map.update_latest_offset(10);
        assert_eq!(map.latest_offset(), 10);
        // Re-putting a known key never needs room.
        for offset in 11..20 {
            map.put(b"driver-1", offset);
        }
        assert_eq!(map.len(), 2);
    }

    #[test]
    #[should_panic(expected = "the offset map is full")]
    fn putting_a_new_key_into_a_full_map_is_a_bug() {
        let mut map = OffsetMap::with_budget(2 * OFFSET_MAP_ENTRY_BYTES as u64);
        map.put(b"a", 0);
        map.put(b"b", 1);
    }
}
