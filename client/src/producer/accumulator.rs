//! Per-partition record queues: an open batch being filled and sealed batches waiting to be
//! sent. Records are encoded (and, when a batch fills, compressed) on the caller's task, so
//! producers in several tasks spread that work. Memory is bounded by a semaphore of
//! `buffer_memory_bytes` permits, taken per record and returned when its batch completes.
//! Every batch has a sequence number from its opening; `flush` waits for the batches
//! opened before it was called, not for the producer to fall idle.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_protocol::builder::{BatchBuilder, BatchFields, BuildError, NewHeader, NewRecord};
use tokio::sync::{Notify, Semaphore};

use super::delivery::{Completer, DeliveryFuture};
use super::idempotence::{sequence_after, sequence_is_after, Idempotence, Identity};
use super::{ProducerConfig, ProducerRecord};
use crate::cluster::{Cluster, MetadataWait};
use crate::error::{Error, Result};

#[path = "drain.rs"]
mod drain;
#[path = "queues.rs"]
mod queues;
use queues::{OpenBatch, PartitionQueue, Queues, TopicQueues, BATCH_SLACK_BYTES};
pub(super) use queues::{SealedBatch, TopicPartition};

/// The queues, the memory bound and the wake-ups between callers and the sender task.
pub(super) struct Accumulator {
    cluster: Arc<Cluster>,
    pub config: ProducerConfig,
    /// By topic name, so a record finds its queue without allocating a key.
    queues: Mutex<Queues>,
    memory: Semaphore,
    /// The sequence number the next batch opened gets.
    next_batch_seq: AtomicU64,
    /// Sequence numbers of batches opened and not yet completed or failed: at most one
    /// per record buffered, so bounded by `buffer_memory_bytes`. A batch is entered when it
    /// opens, under the queues' lock with its first record, so no record is ever buffered
    /// without being waited for by a later `flush`.
    incomplete_batches: Mutex<BTreeSet<u64>>,
    /// Non-zero while some caller is in `flush`: open batches are sent without lingering.
    pub flushing: AtomicUsize,
    /// Wakes the sender: a batch was sealed, opened, or a partition became sendable.
    pub wake_sender: Notify,
    /// Wakes flushers when records complete.
    completed: Notify,
    /// The producer id, epoch and sequence rules when idempotent.
    idempotence: Option<Idempotence>,
}

impl Accumulator {
    pub fn new(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        idempotence: Option<Idempotence>,
    ) -> Accumulator {
        Accumulator {
            cluster,
            memory: Semaphore::new(config.buffer_memory_bytes),
            config,
            queues: Mutex::default(),
            next_batch_seq: AtomicU64::new(0),
            incomplete_batches: Mutex::default(),
            flushing: AtomicUsize::new(0),
            wake_sender: Notify::new(),
            completed: Notify::new(),
            idempotence,
        }
    }

    pub fn idempotence(&self) -> Option<&Idempotence> {
        self.idempotence.as_ref()
    }

