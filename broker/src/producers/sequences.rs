//! [`PartitionProducers`]: one partition's idempotent-producer state — per producer id, the
//! current epoch and the last [`BATCHES_PER_PRODUCER_MAX`] batches' sequence and offset
//! ranges — and the checks Kafka applies to an idempotent batch before appending it.
//!
//! Producers leave the table by time, as Kafka's: [`PartitionProducers::remove_expired`]
//! drops every producer idle for `producer.id.expiration.ms` (its caller runs it on a
//! timer and after a rebuild). [`PRODUCERS_PER_PARTITION_MAX`] stays as a memory backstop.
//!
//! Pure in-memory logic, no I/O, not thread-safe by itself: the owner
//! ([`super::PartitionEntry`]) keeps it behind a mutex held across check and append.

use std::collections::{HashMap, VecDeque};

use runnel_protocol::batch::RecordBatch;

/// Batches remembered per producer for duplicate detection: Kafka's producer keeps at most
/// 5 requests in flight per partition when idempotent, so a retry is one of the last 5.
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;

/// Producers tracked per partition, a memory backstop beside expiration by time
/// (`producer.id.expiration.ms`, which is how Kafka bounds the same table): beyond it the
/// least recently appending producer is forgotten (it becomes "unknown", whose next batch
/// is accepted at any sequence).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// What identifies an idempotent batch: producer id ≥ 0, epoch and its sequence range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// Last record's sequence, wrapped past `i32::MAX` to 0 as Kafka does.
    pub last_seq: i32,
}

impl BatchIdentity {
    /// `Ok(None)` for a batch without a producer id (not idempotent).
    pub fn of(batch: &RecordBatch) -> Result<Option<BatchIdentity>, SequenceError> {
        let producer_id = batch.producer_id();
        if producer_id < 0 {
            return Ok(None);
        }
        let first_seq = batch.base_sequence();
        let epoch = batch.producer_epoch();
        if first_seq < 0 || epoch < 0 {
            return Err(SequenceError::MissingSequence { producer_id });
        }
        Ok(Some(BatchIdentity {
            producer_id,
            epoch,
            first_seq,
            last_seq: wrapped_last_seq(first_seq, batch.last_offset_delta()),
        }))
    }
}

/// Where an earlier idempotent batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// Why an idempotent batch is refused (mapped to Kafka error codes by the API layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("batch of producer {producer_id} has a producer id but no sequence or epoch")]
    MissingSequence { producer_id: i64 },
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {got} does not follow {last} (epoch {epoch})")]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        /// The last sequence seen, or -1 when a new epoch must start at 0.
        last: i32,
        got: i32,
    },
}

/// One producer's epoch and recent batches (oldest first, never empty once created).
#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// `PartitionProducers::clock` at the last append, for least-recently-used eviction.
    last_used: u64,
    /// The last batch's max timestamp as stored (the append time on LogAppendTime topics).
    last_timestamp_ms: i64,
}

/// What DescribeProducers (KIP-664) shows of one tracked producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence appended at `epoch`, -1 when none was.
    pub last_seq: i32,
    pub last_timestamp_ms: i64,
}

/// Every tracked producer of one partition.
#[derive(Debug, Default)]
pub struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
    /// Counts appends; orders producers for eviction.
    clock: u64,
}

/// The verdict on a partition's batches: append them, or answer as for an earlier batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// A retry of a batch already in the log: nothing is appended.
    Duplicate(BatchMetadata),
}

