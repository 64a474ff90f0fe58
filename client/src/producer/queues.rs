//! The accumulator's queues: per topic, its partitions' open batch (being filled) and
//! sealed batches (waiting to be sent), and the partition choice (explicit, by key, or
//! sticky per KIP-480).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use runnel_protocol::builder::BatchBuilder;

use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::producer::delivery::Completer;
use crate::producer::idempotence::sequence_after;
use crate::producer::ProducerRecord;

pub(in crate::producer) type TopicPartition = (Arc<str>, i32);

pub(super) struct OpenBatch {
    pub(super) builder: BatchBuilder,
    /// The outcome every record of this batch waits on (record offset = base + index).
    pub(super) completer: Completer,
    pub(super) created: Instant,
    pub(super) memory_bytes: usize,
    /// Order of opening (see [`Accumulator::flush`]).
    pub(super) seq: u64,
}

/// A finished batch (compressed, CRC sealed) and the outcome its records wait on.
pub(in crate::producer) struct SealedBatch {
    pub partition: TopicPartition,
    pub bytes: Bytes,
    pub(super) completer: Completer,
    pub(super) records: usize,
    pub(super) memory_bytes: usize,
    pub(super) seq: u64,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// When the batch fails if not delivered: `delivery_timeout_ms` after it opened (its
    /// first record's `send`), as Java counts from the batch's creation.
    pub deadline: Instant,
    /// Why the last attempt failed (for the error at the deadline).
    pub last_error: Option<String>,
    /// An idempotent producer's base sequence for this batch (-1: not idempotent, or
    /// failed before it was numbered).
    pub base_sequence: i32,
}

impl SealedBatch {
    /// The batch's last sequence, when it has one.
    pub fn last_sequence(&self) -> Option<i32> {
        let records = i32::try_from(self.records).unwrap_or(i32::MAX);
        (self.base_sequence >= 0).then(|| sequence_after(self.base_sequence, records - 1))
    }

    /// The error a batch gets when its delivery deadline has passed.
    pub fn expired(&self, timeout_ms: u64) -> Error {
        Error::DeliveryTimeout {
            topic: self.partition.0.to_string(),
            partition: self.partition.1,
            timeout_ms,
            last_error: self
                .last_error
                .clone()
                .unwrap_or_else(|| "none, it was never sent".to_owned()),
        }
    }
}

/// Room beyond `batch_size_bytes` in a new batch's buffer: the record that crosses the
/// size (up to 64 KiB) is added before the batch is sealed, plus the batch header.
pub(super) const BATCH_SLACK_BYTES: usize = 64 * 1024 + 128;

/// One topic's partition queues, indexed by partition (dense: [`TopicQueues::choose`] keeps
/// indexes below the topic's partition count); `name` is shared by its batches. Everything a
/// record needs is here, so a record costs one map lookup under one lock.
pub(super) struct TopicQueues {
    pub(super) name: Arc<str>,
    pub(super) partitions: Vec<PartitionQueue>,
    /// The topic's partition count from the cluster's metadata (0: not known yet), valid
    /// while the cluster's topics generation is `generation`.
    pub(super) partition_count: i32,
    pub(super) generation: u64,
    /// Where keyless records without a partition go until that batch is sealed (KIP-480).
    pub(super) sticky: Option<i32>,
    /// Partitions that may hold a batch: the drain looks at these only.
    pub(super) pending: PendingPartitions,
}

impl TopicQueues {
    pub(super) fn new(name: Arc<str>) -> TopicQueues {
        TopicQueues {
            name,
            partitions: Vec::new(),
            partition_count: 0,
            generation: 0,
            sticky: None,
            pending: PendingPartitions::default(),
        }
    }

    /// The record's partition: its own, by key (murmur2), or the sticky one.
    pub(super) fn choose(&mut self, record: &ProducerRecord) -> Result<i32> {
        let count = self.partition_count.max(1);
        if let Some(partition) = record.partition {
            if !(0..count).contains(&partition) {
                return Err(Error::UnknownTopicOrPartition(format!(
                    "{}-{partition}",
                    record.topic
                )));
            }
            return Ok(partition);
        }
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        let sticky = *self.sticky.get_or_insert_with(|| random_below(count));
        Ok(sticky.min(count - 1))
    }

    /// The queue of `partition` (a valid index: [`choose`](Self::choose) keeps it below the
    /// partition count), created on first use, with the topic's name beside it. It is
    /// counted pending: every caller puts a batch or a record in it.
    pub(super) fn queue_mut(&mut self, partition: i32) -> Result<(&Arc<str>, &mut PartitionQueue)> {
        let index = usize::try_from(partition)
            .map_err(|_| Error::UnknownTopicOrPartition(format!("{}-{partition}", self.name)))?;
        if self.partitions.len() <= index {
            self.partitions
                .resize_with(index + 1, PartitionQueue::default);
        }
        self.pending.insert(index);
        Ok((&self.name, &mut self.partitions[index]))
    }