    /// Batches sent and not yet answered, over every partition.
    pub fn in_flight_total(&self) -> usize {
        // Counted when asked, under the queues' lock: only an epoch bump waiting for the
        // last answer asks, so the hot path keeps no counter of its own.
        let queues = self.queues();
        let partitions = queues.values().flat_map(|topic| &topic.partitions);
        partitions.map(|queue| queue.in_flight).sum()
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Buffer memory not held by records (tests check that each batch gave its back once).
    #[cfg(test)]
    pub fn memory_free_bytes(&self) -> usize {
        self.memory.available_permits()
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves memory, picks the partition and adds the record to its open batch.
    pub async fn append(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let memory_bytes = record.size_bytes();
        if memory_bytes > self.config.max_request_bytes {
            return Err(Error::RecordTooLarge {
                size_bytes: memory_bytes,
                max_bytes: self.config.max_request_bytes,
            });
        }
        // `max_block_ms` bounds the whole call, as Java's `max.block.ms` does: what waiting
        // for buffer room used is not available to waiting for metadata. The clock is read
        // only when the call has to wait (a read per record was 4 % of a producer's CPU at
        // a million records a second): `started` is when a wait for room began, or, when
        // there was room at once, when a wait for metadata begins, a push attempt later.
        let mut started = self.reserve(memory_bytes).await?;
        // At most two passes: a push given the count always goes through.
        let mut known = None;
        let (pushed, woke_sender) = loop {
            if let Some(pushed) = self.push(&record, known, memory_bytes) {
                break pushed;
            }
            // The topic's partition count is not known (or metadata changed): ask the
            // cluster, noting the generation before.
            let generation = self.cluster.topics_generation();
            let started = *started.get_or_insert_with(Instant::now);
            match self.partition_count(&record.topic, started).await {
                Ok(count) => known = Some((count, generation)),
                Err(e) => break (Err(e), false),
            }
        };
        if woke_sender {
            // The sender was just handed a batch (or a linger deadline). Woken from this
            // task, it waits in this worker's next-task slot — which other workers cannot
            // take — until this task yields, and a caller producing in a tight loop yields
            // only when memory runs out: sealed batches sat unsent while the other core
            // idled. Yielding once per batch lets the sender run now and this task move on
            // from the other worker.
            tokio::task::yield_now().await;
        }
        // The record's batch, if pushed, was counted as it opened: a caller dropped during
        // the yield above leaves nothing uncounted.
        match pushed {
            Ok(delivery) => Ok(delivery),
            Err(e) => {
                self.memory.add_permits(memory_bytes);
                Err(e)
            }
        }
    }

    /// Takes `memory_bytes` of the buffer, waiting up to `max_block_ms` for room: `None`
    /// when there was room at once, else when the wait began.
    async fn reserve(&self, memory_bytes: usize) -> Result<Option<Instant>> {
        let permits = u32::try_from(memory_bytes).map_err(|_| Error::RecordTooLarge {
            size_bytes: memory_bytes,
            max_bytes: u32::MAX as usize,
        })?;
        if let Ok(permit) = self.memory.try_acquire_many(permits) {
            permit.forget();
            return Ok(None);
        }
        // Full: make sure lingering batches go out so memory comes back, then wait.
        let started = Instant::now();
        self.wake_sender.notify_one();
        let wait = Duration::from_millis(self.config.max_block_ms);
        match tokio::time::timeout(wait, self.memory.acquire_many(permits)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(Some(started))
            }
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::BufferFull {
                needed_bytes: memory_bytes,
                timeout_ms: self.config.max_block_ms,
            }),
        }
    }

    /// The topic's partition count (from the cluster's metadata, fetched if not cached):
    /// a topic that is missing or has no leader yet is waited for until `max_block_ms`
    /// after `started`, asking again `retry_backoff_ms`..`retry_backoff_max_ms` apart.
    async fn partition_count(&self, topic: &str, started: Instant) -> Result<i32> {
        let partitions = match self.cluster.cached_partition_count(topic) {
            Some(partitions) => partitions,
            None => {
                let used_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let wait = MetadataWait {
                    max_block_ms: self.config.max_block_ms.saturating_sub(used_ms),
                    backoff_ms: self.config.retry_backoff_ms,
                    backoff_max_ms: self.config.retry_backoff_max_ms,
                    wait_for_missing: true,
                };
                self.cluster
                    .wait_for_topic(topic, &wait)
                    .await?
                    .partitions
                    .len()
            }
        };
        match i32::try_from(partitions).unwrap_or(i32::MAX) {
            0 => Err(Error::UnknownTopicOrPartition(topic.to_owned())),
            count => Ok(count),
        }
    }

