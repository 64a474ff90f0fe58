//! The storage engine: topics as partitioned, segmented, append-only logs.
//!
//! CONTRACT FOR OTHER MODULES — the public names and signatures re-exported here are fixed
//! (the server codes against them).
//!
//! Nesting follows Kafka's: [`LogManager`] (every partition in a data dir, topic metadata,
//! background flusher, retention and log cleaner) → [`PartitionLog`] (one partition: segments, offsets,
//! durability) → segment → offset index / time index.
//!
//! Files: `config` (topic configs), `manager`/`topics` (LogManager; `dir_remover`: deleted
//! partitions' directories), `partition`/`reader`/`timestamp_lookup`/`retention`/`flusher`
//! (PartitionLog; `flush_set`: the partitions the flusher visits), `segment` + `offset_index` +
//! `time_index` + `index_file` (on-disk segment), `recovery` (loading and crash recovery),
//! `checkpoint`, `metadata_log` (`broker_configs`: the dynamic topic defaults it holds),
//! `file_cache` (bounded open segment files), `page_cache` (the
//! cached tail); compaction: `cleaner` (thread, partition choice, stats) → `clean_pass`
//! (offset map build, segment rewrite; `clean_filter`: what each batch keeps) → `swap`
//! (crash-safe file swap), with `offset_map` (bounded key → offset map) and `last_batches`
//! (each idempotent producer's last batch, kept through cleaning).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::BatchError;

mod broker_configs;
mod checkpoint;
mod clean_filter;
mod clean_pass;
mod cleaner;
mod config;
mod dir_remover;
mod file_cache;
mod flush_set;
mod flusher;
mod index_file;
mod last_batches;
mod lock;
mod manager;
mod metadata_log;
mod offset_index;
mod offset_map;
mod page_cache;
mod partition;
mod partition_figures;
mod reader;
mod recovery;
mod retention;
mod segment;
mod swap;
mod time_index;
mod timestamp_lookup;
mod topic_table;
mod topics;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use broker_configs::{
    BrokerDefaults, BrokerScope, DynamicProducerExpiration, PRODUCER_ID_EXPIRATION_MS,
};
pub use cleaner::{CleanerConfig, CleanerStats, PartitionCleanerStats};
pub use config::{
    CleanupPolicy, CompressionType, ConfigEntry, InertConfig, MessageTimestampType, TopicConfig,
};
pub use manager::LogManager;
pub use partition::PartitionLog;

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Storage errors. The API layer maps each to exactly one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// → OFFSET_OUT_OF_RANGE
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// → UNKNOWN_TOPIC_OR_PARTITION (`partition` -1: the topic itself is unknown)
    #[error("{}", unknown_message(topic, *partition))]
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
    /// → INCONSISTENT_TOPIC_ID (the topic of that name has another id: it was deleted and
    /// created again since the caller resolved the id)
    #[error("topic {topic} no longer has the id {id}")]
    InconsistentTopicId { topic: String, id: uuid::Uuid },
}

/// What a [`LogManager`] is opened with.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    pub data_dir: PathBuf,
    /// Broker-wide topic defaults as configured at start (flags, environment, file); the
    /// dynamic broker configs in the metadata log apply on top, then topic overrides.
    pub topic_defaults: TopicConfig,
    /// This broker's id: picks its own dynamic broker configs out of the metadata log.
    pub node_id: i32,
    /// How often retention (and segment.ms rolls) are checked.
    pub retention_check_interval_ms: u64,
    /// Upper bound on segment files kept open across all partitions.
    pub open_segments_max: usize,
    /// Page cache shared by the tails of the partitions being written; older pages are
    /// dropped once on disk (`page_cache`). 0 leaves the page cache to the kernel.
    pub page_cache_bytes: u64,
}

impl LogManagerConfig {
    /// Kafka's defaults: retention checked every 5 minutes; 1024 open segment files.
    pub fn new(data_dir: impl Into<PathBuf>) -> LogManagerConfig {
        LogManagerConfig {
            data_dir: data_dir.into(),
            topic_defaults: TopicConfig::default(),
            node_id: 0,
            retention_check_interval_ms: 300_000,
            open_segments_max: 1024,
            page_cache_bytes: 0,
        }
    }
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

/// Whole batches left in a segment file, for the connection to send straight from the page
/// cache (`sendfile`) instead of copying them out and back in. Holding it keeps the file
/// open, and its bytes stay as they were: a segment is only appended to, replaced by
/// rename (compaction) or unlinked (retention), never rewritten in place.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len_bytes: usize,
    /// Records in those batches (their headers' counts), for the traffic counters.
    pub record_count: u64,
}

impl FileSlice {
    /// The bytes, read (for where they cannot be sent from the file).
    pub fn read_bytes(&self) -> std::io::Result<Bytes> {
        reader::pread_exact(&self.file, self.len_bytes, self.position).map(Bytes::from)
    }
}

/// The records of a Fetch read: copied into memory, or left in the file.
#[derive(Debug, Clone)]
pub enum FetchRecords {
    Copied(Bytes),
    InFile(FileSlice),
}

impl FetchRecords {
    pub fn len_bytes(&self) -> usize {
        match self {
            FetchRecords::Copied(bytes) => bytes.len(),
            FetchRecords::InFile(slice) => slice.len_bytes,
        }
    }
}

/// What a Fetch read returned ([`PartitionLog::fetch_read`]).
#[derive(Debug, Clone)]
pub struct FetchRead {
    /// Whole batches, starting with the one containing the requested offset.
    pub records: FetchRecords,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// The answer to "first offset with timestamp ≥ T".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// "unknown topic T" for a topic-level error (partition -1), else "unknown topic or
/// partition T-P" (a topic named "x-" would otherwise read "x--1").
fn unknown_message(topic: &str, partition: i32) -> String {
    if partition < 0 {
        format!("unknown topic {topic}")
    } else {
        format!("unknown topic or partition {topic}-{partition}")
    }
}

#[cfg(test)]
mod error_message_tests {
    use super::LogError;

    #[test]
    fn a_topic_level_unknown_names_the_topic_only() {
        let topic = |partition| LogError::UnknownTopicOrPartition {
            topic: "nope-x".to_owned(),
            partition,
        };
        assert_eq!(topic(-1).to_string(), "unknown topic nope-x");
        assert_eq!(topic(3).to_string(), "unknown topic or partition nope-x-3");
    }
}