    /// Moves the sticky partition on once its batch was sealed (KIP-480).
    pub(super) fn advance_sticky(&mut self, sealed: i32) {
        if self.sticky == Some(sealed) {
            self.sticky = Some((sealed + 1) % self.partition_count.max(1));
        }
    }
}

#[derive(Default)]
pub(super) struct PartitionQueue {
    pub(super) open: Option<OpenBatch>,
    pub(super) sealed: VecDeque<SealedBatch>,
    /// Batches sent and not yet answered (at most `in_flight_per_partition_max`).
    pub(super) in_flight: usize,
    /// Idempotent: the base sequence of the next batch sealed (this epoch).
    pub(super) next_sequence: i32,
    /// Idempotent: the last sequence the broker acknowledged this epoch.
    pub(super) last_acked_sequence: Option<i32>,
}

impl PartitionQueue {
    /// Neither an open batch nor a sealed one: nothing for the drain.
    pub(super) fn is_idle(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty()
    }
}

/// A topic's partitions that may hold a batch, one bit per partition index: every queue
/// that is not idle is in it (a queue is entered as a batch or record goes in, and left by
/// the drain when it finds the queue idle). The drain walked every partition queue of a
/// topic per call, 5 % of a bench producing to 1 000 partitions at 5 000 msg/s with one or
/// two of them holding a batch; Java's `RecordAccumulator` checks per batch deque too, but
/// its deques exist only for partitions written to. A bitmap keeps the drain's order
/// (ascending partitions, as before) at a word per 64 partitions.
#[derive(Debug, Default)]
pub(super) struct PendingPartitions {
    words: Vec<u64>,
}

impl PendingPartitions {
    const WORD_BITS: usize = u64::BITS as usize;

    pub(super) fn insert(&mut self, index: usize) {
        let word = index / Self::WORD_BITS;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (index % Self::WORD_BITS);
    }

    #[cfg(test)]
    pub(super) fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / Self::WORD_BITS)
            .is_some_and(|word| word & (1 << (index % Self::WORD_BITS)) != 0)
    }

    /// How many words the bitmap has (each holds 64 partitions from `word * 64`).
    pub(super) fn word_count(&self) -> usize {
        self.words.len()
    }

    /// The partitions of word `word`, ascending.
    pub(super) fn in_word(&self, word: usize) -> impl Iterator<Item = usize> {
        let mut bits = self.words.get(word).copied().unwrap_or(0);
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(word * Self::WORD_BITS + bit)
        })
    }

    pub(super) fn remove(&mut self, index: usize) {
        if let Some(word) = self.words.get_mut(index / Self::WORD_BITS) {
            *word &= !(1 << (index % Self::WORD_BITS));
        }
    }
}

/// Topic queues by name. Every record looks its topic up here, and the default SipHash of
/// the name was 2 % of the bench producer's CPU (`hash_one` and `sip::Hasher::write`, one
/// producer, acks=1); foldhash is several times cheaper and still seeded per map, and topic
/// names are the application's own, not an attacker's.
pub(super) type Queues = HashMap<Arc<str>, TopicQueues, foldhash::fast::RandomState>;

/// A random partition below `count` (> 0), where a topic's sticky partitioning starts: random,
/// as Java's `BuiltInPartitioner`, so producers started in the same millisecond spread out
/// (the clock put them all on one partition). std's `RandomState` is seeded from the OS once
/// per thread and advanced per instance: random enough for spreading, without a dependency.
fn random_below(count: i32) -> i32 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let count = u64::try_from(count.max(1)).unwrap_or(1);
    i32::try_from(bits % count).unwrap_or(0)
}

#[cfg(test)]
mod pending_tests {
    use super::PendingPartitions;

    fn all(pending: &PendingPartitions) -> Vec<usize> {
        (0..pending.word_count())
            .flat_map(|word| pending.in_word(word))
            .collect()
    }

    #[test]
    fn partitions_come_back_ascending_across_words_and_leave_when_removed() {
        let mut pending = PendingPartitions::default();
        assert!(all(&pending).is_empty());
        for index in [999, 0, 64, 63, 65, 128] {
            pending.insert(index);
        }
        pending.insert(64);
        assert_eq!(all(&pending), vec![0, 63, 64, 65, 128, 999]);
        assert!(pending.contains(999) && !pending.contains(998) && !pending.contains(5_000));
        pending.remove(64);
        pending.remove(5_000);
        assert_eq!(all(&pending), vec![0, 63, 65, 128, 999]);
        assert!(!pending.contains(64));
    }
}

#[cfg(test)]
mod random_tests {
    #[test]
    fn a_sticky_start_is_below_the_count_and_varies() {
        let starts: std::collections::BTreeSet<i32> =
            (0..200).map(|_| super::random_below(64)).collect();
        assert!(starts.iter().all(|&p| (0..64).contains(&p)));
        assert!(starts.len() > 8, "{starts:?}");
        assert_eq!(super::random_below(1), 0);
    }
}