impl PartitionProducers {
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Checks a partition's batches in order, as Kafka does: the first duplicate makes the
    /// whole append a duplicate; otherwise every idempotent batch must carry the current (or
    /// a newer) epoch and continue its producer's sequence, counting earlier batches of the
    /// same request.
    pub fn check(&self, batches: &[Option<BatchIdentity>]) -> Result<Verdict, SequenceError> {
        // Epoch and last sequence of producers already seen in this request.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for id in batches.iter().flatten() {
            let current = match pending.get(&id.producer_id) {
                Some(&(epoch, last_seq)) => Some((epoch, last_seq)),
                None => {
                    if let Some(duplicate) = self.find_duplicate(id) {
                        return Ok(Verdict::Duplicate(duplicate));
                    }
                    self.current(id.producer_id)
                }
            };
            check_one(id, current)?;
            pending.insert(id.producer_id, (id.epoch, id.last_seq));
        }
        Ok(Verdict::Append)
    }

    /// Every tracked producer, by producer id.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut producers: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| ActiveProducer {
                producer_id,
                epoch: entry.epoch,
                last_seq: entry.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: entry.last_timestamp_ms,
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        producers
    }

    /// Records an appended (or replayed from the log) batch at `base_offset` whose max
    /// timestamp, as stored, is `max_timestamp_ms`.
    pub fn record(
        &mut self,
        id: &BatchIdentity,
        base_offset: i64,
        last_offset: i64,
        max_timestamp_ms: i64,
    ) {
        debug_assert!(base_offset <= last_offset, "{base_offset} > {last_offset}");
        self.clock = self.clock.wrapping_add(1);
        if !self.producers.contains_key(&id.producer_id) {
            self.make_room();
        }
        let entry = self
            .producers
            .entry(id.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: id.epoch,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER_MAX),
                last_used: 0,
                last_timestamp_ms: max_timestamp_ms,
            });
        if id.epoch < entry.epoch {
            // Only replay of an odd log can get here (appends are checked first): keep the
            // newer epoch's state.
            return;
        }
        if id.epoch > entry.epoch {
            entry.epoch = id.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: id.first_seq,
            last_seq: id.last_seq,
            base_offset,
            last_offset,
        });
        entry.last_used = self.clock;
        entry.last_timestamp_ms = max_timestamp_ms;
        debug_assert!(entry.batches.len() <= BATCHES_PER_PRODUCER_MAX);
        debug_assert!(self.producers.len() <= PRODUCERS_PER_PARTITION_MAX);
    }

    /// Forgets every producer whose last batch's timestamp is `expiration_ms` or more
    /// before `now_ms`, and says how many. Follows Kafka's `ProducerStateManager.
    /// removeExpiredProducers` / `isProducerExpired` (`currentTimeMs - lastTimestamp >=
    /// producerIdExpirationMs`; there are no open transactions here to keep one alive). A
    /// forgotten producer is unknown: its next batch is accepted at any sequence.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        debug_assert!(expiration_ms > 0, "expiration {expiration_ms} ms");
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_timestamp_ms) < expiration_ms);
        debug_assert!(self.producers.len() <= before);
        before - self.producers.len()
    }

    fn find_duplicate(&self, id: &BatchIdentity) -> Option<BatchMetadata> {
        let entry = self.producers.get(&id.producer_id)?;
        if entry.epoch != id.epoch {
            return None;
        }
        let same = |b: &&BatchMetadata| b.first_seq == id.first_seq && b.last_seq == id.last_seq;
        entry.batches.iter().find(same).copied()
    }

    fn current(&self, producer_id: i64) -> Option<(i16, i32)> {
        let entry = self.producers.get(&producer_id)?;
        let last = entry.batches.back()?;
        Some((entry.epoch, last.last_seq))
    }

    /// Forgets the least recently appending producer when the table is full.
    fn make_room(&mut self) {
        if self.producers.len() < PRODUCERS_PER_PARTITION_MAX {
            return;
        }
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(id, _)| *id);
        if let Some(oldest) = oldest {
            self.producers.remove(&oldest);
        }
    }
}

/// Kafka's rules for one batch against its producer's `(epoch, last sequence)`; an unknown
/// producer (never seen, evicted, expired, or its batches gone by retention) is accepted at any
/// sequence and tracked from there, as Kafka does when it has no state for a producer.
fn check_one(id: &BatchIdentity, current: Option<(i16, i32)>) -> Result<(), SequenceError> {
    let Some((epoch, last_seq)) = current else {
        return Ok(());
    };
    if id.epoch < epoch {
        return Err(SequenceError::StaleEpoch {
            producer_id: id.producer_id,
            epoch: id.epoch,
            current: epoch,
        });
    }
    let (expected_ok, last) = if id.epoch > epoch {
        // A bumped epoch restarts the sequence.
        (id.first_seq == 0, -1)
    } else {
        (in_sequence(last_seq, id.first_seq), last_seq)
    };
    if expected_ok {
        return Ok(());
    }
    Err(SequenceError::OutOfOrder {
        producer_id: id.producer_id,
        epoch: id.epoch,
        last,
        got: id.first_seq,
    })
}

/// `next` follows `last`, wrapping from `i32::MAX` to 0.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The sequence of a batch's last record: sequences wrap from `i32::MAX` to 0.
pub fn wrapped_last_seq(first_seq: i32, last_offset_delta: i32) -> i32 {
    let last = i64::from(first_seq) + i64::from(last_offset_delta.max(0));
    let wrapped = if last > i64::from(i32::MAX) {
        last - i64::from(i32::MAX) - 1
    } else {
        last
    };
    i32::try_from(wrapped).unwrap_or(i32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "sequences_tests.rs"]
mod tests;
