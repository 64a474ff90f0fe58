//! The storage engine: topics as partitioned, segmented, append-only logs.
//!
//! CONTRACT FOR OTHER MODULES — the public names and signatures below are fixed (the server
//! codes against them); the bodies and the internal files are being written.
//!
//! Nesting follows Kafka's: [`LogManager`] (every partition in a data dir, topic metadata,
//! background flusher and retention) → [`PartitionLog`] (one partition: segments, offsets,
//! durability) → segment → offset index / time index.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::{BatchError, RecordBatch};

/// Storage errors. The API layer maps each to exactly one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// → OFFSET_OUT_OF_RANGE
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    /// → UNKNOWN_TOPIC_OR_PARTITION
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// → TOPIC_ALREADY_EXISTS
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    /// → INVALID_TOPIC_EXCEPTION
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    /// → INVALID_PARTITIONS
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// → INVALID_CONFIG
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// → CORRUPT_MESSAGE (a batch handed to append was not well-formed)
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// → KAFKA_STORAGE_ERROR
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// → KAFKA_STORAGE_ERROR
    #[error("corrupt log {path}: {detail}")]
    Corruption { path: PathBuf, detail: String },
    /// → KAFKA_STORAGE_ERROR (the log is closed or closing)
    #[error("log is shut down")]
    ShutDown,
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageTimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// A topic's effective configuration, Kafka's names in the docs of each field.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `segment.index.bytes`
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`
    pub index_interval_bytes: u32,
    /// `retention.ms` (-1: forever)
    pub retention_ms: i64,
    /// `retention.bytes` (-1: unlimited)
    pub retention_bytes: i64,
    /// `cleanup.policy`
    pub cleanup_policy: CleanupPolicy,
    /// `max.message.bytes` (largest batch accepted)
    pub max_message_bytes: i32,
    /// `message.timestamp.type`
    pub message_timestamp_type: MessageTimestampType,
    /// `flush.ms` (background flush interval for acks != all)
    pub flush_ms: i64,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`
    pub max_compaction_lag_ms: i64,
}

/// One row of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    /// True when set on the topic (not the broker default).
    pub is_override: bool,
    pub read_only: bool,
}

impl TopicConfig {
    /// Every config name a topic accepts.
    pub const KNOWN_KEYS: &'static [&'static str] = &[];

    /// `base` with `overrides` (Kafka names → string values) applied; unknown names or bad
    /// values are `InvalidConfig`.
    pub fn with_overrides(
        base: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, LogError> {
        let _ = (base, overrides);
        todo!()
    }

    /// Every known config with its effective value, marking the overridden ones.
    pub fn describe(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        let _ = overrides;
        todo!()
    }
}

impl Default for TopicConfig {
    /// Kafka's defaults (segment 1 GiB / 7 days, retention 7 days / unlimited, …).
    fn default() -> Self {
        todo!()
    }
}

/// What a [`LogManager`] is opened with.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    pub data_dir: PathBuf,
    /// Broker-wide topic defaults; topic overrides apply on top.
    pub topic_defaults: TopicConfig,
    /// How often retention (and segment.ms rolls) are checked.
    pub retention_check_interval_ms: u64,
    /// Upper bound on segment files kept open across all partitions.
    pub open_segments_max: usize,
}

/// A topic as the metadata log knows it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Overrides as set by the user (Kafka names).
    pub overrides: BTreeMap<String, String>,
    /// Effective config: defaults + overrides.
    pub config: Arc<TopicConfig>,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's clock for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, starting with the one containing the requested offset.
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// The answer to "first offset with timestamp ≥ T".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// Every partition log under one data directory, plus topic metadata.
pub struct LogManager {
    _private: (),
}

impl LogManager {
    /// Opens (and, after an unclean stop, recovers) the data directory; starts the flusher
    /// and retention threads.
    pub fn open(config: LogManagerConfig) -> Result<Arc<LogManager>, LogError> {
        let _ = config;
        todo!()
    }
    pub fn topic_defaults(&self) -> &TopicConfig {
        todo!()
    }
    /// Creates a topic (persisted in the metadata log). `validate_only` checks and writes
    /// nothing.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicInfo, LogError> {
        let _ = (name, partitions, overrides, validate_only);
        todo!()
    }
    /// Deletes a topic and its data; returns its id.
    pub fn delete_topic(&self, name: &str) -> Result<uuid::Uuid, LogError> {
        let _ = name;
        todo!()
    }
    /// Grows a topic to `total_partitions`.
    pub fn create_partitions(
        &self,
        name: &str,
        total_partitions: i32,
        validate_only: bool,
    ) -> Result<(), LogError> {
        let _ = (name, total_partitions, validate_only);
        todo!()
    }
    /// Replaces a topic's overrides with `overrides` (validated first).
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), LogError> {
        let _ = (name, overrides, validate_only);
        todo!()
    }
    pub fn topic(&self, name: &str) -> Option<TopicInfo> {
        let _ = name;
        todo!()
    }
    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        todo!()
    }
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>, LogError> {
        let _ = (topic, partition);
        todo!()
    }
    /// Runs one retention pass now (the background thread calls this on its interval).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), LogError> {
        let _ = now_ms;
        todo!()
    }
    /// Flushes everything, writes checkpoints and the clean-shutdown marker. Idempotent.
    pub fn shutdown(&self) -> Result<(), LogError> {
        todo!()
    }
}

/// One partition's log.
pub struct PartitionLog {
    _private: (),
}

impl PartitionLog {
    pub fn topic(&self) -> &str {
        todo!()
    }
    pub fn partition(&self) -> i32 {
        todo!()
    }
    pub fn config(&self) -> Arc<TopicConfig> {
        todo!()
    }
    /// Appends validated batches in order, assigning consecutive offsets (patched into each
    /// batch's base offset). The data is in the page cache when this returns.
    pub fn append(&self, batches: &[RecordBatch]) -> Result<AppendInfo, LogError> {
        let _ = batches;
        todo!()
    }
    /// Resolves once every offset below `end_offset` is fsynced. Concurrent waiters share one
    /// fsync (group commit).
    pub fn wait_durable(
        self: &Arc<Self>,
        end_offset: i64,
    ) -> impl Future<Output = Result<(), LogError>> + Send + 'static {
        let _ = end_offset;
        async { todo!() }
    }
    /// Whole batches from the one containing `offset`, up to `max_bytes` (but always at least
    /// one whole batch when `offset` < end). `offset == end` is empty; outside
    /// [start, end] is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let _ = (offset, max_bytes);
        todo!()
    }
    /// First record with timestamp ≥ `timestamp_ms`; `None` when there is none.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampOffset>, LogError> {
        let _ = timestamp_ms;
        todo!()
    }
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    /// Single broker: everything appended is visible, so this equals the log end offset.
    pub fn high_watermark(&self) -> i64 {
        todo!()
    }
    /// Watches the log end offset (for long-poll fetch).
    pub fn end_offset_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        todo!()
    }
    /// DeleteRecords: moves the log start offset up to `offset` (checkpointed); returns the
    /// new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let _ = offset;
        todo!()
    }
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }
    pub fn segment_count(&self) -> usize {
        todo!()
    }
}
