//! Per-partition record queues: an open batch being filled and sealed batches waiting to be
//! sent. Records are encoded (and, when a batch fills, compressed) on the caller's task, so
//! producers in several tasks spread that work. Memory is bounded by a semaphore of
//! `buffer_memory_bytes` permits, taken per record and returned when its batch completes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_protocol::builder::{BatchBuilder, BatchFields, BuildError, NewHeader, NewRecord};
use tokio::sync::{oneshot, Notify, Semaphore};

use super::{ProducerConfig, ProducerRecord, RecordMetadata};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;

pub(super) type TopicPartition = (Arc<str>, i32);

/// One record's completion: its sender and timestamp (offset = batch base + index).
struct Waiter {
    sender: oneshot::Sender<Result<RecordMetadata>>,
    timestamp_ms: i64,
}

struct OpenBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    created: Instant,
    memory_bytes: usize,
}

/// A finished batch (compressed, CRC sealed) and the records waiting on it.
pub(super) struct SealedBatch {
    pub partition: TopicPartition,
    pub bytes: Bytes,
    waiters: Vec<Waiter>,
    memory_bytes: usize,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    in_flight: bool,
}

/// The queues, the memory bound and the wake-ups between callers and the sender task.
pub(super) struct Accumulator {
    cluster: Arc<Cluster>,
    pub config: ProducerConfig,
    queues: Mutex<HashMap<TopicPartition, PartitionQueue>>,
    sticky: Mutex<HashMap<String, i32>>,
    memory: Semaphore,
    /// Records accepted and not yet completed (flush waits for 0).
    outstanding_records: AtomicUsize,
    /// Non-zero while some caller is in `flush`: open batches are sent without lingering.
    pub flushing: AtomicUsize,
    /// Wakes the sender: a batch was sealed, opened, or a partition became sendable.
    pub wake_sender: Notify,
    /// Wakes flushers when records complete.
    completed: Notify,
}

impl Accumulator {
    pub fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Accumulator {
        Accumulator {
            cluster,
            memory: Semaphore::new(config.buffer_memory_bytes),
            config,
            queues: Mutex::default(),
            sticky: Mutex::default(),
            outstanding_records: AtomicUsize::new(0),
            flushing: AtomicUsize::new(0),
            wake_sender: Notify::new(),
            completed: Notify::new(),
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<TopicPartition, PartitionQueue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves memory, picks the partition and adds the record to its open batch.
    pub async fn append(
        &self,
        record: ProducerRecord,
    ) -> Result<oneshot::Receiver<Result<RecordMetadata>>> {
        let memory_bytes = record.size_bytes();
        if memory_bytes > self.config.max_request_bytes {
            return Err(Error::RecordTooLarge {
                size_bytes: memory_bytes,
                max_bytes: self.config.max_request_bytes,
            });
        }
        self.reserve(memory_bytes).await?;
        let partition = match self.choose_partition(&record).await {
            Ok(partition) => partition,
            Err(e) => {
                self.memory.add_permits(memory_bytes);
                return Err(e);
            }
        };
        let (sender, receiver) = oneshot::channel();
        let waiter = Waiter {
            sender,
            timestamp_ms: record.timestamp_ms.unwrap_or(0),
        };
        let topic: Arc<str> = Arc::from(record.topic.as_str());
        let result = self.push(&record, (topic, partition), waiter, memory_bytes);
        if let Err(e) = result {
            self.memory.add_permits(memory_bytes);
            return Err(e);
        }
        self.outstanding_records.fetch_add(1, Ordering::Relaxed);
        Ok(receiver)
    }

    async fn reserve(&self, memory_bytes: usize) -> Result<()> {
        let permits = u32::try_from(memory_bytes).map_err(|_| Error::RecordTooLarge {
            size_bytes: memory_bytes,
            max_bytes: u32::MAX as usize,
        })?;
        if let Ok(permit) = self.memory.try_acquire_many(permits) {
            permit.forget();
            return Ok(());
        }
        // Full: make sure lingering batches go out so memory comes back, then wait.
        self.wake_sender.notify_one();
        let wait = Duration::from_millis(self.config.max_block_ms);
        match tokio::time::timeout(wait, self.memory.acquire_many(permits)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(())
            }
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::BufferFull {
                needed_bytes: memory_bytes,
                timeout_ms: self.config.max_block_ms,
            }),
        }
    }