    /// Picks the partition and adds the record to its open batch. The topic's partition
    /// count is `known` (with the cluster's topics generation it was read under) or the one
    /// kept from an earlier record while metadata has not changed; `None` when neither is
    /// available (nothing was done). With the record's outcome: whether the sender was woken
    /// (a batch opened or sealed).
    fn push(
        &self,
        record: &ProducerRecord,
        known: Option<(i32, u64)>,
        memory_bytes: usize,
    ) -> Option<(Result<DeliveryFuture>, bool)> {
        let mut queues = self.queues();
        let topic = match queues.get_mut(&record.topic) {
            Some(topic) => topic,
            None => queues
                .entry(record.topic.clone())
                .or_insert_with(|| TopicQueues::new(record.topic.clone())),
        };
        match known {
            Some((count, generation)) => {
                topic.partition_count = count;
                topic.generation = generation;
            }
            None if topic.partition_count > 0
                && topic.generation == self.cluster.topics_generation() => {}
            None => return None,
        }
        let mut wake_sender = false;
        let pushed = self.push_to(topic, record, memory_bytes, &mut wake_sender);
        drop(queues);
        if wake_sender {
            self.wake_sender.notify_one();
        }
        Some((pushed, wake_sender))
    }

    /// [`push`](Self::push) once the topic's partition count is known (under the queues'
    /// lock); sets `wake_sender` when a batch was opened or sealed.
    ///
    /// A record the open batch has no room for seals that batch and goes into a fresh one:
    /// on the same partition if the record was addressed there (by partition or key), else
    /// on the next sticky partition (KIP-480), so it does not wait alone behind the full
    /// batch's round trip.
    fn push_to(
        &self,
        topic: &mut TopicQueues,
        record: &ProducerRecord,
        memory_bytes: usize,
        wake_sender: &mut bool,
    ) -> Result<DeliveryFuture> {
        let headers: Vec<NewHeader<'_>> = record
            .headers
            .iter()
            .map(|(key, value)| NewHeader {
                key: key.as_bytes(),
                value: value.as_deref(),
            })
            .collect();
        let timestamp_ms = record.timestamp_ms.unwrap_or(0);
        let new = NewRecord {
            timestamp: timestamp_ms,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        let sticky = record.partition.is_none() && record.key.is_none();
        let mut partition = topic.choose(record)?;
        for _attempt in 0..2 {
            let (name, queue) = topic.queue_mut(partition)?;
            let open = match &mut queue.open {
                Some(open) => open,
                None => {
                    *wake_sender = true;
                    queue.open.insert(self.open_batch())
                }
            };
            // A record the open batch has no room for within `batch_size_bytes` starts a new
            // one, as Java's `hasRoomFor`: only a batch of one record is larger, so a large
            // record never takes smaller ones' delivery with it (a topic refusing it as too
            // large refuses its whole batch).
            let size_bytes = open.builder.uncompressed_size_bytes();
            if !open.builder.is_empty()
                && size_bytes.saturating_add(memory_bytes) > self.config.batch_size_bytes
            {
                self.seal_open(queue, name, partition);
                *wake_sender = true;
                topic.advance_sticky(partition);
                if sticky {
                    partition = topic.choose(record)?;
                }
                continue;
            }
            match open.builder.push(&new) {
                Ok(offset_delta) => {
                    open.memory_bytes += memory_bytes;
                    let delivery = DeliveryFuture::new(
                        open.completer.0.clone(),
                        i64::from(offset_delta),
                        timestamp_ms,
                    );
                    if open.builder.uncompressed_size_bytes() >= self.config.batch_size_bytes {
                        self.seal_open(queue, name, partition);
                        *wake_sender = true;
                        topic.advance_sticky(partition);
                    }
                    return Ok(delivery);
                }
                Err(BuildError::TooLarge { .. }) if !open.builder.is_empty() => {
                    // Full: seal it and retry once in a fresh batch.
                    self.seal_open(queue, name, partition);
                    *wake_sender = true;
                    topic.advance_sticky(partition);
                    if sticky {
                        partition = topic.choose(record)?;
                    }
                }
                Err(e) => return Err(Error::Protocol(format!("record: {e}"))),
            }
        }
        Err(Error::Protocol(
            "record does not fit an empty batch".to_owned(),
        ))
    }

    /// Seals `queue`'s open batch (if any) behind its sealed ones; the batch's key is built
    /// here, once per batch, not per record. An idempotent batch takes the partition's next
    /// sequence: batches are sealed, and sent, in their partition's order.
    fn seal_open(&self, queue: &mut PartitionQueue, topic: &Arc<str>, partition: i32) {
        if let Some(mut full) = queue.open.take() {
            let identity = self.idempotence.as_ref().map(Idempotence::identity);
            if let Some(identity) = identity {
                full.builder.set_producer_state(
                    identity.producer_id,
                    identity.epoch,
                    queue.next_sequence,
                );
            }
            let mut sealed = self.seal(full, &(topic.clone(), partition));
            if identity.is_some() && !sealed.bytes.is_empty() {
                sealed.base_sequence = queue.next_sequence;
                let records = i32::try_from(sealed.records).unwrap_or(i32::MAX);
                queue.next_sequence = sequence_after(queue.next_sequence, records);
            }
            queue.sealed.push_back(sealed);
        }
    }

    /// A new batch, entered among the incomplete ones (called under the queues' lock).
    fn open_batch(&self) -> OpenBatch {
        let fields = BatchFields {
            compression: self.config.compression,
            ..BatchFields::default()
        };
        // Sized for a full batch up front: growing a 1 MiB buffer by doubling copies it
        // about once more and faults in fresh pages at every step.
        let capacity_bytes = self
            .config
            .batch_size_bytes
            .min(self.config.max_request_bytes)
            .saturating_add(BATCH_SLACK_BYTES);
        OpenBatch {
            builder: BatchBuilder::new(fields, self.config.max_request_bytes)
                .with_max_uncompressed_bytes(self.config.max_request_bytes)
                .with_capacity_bytes(capacity_bytes),
            completer: Completer::default(),
            created: Instant::now(),
            memory_bytes: 0,
            seq: self.enter_batch(),
        }
    }

    /// Finishes (compresses) a batch. A batch that cannot be finished fails its records;
    /// it is then sealed empty and dropped by the sender.
    fn seal(&self, open: OpenBatch, partition: &TopicPartition) -> SealedBatch {
        let records = usize::try_from(open.builder.record_count()).unwrap_or(0);
        let deadline = open.created + Duration::from_millis(self.config.delivery_timeout_ms);
        let mut sealed = SealedBatch {
            partition: partition.clone(),
            bytes: Bytes::new(),
            completer: open.completer,
            records,
            memory_bytes: open.memory_bytes,
            seq: open.seq,
            attempts: 0,
            retry_at: None,
            deadline,
            last_error: None,
            base_sequence: -1,
        };
        match open.builder.finish() {
            Ok(bytes) => sealed.bytes = bytes,
            Err(e) => {
                let failed = SealedBatch {
                    partition: partition.clone(),
                    bytes: Bytes::new(),
                    completer: std::mem::take(&mut sealed.completer),
                    records: std::mem::take(&mut sealed.records),
                    memory_bytes: std::mem::take(&mut sealed.memory_bytes),
                    seq: sealed.seq,
                    attempts: 0,
                    retry_at: None,
                    deadline,
                    last_error: None,
                    base_sequence: -1,
                };
                self.fail(failed, Error::Protocol(format!("batch: {e}")));
            }
        }
        sealed
    }

    /// Records in `batch` were stored from `base_offset` on.
    ///
    /// The outcome gets its own copy of the topic name (one allocation per batch): every
    /// delivery clones the outcome's name into its `RecordMetadata`, usually on another
    /// thread than the one sending, and sharing the senders' `Arc` made each record's name
    /// clone bounce that count's cache line between the cores.
    pub fn complete(&self, batch: SealedBatch, base_offset: i64) {
        let (topic, partition) = batch.partition;
        batch
            .completer
            .0
            .complete(Arc::from(&*topic), partition, base_offset);
        self.release(batch.memory_bytes, batch.seq);
    }

    /// Every record of `batch` failed with `error`. An idempotent batch leaves a gap in its
    /// partition's sequence (or, expired in flight, may have been stored): the epoch must
    /// be bumped before the partition's next batches can go.
    pub fn fail(&self, batch: SealedBatch, error: Error) {
        if let (Some(idempotence), true) = (&self.idempotence, batch.base_sequence >= 0) {
            idempotence.request_bump("a numbered batch failed");
        }
        batch.completer.0.fail(&error);
        self.release(batch.memory_bytes, batch.seq);
    }

    /// Puts a batch that failed retriably back at the head of its queue, to go again after
    /// the retry backoff (doubling per attempt, within `retry_backoff_max_ms`) or at its
    /// deadline, whichever is first (the drain then fails it).
    pub fn requeue(&self, mut batch: SealedBatch) {
        let backoff_ms = retry_backoff_ms(
            self.config.retry_backoff_ms,
            self.config.retry_backoff_max_ms,
            batch.attempts,
        );
        batch.attempts = batch.attempts.saturating_add(1);
        self.put_back(batch, backoff_ms);
    }

    /// Puts a batch whose leader is not known yet back at the head of its queue, to be
    /// looked at again `retry_backoff_ms` later (not counted as a retry: it was not sent).
    pub fn defer(&self, batch: SealedBatch) {
        self.put_back(batch, self.config.retry_backoff_ms);
    }

    /// Returns `batch` to its queue ahead of every batch opened after it (the head, unless
    /// another batch of the partition sent before it came back first), sendable after
    /// `pause_ms` (or at its deadline, when the drain fails it), and wakes the sender.
    fn put_back(&self, mut batch: SealedBatch, pause_ms: u64) {
        let retry_at = Instant::now() + Duration::from_millis(pause_ms);
        batch.retry_at = Some(retry_at.min(batch.deadline));
        let mut queues = self.queues();
        let topic = queues.get_mut(&batch.partition.0);
        let index = usize::try_from(batch.partition.1).ok();
        if let (Some(topic), Some(index)) = (topic, index) {
            if let Some(queue) = topic.partitions.get_mut(index) {
                queue.in_flight = queue.in_flight.saturating_sub(1);
                let at = queue.sealed.iter().position(|b| b.seq > batch.seq);
                queue.sealed.insert(at.unwrap_or(queue.sealed.len()), batch);
                topic.pending.insert(index);
            }
        }
        drop(queues);
        self.wake_sender.notify_one();
    }

    /// One batch of `partition` fewer in flight (it completed or failed); `acked_through`:
    /// the last sequence of an idempotent batch the broker acknowledged.
    pub fn done_in_flight(&self, partition: &TopicPartition, acked_through: Option<i32>) {
        if let Some(queue) = Self::queue_of(&mut self.queues(), partition) {
            queue.in_flight = queue.in_flight.saturating_sub(1);
            if let Some(acked) = acked_through {
                // Answers of one partition's batches may be handled out of order.
                if queue
                    .last_acked_sequence
                    .is_none_or(|last| sequence_is_after(acked, last))
                {
                    queue.last_acked_sequence = Some(acked);
                }
            }
        }
        self.wake_sender.notify_one();
    }

    /// The last sequence acknowledged for `partition` in this epoch.
    pub fn last_acked_sequence(&self, partition: &TopicPartition) -> Option<i32> {
        Self::queue_of(&mut self.queues(), partition)?.last_acked_sequence
    }

    /// Installs the bumped `identity` and numbers every waiting batch again from 0 per
    /// partition, in queue order (called with nothing in flight). Each renumbered batch is
    /// copied once to rewrite its header and CRC: this happens after failures only.
    pub fn renumber(&self, identity: Identity) {
        let Some(idempotence) = &self.idempotence else {
            return;
        };
        let mut queues = self.queues();
        let mut renumbered = 0usize;
        for topic in queues.values_mut() {
            for queue in &mut topic.partitions {
                debug_assert_eq!(queue.in_flight, 0, "renumbering with a batch in flight");
                let mut next = 0i32;
                for batch in queue.sealed.iter_mut().filter(|b| b.base_sequence >= 0) {
                    let mut bytes = bytes::BytesMut::from(&batch.bytes[..]);
                    runnel_protocol::batch::set_producer_state(
                        &mut bytes,
                        identity.producer_id,
                        identity.epoch,
                        next,
                    );
                    batch.bytes = bytes.freeze();
                    batch.base_sequence = next;
                    next = sequence_after(next, i32::try_from(batch.records).unwrap_or(i32::MAX));
                    renumbered += 1;
                }
                queue.next_sequence = next;
                queue.last_acked_sequence = None;
            }
        }
        idempotence.install(identity);
        drop(queues);
        tracing::debug!(
            producer_id = identity.producer_id,
            epoch = identity.epoch,
            renumbered,
            "idempotent producer: epoch bumped"
        );
        self.wake_sender.notify_one();
    }

    /// The queue of `partition`; it exists for every batch that was sealed.
    fn queue_of<'q>(
        queues: &'q mut Queues,
        partition: &TopicPartition,
    ) -> Option<&'q mut PartitionQueue> {
        let topic = queues.get_mut(&partition.0)?;
        let index = usize::try_from(partition.1).ok()?;
        topic.partitions.get_mut(index)
    }

    fn incomplete_batches(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        self.incomplete_batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a batch being opened and enters it among the incomplete ones.
    fn enter_batch(&self) -> u64 {
        let seq = self.next_batch_seq.fetch_add(1, Ordering::SeqCst);
        let fresh = self.incomplete_batches().insert(seq);
        debug_assert!(fresh, "batch {seq} numbered twice");
        seq
    }

    /// A batch completed or failed: its memory comes back and flushers look again.
    fn release(&self, memory_bytes: usize, seq: u64) {
        self.memory.add_permits(memory_bytes);
        self.incomplete_batches().remove(&seq);
        self.completed.notify_waiters();
    }

    /// Whether a batch opened before `watermark` is still incomplete.
    fn incomplete_before(&self, watermark: u64) -> bool {
        self.incomplete_batches()
            .first()
            .is_some_and(|seq| *seq < watermark)
    }

    /// Sends every batch now without lingering and waits until the ones opened before this
    /// call (so every record whose `send` returned before it) are acknowledged or failed.
    /// Batches opened meanwhile — other clones keep producing — are not waited for.
    pub async fn flush(&self) -> Result<()> {
        let watermark = self.next_batch_seq.load(Ordering::SeqCst);
        self.flushing.fetch_add(1, Ordering::Relaxed);
        // Dropped with this future too: a cancelled flush does not leave batches unlingered.
        let _flushing = Flushing(&self.flushing);
        self.wake_sender.notify_one();
        while self.incomplete_before(watermark) {
            let completed = self.completed.notified();
            if !self.incomplete_before(watermark) {
                break;
            }
            // Bounded wait, re-checked: a completion may race the registration above.
            let _ = tokio::time::timeout(Duration::from_millis(50), completed).await;
            self.wake_sender.notify_one();
        }
        Ok(())
    }
}

/// The pause before retry number `attempts + 1` of a batch: `backoff_ms` doubled per
/// earlier retry, within `[backoff_ms, backoff_max_ms]` (Kafka's `retry.backoff.ms` /
/// `retry.backoff.max.ms`, without the jitter).
pub(super) fn retry_backoff_ms(backoff_ms: u64, backoff_max_ms: u64, attempts: u32) -> u64 {
    let doubled = backoff_ms.saturating_mul(1u64 << attempts.min(32));
    doubled.clamp(backoff_ms, backoff_max_ms.max(backoff_ms))
}

/// One caller in `flush`, counted in `Accumulator::flushing` while it lives.
struct Flushing<'a>(&'a AtomicUsize);

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
