//! Consumer settings; defaults follow Kafka's Java consumer.

use super::Assignor;
use crate::cluster::ClientConfig;

/// Where to start when a partition has no committed offset (or it is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail instead.
    None,
}

/// Consumer settings.
///
/// ```
/// use runnel_client::{ConsumerConfig, OffsetReset};
/// use runnel_client::consumer::Assignor;
/// let mut config = ConsumerConfig::new("127.0.0.1:9092");
/// config.group_id = Some("g".into());
/// config.assignors = vec![Assignor::CooperativeSticky];
/// config.auto_offset_reset = OffsetReset::Earliest;
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    pub group_id: Option<String>,
    /// Offered in JoinGroup in this order of preference.
    pub assignors: Vec<Assignor>,
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for members to rejoin (sent in JoinGroup); also the
    /// bound of the auto-commit before a rebalance (Java's `max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ms: u64,
    pub auto_commit: bool,
    pub auto_commit_interval_ms: u64,
    pub auto_offset_reset: OffsetReset,
    /// Most records one `poll` returns.
    pub max_poll_records: usize,
    pub fetch_wait_ms_max: i32,
    pub fetch_bytes_max: i32,
    pub partition_fetch_bytes_max: i32,
    /// A partition is fetched ahead while its buffer holds less than this.
    pub prefetch_bytes_max: usize,
    /// Connections per broker that fetch, each with one Fetch in flight for its share of
    /// the partitions (at least 1). With one, the broker reads the next response only once
    /// the last one has arrived whole; with two, it reads one lane's while it sends the
    /// other's (a catch-up read of 8 partitions ran ~1.5x as fast).
    pub fetch_connections_per_broker: usize,
    /// Decompression bound for one batch.
    pub record_bytes_max: usize,
    /// Pause after a retriable group error (coordinator loading or moved, lost connection)
    /// before the join or a synchronous commit is tried again, doubling per failure up to
    /// `retry_backoff_max_ms`
    /// (Java's `retry.backoff.ms` / `retry.backoff.max.ms`).
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// How long a group join, a synchronous commit or a fetch of committed offsets keeps
    /// retrying retriable errors before it reports the last one (Java's
    /// `default.api.timeout.ms`; see `GroupMember::join` and the consumer's `commit`
    /// module). A JoinGroup the coordinator holds while the group gathers is not cut by it.
    pub default_api_timeout_ms: u64,
}

impl ConsumerConfig {
    pub fn new(bootstrap: &str) -> ConsumerConfig {
        ConsumerConfig {
            client: ClientConfig::new(bootstrap),
            group_id: None,
            assignors: vec![Assignor::Range],
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            heartbeat_interval_ms: 3_000,
            auto_commit: true,
            auto_commit_interval_ms: 5_000,
            auto_offset_reset: OffsetReset::Latest,
            max_poll_records: 500,
            fetch_wait_ms_max: 500,
            fetch_bytes_max: 50 * 1024 * 1024,
            partition_fetch_bytes_max: 1024 * 1024,
            prefetch_bytes_max: 2 * 1024 * 1024,
            fetch_connections_per_broker: 2,
            record_bytes_max: 64 * 1024 * 1024,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            default_api_timeout_ms: 60_000,
        }
    }
}
