//! The `__consumer_offsets` store: writes commits, group metadata and tombstones as record
//! batches, and replays the topic at start.
//!
//! Each group lives on one partition (`partition_for_group`), so its records are totally
//! ordered: the coordinator appends under the group's lock, and a later record for the same
//! key wins on replay (and in compaction). A write is acknowledged to the client only after
//! [`Durable`] resolves (fsync). Thread-safety: `&self` methods are safe from any thread; the
//! partition logs serialise appends.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use runnel_protocol::batch::{BatchSplitter, RecordBatch};
use runnel_protocol::records::records;

use super::records::{
    build_batch, build_batches, CodecError, GroupMetadataValue, KeyValue, OffsetValue, OffsetsKey,
};
use super::{partition_for_group, GroupConfig, GroupError, OFFSETS_TOPIC};
use crate::log::{LogError, LogManager};

/// (topic, partition).
pub type TopicPartition = (String, i32);

/// Resolves when a write is fsynced.
pub type Durable = BoxFuture<'static, Result<(), GroupError>>;

/// One group as found by replay.
#[derive(Debug, Default, Clone)]
pub struct LoadedGroup {
    pub metadata: Option<GroupMetadataValue>,
    pub offsets: BTreeMap<TopicPartition, OffsetValue>,
}

/// Writer and loader for `__consumer_offsets`.
pub struct OffsetsStore {
    logs: Arc<LogManager>,
    /// The topic's partition count: fixed once the topic exists (the group → partition map
    /// must never change under stored data); the configured count until then.
    partitions: AtomicI32,
    batch_bytes_max: usize,
    /// Whether the topic exists; like Kafka, it is created by the first write.
    created: AtomicBool,
}

impl OffsetsStore {
    /// Replays every partition of the topic if it exists. An existing topic keeps its
    /// partition count: the group → partition map must never change under stored data.
    pub fn open(
        logs: Arc<LogManager>,
        config: &GroupConfig,
    ) -> Result<(OffsetsStore, HashMap<String, LoadedGroup>), GroupError> {
        let existing = logs.topic(OFFSETS_TOPIC);
        let store = OffsetsStore {
            partitions: AtomicI32::new(
                existing
                    .as_ref()
                    .map_or(config.offsets_topic_partitions, |t| t.partitions)
                    .max(1),
            ),
            batch_bytes_max: config.offsets_batch_bytes_max,
            created: AtomicBool::new(existing.is_some()),
            logs,
        };
        let mut loaded = HashMap::new();
        if existing.is_some() {
            for partition in 0..store.partitions() {
                store.replay_partition(partition, config, &mut loaded)?;
            }
        }
        loaded.retain(|_, group: &mut LoadedGroup| {
            group.metadata.is_some() || !group.offsets.is_empty()
        });
        Ok((store, loaded))
    }