    async fn choose_partition(&self, record: &ProducerRecord) -> Result<i32> {
        let partitions = self.cluster.partition_count(&record.topic).await?;
        let count = i32::try_from(partitions).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(Error::UnknownTopicOrPartition(record.topic.clone()));
        }
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
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        let partition = *sticky
            .entry(record.topic.clone())
            .or_insert_with(|| (super::now_ms() % i64::from(count)) as i32);
        Ok(partition.min(count - 1))
    }

    /// Moves the sticky partition of `topic` on once its batch was sealed (KIP-480).
    fn advance_sticky(&self, partition: &TopicPartition) {
        let Some(partitions) = self.cluster.cached_partition_count(&partition.0) else {
            return;
        };
        let count = i32::try_from(partitions).unwrap_or(1).max(1);
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = sticky.get_mut(&*partition.0) {
            if *current == partition.1 {
                *current = (partition.1 + 1) % count;
            }
        }
    }

    fn push(
        &self,
        record: &ProducerRecord,
        partition: TopicPartition,
        waiter: Waiter,
        memory_bytes: usize,
    ) -> Result<()> {
        let headers: Vec<NewHeader<'_>> = record
            .headers
            .iter()
            .map(|(key, value)| NewHeader {
                key: key.as_bytes(),
                value: value.as_deref(),
            })
            .collect();
        let new = NewRecord {
            timestamp: waiter.timestamp_ms,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        let mut sealed_now = false;
        let mut opened_now = false;
        {
            let mut queues = self.queues();
            let queue = queues.entry(partition.clone()).or_default();
            for _attempt in 0..2 {
                let open = match &mut queue.open {
                    Some(open) => open,
                    None => {
                        opened_now = true;
                        queue.open.insert(self.new_batch())
                    }
                };
                match open.builder.push(&new) {
                    Ok(_) => {
                        open.waiters.push(waiter);
                        open.memory_bytes += memory_bytes;
                        break;
                    }
                    Err(BuildError::TooLarge { .. }) if !open.builder.is_empty() => {
                        // Full: seal it and retry once in a fresh batch.
                        if let Some(full) = queue.open.take() {
                            queue.sealed.push_back(self.seal(full, &partition));
                            sealed_now = true;
                        }
                    }
                    Err(e) => return Err(Error::Protocol(format!("record: {e}"))),
                }
            }
            if let Some(open) = &queue.open {
                if open.builder.uncompressed_size_bytes() >= self.config.batch_size_bytes {
                    if let Some(full) = queue.open.take() {
                        queue.sealed.push_back(self.seal(full, &partition));
                        sealed_now = true;
                    }
                }
            }
        }
        if sealed_now {
            self.advance_sticky(&partition);
        }
        if sealed_now || opened_now {
            self.wake_sender.notify_one();
        }
        Ok(())
    }

    fn new_batch(&self) -> OpenBatch {
        let fields = BatchFields {
            compression: self.config.compression,
            ..BatchFields::default()
        };
        OpenBatch {
            builder: BatchBuilder::new(fields, self.config.max_request_bytes)
                .with_max_uncompressed_bytes(self.config.max_request_bytes),
            waiters: Vec::new(),
            created: Instant::now(),
            memory_bytes: 0,
        }
    }

    /// Finishes (compresses) a batch. A batch that cannot be finished fails its records;
    /// it is then sealed empty and dropped by the sender.
    fn seal(&self, open: OpenBatch, partition: &TopicPartition) -> SealedBatch {
        let mut sealed = SealedBatch {
            partition: partition.clone(),
            bytes: Bytes::new(),
            waiters: open.waiters,
            memory_bytes: open.memory_bytes,
            attempts: 0,
            retry_at: None,
        };
        match open.builder.finish() {
            Ok(bytes) => sealed.bytes = bytes,
            Err(e) => {
                let failed = SealedBatch {
                    partition: partition.clone(),
                    bytes: Bytes::new(),
                    waiters: std::mem::take(&mut sealed.waiters),
                    memory_bytes: std::mem::take(&mut sealed.memory_bytes),
                    attempts: 0,
                    retry_at: None,
                };
                self.fail(failed, Error::Protocol(format!("batch: {e}")));
            }
        }
        sealed
    }

    /// Takes at most one sendable batch per partition not already in flight (sealing open
    /// batches that lingered long enough) and marks those partitions in flight. Also
    /// returns when the sender should look again.
    pub fn drain(&self, now: Instant) -> (Vec<SealedBatch>, Option<Instant>) {
        let linger = Duration::from_millis(self.config.linger_ms);
        let flushing = self.flushing.load(Ordering::Relaxed) > 0;
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let mut advanced = Vec::new();
        let mut queues = self.queues();
        for (partition, queue) in queues.iter_mut() {
            if queue.in_flight {
                continue;
            }
            if queue.sealed.is_empty() {
                if let Some(open) = &queue.open {
                    let due = open.created + linger;
                    if flushing || due <= now {
                        if let Some(open) = queue.open.take() {
                            queue.sealed.push_back(self.seal(open, partition));
                            advanced.push(partition.clone());
                        }
                    } else {
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                }
            }
            let Some(front) = queue.sealed.front() else {
                continue;
            };
            if let Some(retry_at) = front.retry_at.filter(|at| *at > now) {
                next = Some(next.map_or(retry_at, |n| n.min(retry_at)));
                continue;
            }
            if let Some(batch) = queue.sealed.pop_front() {
                if batch.bytes.is_empty() {
                    continue; // failed while sealing; its records were completed
                }
                queue.in_flight = true;
                ready.push(batch);
            }
        }
        drop(queues);
        for partition in advanced {
            self.advance_sticky(&partition);
        }
        (ready, next)
    }

    /// Records in `batch` were stored from `base_offset` on.
    pub fn complete(&self, batch: SealedBatch, base_offset: i64) {
        let topic = batch.partition.0.to_string();
        let partition = batch.partition.1;
        let count = batch.waiters.len();
        for (index, waiter) in batch.waiters.into_iter().enumerate() {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset.saturating_add(index as i64)
            };
            let _ = waiter.sender.send(Ok(RecordMetadata {
                topic: topic.clone(),
                partition,
                offset,
                timestamp_ms: waiter.timestamp_ms,
            }));
        }
        self.release(batch.memory_bytes, count);
    }

    /// Every record of `batch` failed with `error`.
    pub fn fail(&self, batch: SealedBatch, error: Error) {
        let message = error.to_string();
        let code = error.code();
        let count = batch.waiters.len();
        for waiter in batch.waiters {
            let error = match code {
                Some(code) => Error::Broker {
                    code,
                    context: message.clone(),
                },
                None => Error::Protocol(message.clone()),
            };
            let _ = waiter.sender.send(Err(error));
        }
        self.release(batch.memory_bytes, count);
    }

    /// Puts a batch that failed retriably back at the head of its queue.
    pub fn requeue(&self, mut batch: SealedBatch) {
        batch.attempts += 1;
        batch.retry_at = Some(Instant::now() + Duration::from_millis(self.config.retry_backoff_ms));
        let partition = batch.partition.clone();
        let mut queues = self.queues();
        let queue = queues.entry(partition).or_default();
        queue.in_flight = false;
        queue.sealed.push_front(batch);
        drop(queues);
        self.wake_sender.notify_one();
    }

    /// Marks `partition` sendable again after its batch completed or failed.
    pub fn done_in_flight(&self, partition: &TopicPartition) {
        if let Some(queue) = self.queues().get_mut(partition) {
            queue.in_flight = false;
        }
        self.wake_sender.notify_one();
    }

    fn release(&self, memory_bytes: usize, records: usize) {
        self.memory.add_permits(memory_bytes);
        self.outstanding_records
            .fetch_sub(records, Ordering::Relaxed);
        self.completed.notify_waiters();
    }

    pub async fn flush(&self) -> Result<()> {
        self.flushing.fetch_add(1, Ordering::Relaxed);
        self.wake_sender.notify_one();
        while self.outstanding_records.load(Ordering::Relaxed) > 0 {
            let completed = self.completed.notified();
            if self.outstanding_records.load(Ordering::Relaxed) == 0 {
                break;
            }
            // Bounded wait, re-checked: a completion may race the registration above.
            let _ = tokio::time::timeout(Duration::from_millis(50), completed).await;
            self.wake_sender.notify_one();
        }
        self.flushing.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
