//! [`OffsetMap`]: the cleaner's bounded key → latest offset map.
//!
//! Keys are stored as a 16-byte hash (two independent SipHash-1-3 halves over the key), so
//! an entry costs the same whatever the key size and the map's memory is bounded by its
//! entry count. A collision (2⁻¹²⁸ per pair) could drop a record of one key in favour of
//! another's later record; Kafka's cleaner accepts the same risk with MD5.
//! Thread-safety: plain data, owned by the one cleaner thread.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Memory one entry takes: 16-byte hash + 8-byte offset + the hash table's control byte and
/// load-factor slack, rounded up.
pub(crate) const OFFSET_MAP_ENTRY_BYTES: usize = 32;

/// The 16-byte hash of a record key.
pub(crate) fn key_hash(key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(salt);
        hasher.write(key);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The key is already a uniform hash: use its low 64 bits as the table hash.
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 ^= value as u64;
    }
}

/// key hash → latest offset seen, holding at most `entries_max` keys.
pub(crate) struct OffsetMap {
    entries: HashMap<u128, i64, BuildHasherDefault<PassThroughHasher>>,
    entries_max: usize,
}

impl OffsetMap {
    /// A map that fits in `memory_bytes` (at least one entry).
    pub(crate) fn with_memory_bytes(memory_bytes: usize) -> OffsetMap {
        OffsetMap {
            entries: HashMap::default(),
            entries_max: (memory_bytes / OFFSET_MAP_ENTRY_BYTES).max(1),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// New keys that can still be added.
    pub(crate) fn room_entries(&self) -> usize {
        self.entries_max - self.entries.len()
    }

    /// Records `offset` as the latest for `hash`.
    pub(crate) fn put(&mut self, hash: u128, offset: i64) {
        let full = self.entries.len() >= self.entries_max;
        match self.entries.get_mut(&hash) {
            // Offsets arrive in log order; `max` keeps a malformed batch (record deltas out of
            // order on disk) from making an older record look latest.
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                assert!(!full, "callers check room_entries before a batch");
                self.entries.insert(hash, offset);
            }
        }
    }

    pub(crate) fn get(&self, hash: u128) -> Option<i64> {
        self.entries.get(&hash).copied()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_within_its_bound() {
        let mut map = OffsetMap::with_memory_bytes(3 * OFFSET_MAP_ENTRY_BYTES);
        assert_eq!(map.room_entries(), 3);
        map.put(key_hash(b"a"), 1);
        map.put(key_hash(b"a"), 5);
        map.put(key_hash(b"b"), 6);
        assert_eq!(map.get(key_hash(b"a")), Some(5));
        assert_eq!(map.get(key_hash(b"c")), None);
        assert_eq!((map.len(), map.room_entries()), (2, 1));
        assert_ne!(key_hash(b"ab"), key_hash(b"ba"));
        map.clear();
        assert_eq!(map.room_entries(), 3);
    }
}