    /// Creates the compacted topic on first use (another writer may win the race).
    fn ensure_topic(&self) -> Result<(), LogError> {
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("segment.bytes".to_owned(), (100 * 1024 * 1024).to_string()),
        ]);
        match self
            .logs
            .create_topic(OFFSETS_TOPIC, self.partitions(), overrides, false)
        {
            Ok(_) | Err(LogError::TopicAlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
        // Someone may have created the topic first (CreateTopics) with another count; nothing
        // of ours is stored yet, so adopting its count is safe.
        if let Some(topic) = self.logs.topic(OFFSETS_TOPIC) {
            self.partitions
                .store(topic.partitions.max(1), Ordering::Release);
        }
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    pub fn partitions(&self) -> i32 {
        self.partitions.load(Ordering::Acquire)
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.partitions())
    }

    /// Appends `entries` as one batch on the group's partition: all or nothing, as a commit
    /// must be. The data is in the page cache when this returns; await the [`Durable`] before
    /// acknowledging.
    pub fn append(
        &self,
        group_id: &str,
        entries: &[KeyValue],
        now_ms: i64,
    ) -> Result<Durable, GroupError> {
        if entries.is_empty() {
            return Ok(async { Ok(()) }.boxed());
        }
        let batch = build_batch(entries, now_ms, self.batch_bytes_max)?;
        self.write(group_id, vec![batch])
    }

    /// Appends `entries` in order as as many batches as the size bound needs, in one log
    /// append, for writes too large for one batch that need not be atomic (tombstones of a
    /// group's offsets, metadata tombstone last: a crash keeps a prefix, which replays as a
    /// group that still has some offsets). The [`Durable`] covers every batch.
    pub fn append_in_batches(
        &self,
        group_id: &str,
        entries: &[KeyValue],
        now_ms: i64,
    ) -> Result<Durable, GroupError> {
        if entries.is_empty() {
            return Ok(async { Ok(()) }.boxed());
        }
        let batches = build_batches(entries, now_ms, self.batch_bytes_max)?;
        self.write(group_id, batches)
    }

    fn write(&self, group_id: &str, batches: Vec<Bytes>) -> Result<Durable, GroupError> {
        debug_assert!(!batches.is_empty());
        self.ensure_topic()?;
        let log = self
            .logs
            .partition(OFFSETS_TOPIC, self.partition_for(group_id))?;
        let batches = batches
            .into_iter()
            .map(RecordBatch::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(LogError::from)?;
        let info = log.append(&batches)?;
        debug_assert!(info.last_offset >= info.base_offset);
        // One partition, fsynced in offset order: the last offset durable means all are.
        Ok(log
            .wait_durable(info.last_offset.saturating_add(1))
            .map(|written| written.map_err(GroupError::from))
            .boxed())
    }

    fn replay_partition(
        &self,
        partition: i32,
        config: &GroupConfig,
        loaded: &mut HashMap<String, LoadedGroup>,
    ) -> Result<(), GroupError> {
        let log = self.logs.partition(OFFSETS_TOPIC, partition)?;
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        // Each read yields at least one whole batch, so this loop runs at most once per batch.
        while next < end {
            let read = log.read(next, config.replay_read_bytes_max)?;
            let before = next;
            for batch in BatchSplitter::new(read.records) {
                // A partial batch at the end of a read is re-read from its start next time.
                let Ok(batch) = batch else { break };
                replay_batch(
                    &batch,
                    next,
                    config.replay_uncompressed_bytes_max,
                    partition,
                    loaded,
                );
                next = next.max(batch.next_offset());
            }
            if next <= before {
                return Err(GroupError::CorruptRecord {
                    partition,
                    offset: next,
                    detail: "replay made no progress".into(),
                });
            }
        }
        Ok(())
    }
}

/// Applies the records of one batch at or after `from_offset`. A bad batch or record is
/// skipped with a warning: one damaged group must not keep every other group offline.
fn replay_batch(
    batch: &RecordBatch,
    from_offset: i64,
    uncompressed_bytes_max: usize,
    partition: i32,
    loaded: &mut HashMap<String, LoadedGroup>,
) {
    let iter = match records(batch, uncompressed_bytes_max) {
        Ok(iter) => iter,
        Err(error) => {
            tracing::warn!(partition, offset = batch.base_offset(), %error, "skipping batch in {OFFSETS_TOPIC}");
            return;
        }
    };
    for record in iter {
        let applied = match record {
            Ok(record) if record.offset < from_offset => Ok(()),
            Ok(record) => match record.key {
                Some(key) => apply(
                    loaded,
                    &key[..],
                    record.value.as_deref(),
                    partition,
                    record.offset,
                ),
                None => Err(GroupError::CorruptRecord {
                    partition,
                    offset: record.offset,
                    detail: CodecError::NoKey.to_string(),
                }),
            },
            Err(error) => Err(GroupError::CorruptRecord {
                partition,
                offset: batch.base_offset(),
                detail: error.to_string(),
            }),
        };
        if let Err(error) = applied {
            tracing::warn!(%error, "skipping record in {OFFSETS_TOPIC}");
        }
    }
}

/// Applies one record to the replay state; later records win, null values delete.
fn apply(
    loaded: &mut HashMap<String, LoadedGroup>,
    key: &[u8],
    value: Option<&[u8]>,
    partition: i32,
    offset: i64,
) -> Result<(), GroupError> {
    let corrupt = |e: CodecError| GroupError::CorruptRecord {
        partition,
        offset,
        detail: e.to_string(),
    };
    match OffsetsKey::decode(key).map_err(corrupt)? {
        OffsetsKey::Offset {
            group,
            topic,
            partition: p,
        } => {
            let entry = loaded.entry(group).or_default();
            match value {
                Some(value) => {
                    entry
                        .offsets
                        .insert((topic, p), OffsetValue::decode(value).map_err(corrupt)?);
                }
                None => {
                    entry.offsets.remove(&(topic, p));
                }
            }
        }
        OffsetsKey::Group { group } => {
            let entry = loaded.entry(group).or_default();
            entry.metadata = match value {
                Some(value) => Some(GroupMetadataValue::decode(value).map_err(corrupt)?),
                None => None,
            };
        }
    }
    Ok(())
}

/// The record for a committed offset (`None`: tombstone).
pub fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> KeyValue {
    let key = OffsetsKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    KeyValue {
        key: key.encode(),
        value: value.map(OffsetValue::encode),
    }
}

/// The record for a group's metadata (`None`: tombstone).
pub fn group_record(group: &str, value: Option<&GroupMetadataValue>) -> KeyValue {
    KeyValue {
        key: OffsetsKey::Group {
            group: group.to_owned(),
        }
        .encode(),
        value: value.map(GroupMetadataValue::encode),
    }
}
