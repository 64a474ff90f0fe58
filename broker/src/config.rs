//! Broker configuration: command-line flags, `RUNNEL_*` environment variables and an
//! optional Kafka-style `key=value` properties file.
//!
//! Precedence: flag or environment variable > `--config` file > built-in default. The raw
//! inputs ([`BrokerArgs`], every field optional) are kept apart from the defaults
//! ([`defaults`]) and from validation ([`BrokerArgs::resolve`]), which yields the checked
//! [`BrokerConfig`] the server runs with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};

/// Built-in defaults (Kafka's where Kafka has one; DESIGN §8).
pub mod defaults {
    pub const DATA_DIR: &str = "./data";
    pub const LISTEN: &str = "127.0.0.1:9092";
    pub const HTTP_LISTEN: &str = "127.0.0.1:9644";
    pub const NODE_ID: i32 = 0;
    pub const CLUSTER_ID: &str = "runnel-cluster";
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
    pub const AUTO_CREATE_TOPICS: bool = true;
    pub const NUM_PARTITIONS: i32 = 1;
    pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
    /// Kafka's `connections.max.idle.ms`.
    pub const CONNECTIONS_MAX_IDLE_MS: u64 = 600_000;
    pub const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
    pub const INFLIGHT_REQUESTS_MAX: usize = 64;
    /// Room for a hundred producers' usual 5 MiB of requests read ahead.
    pub const QUEUED_REQUEST_BYTES_MAX: usize = 512 * 1024 * 1024;
    pub const RETENTION_CHECK_INTERVAL_MS: u64 = 5 * 60 * 1000;
    pub const OPEN_SEGMENTS_MAX: usize = 4_096;
    /// The recent data of the partitions being written shares 64 MiB of page cache (see
    /// `log::page_cache`): 8 MiB each for eight.
    pub const LOG_PAGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
    pub const METRICS_PARTITION_SERIES_MAX: usize = 1_000;
    /// Ten groups on a 1 000-partition topic, or a thousand on ten partitions: 30 000
    /// per-partition lag series at most.
    pub const METRICS_GROUP_PARTITION_SERIES_MAX: usize = 10_000;
    /// Groups that get per-group series (state, members, rebalances, lag): about ten
    /// series each beside their lag, so some 10 000 series, whatever `groups_max` allows.
    pub const METRICS_GROUP_SERIES_MAX: usize = 1_000;
    /// Four key checks of compacted-topic batches at their 64 MiB bound at once.
    pub const DECOMPRESSION_BYTES_MAX: usize = 256 * 1024 * 1024;
}

/// Flags and environment variables as given; `None` means "not set here".
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "runnel-broker",
    version,
    about = "Runnel: a Kafka-wire-compatible broker"
)]
pub struct BrokerArgs {
    /// Kafka-style properties file (`key=value`); flags and environment override it.
    #[arg(long, env = "RUNNEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding every partition log and the metadata log [default: ./data].
    #[arg(long, env = "RUNNEL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka protocol listener [default: 127.0.0.1:9092].
    #[arg(long, env = "RUNNEL_LISTEN")]
    pub listen: Option<String>,
    /// Address clients are told to connect to [default: the listen address].
    #[arg(long, env = "RUNNEL_ADVERTISE")]
    pub advertise: Option<String>,
    /// HTTP listener for metrics and the REST API [default: 127.0.0.1:9644].
    #[arg(long, env = "RUNNEL_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// This broker's node id [default: 0].
    #[arg(long, env = "RUNNEL_NODE_ID")]
    pub node_id: Option<i32>,
    /// Cluster id reported in Metadata and DescribeCluster [default: runnel-cluster].
    #[arg(long, env = "RUNNEL_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Open client connections allowed; excess ones are closed at once [default: 10000].
    #[arg(long, env = "RUNNEL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Topics with more partitions get only per-topic metric series, no per-partition ones
    /// (bounds the cardinality of `/metrics`) [default: 1000].
    #[arg(long, env = "RUNNEL_METRICS_PARTITION_SERIES_MAX")]
    pub metrics_partition_series_max: Option<usize>,
    /// Committed (group, partition) pairs, across all groups, that get per-partition lag
    /// series (committed offset, lag in records and seconds); groups beyond it, taken in id
    /// order, get per group/topic lag only (bounds the cardinality of `/metrics`)
    /// [default: 10000].
    #[arg(long, env = "RUNNEL_METRICS_GROUP_PARTITION_SERIES_MAX")]
    pub metrics_group_partition_series_max: Option<usize>,
    /// Consumer groups that get per-group metric series (state, members, rebalances, lag);
    /// groups beyond it, taken in id order, get none and are counted in
    /// `runnel_consumer_groups_omitted` (bounds the cardinality of `/metrics`)
    /// [default: 1000].
    #[arg(long, env = "RUNNEL_METRICS_GROUP_SERIES_MAX")]
    pub metrics_group_series_max: Option<usize>,
    /// Largest request frame accepted [default: 104857600].
    #[arg(long, env = "RUNNEL_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Create unknown topics on Metadata requests [default: true].
    #[arg(long, env = "RUNNEL_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic [default: 1].
    #[arg(long, env = "RUNNEL_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    /// A half-received request idle this long closes the connection [default: 30000].
    #[arg(long, env = "RUNNEL_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// A connection that has neither read nor written a byte this long is closed, whatever
    /// it waits for (`connections.max.idle.ms`) [default: 600000].
    #[arg(long, env = "RUNNEL_CONNECTIONS_MAX_IDLE_MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// Time granted to in-flight requests on shutdown [default: 10000].
    #[arg(long, env = "RUNNEL_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Requests applied but not yet answered, per connection [default: 64].
    #[arg(long, env = "RUNNEL_INFLIGHT_REQUESTS_MAX")]
    pub inflight_requests_max: Option<usize>,
    /// Bytes of request frames read (or being read) and not yet applied, across all
    /// connections; at the bound connections stop reading until requests are applied (a
    /// larger frame waits for all of it) [default: 536870912].
    #[arg(long, env = "RUNNEL_QUEUED_REQUEST_BYTES_MAX")]
    pub queued_request_bytes_max: Option<usize>,
    /// Bytes request handlers may decompress at once across all connections (key checks of
    /// compacted topics); beyond it a produce waits briefly, then fails with
    /// REQUEST_TIMED_OUT, which clients retry [default: 268435456].
    #[arg(long, env = "RUNNEL_DECOMPRESSION_BYTES_MAX")]
    pub decompression_bytes_max: Option<usize>,
    /// Topic default `segment.bytes`.
    #[arg(long, env = "RUNNEL_LOG_SEGMENT_BYTES")]
    pub log_segment_bytes: Option<u64>,
    /// Topic default `segment.ms` (Kafka's `log.roll.ms`).
    #[arg(long, env = "RUNNEL_LOG_SEGMENT_MS")]
    pub log_segment_ms: Option<i64>,
    /// Topic default `segment.ms` in hours, when no milliseconds are given.
    #[arg(long, env = "RUNNEL_LOG_ROLL_HOURS")]
    pub log_roll_hours: Option<i64>,
    /// Topic default `segment.jitter.ms`.
    #[arg(long, env = "RUNNEL_LOG_ROLL_JITTER_MS")]
    pub log_roll_jitter_ms: Option<i64>,
    /// Topic default `segment.jitter.ms` in hours, when no milliseconds are given.
    #[arg(long, env = "RUNNEL_LOG_ROLL_JITTER_HOURS")]
    pub log_roll_jitter_hours: Option<i64>,
    /// Topic default `retention.ms` (-1: forever).
    #[arg(long, env = "RUNNEL_LOG_RETENTION_MS")]
    pub log_retention_ms: Option<i64>,
    /// Topic default `retention.ms` in minutes, when no milliseconds are given.
    #[arg(long, env = "RUNNEL_LOG_RETENTION_MINUTES")]
    pub log_retention_minutes: Option<i64>,
    /// Topic default `retention.ms` in hours, when neither milliseconds nor minutes are.
    #[arg(long, env = "RUNNEL_LOG_RETENTION_HOURS")]
    pub log_retention_hours: Option<i64>,
    /// Topic default `retention.bytes` (-1: unlimited).
    #[arg(long, env = "RUNNEL_LOG_RETENTION_BYTES")]
    pub log_retention_bytes: Option<i64>,
    /// Topic default `cleanup.policy` (delete, compact or compact,delete).
    #[arg(long, env = "RUNNEL_LOG_CLEANUP_POLICY")]
    pub log_cleanup_policy: Option<String>,
    /// Topic default `max.message.bytes` (largest batch).
    #[arg(long, env = "RUNNEL_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<i32>,
    /// Topic default `flush.ms` (background flush interval).
    #[arg(long, env = "RUNNEL_LOG_FLUSH_INTERVAL_MS")]
    pub log_flush_interval_ms: Option<i64>,
    /// Topic default `index.interval.bytes`.
    #[arg(long, env = "RUNNEL_LOG_INDEX_INTERVAL_BYTES")]
    pub log_index_interval_bytes: Option<u32>,
    /// Topic default `message.timestamp.before.max.ms` (KIP-937).
    #[arg(long, env = "RUNNEL_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS")]
    pub log_message_timestamp_before_max_ms: Option<i64>,
    /// Topic default `message.timestamp.after.max.ms` (KIP-937).
    #[arg(long, env = "RUNNEL_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS")]
    pub log_message_timestamp_after_max_ms: Option<i64>,
    /// Topic default `compression.type` (producer, uncompressed, gzip, snappy, lz4, zstd).
    #[arg(long, env = "RUNNEL_COMPRESSION_TYPE")]
    pub compression_type: Option<String>,
    /// Topic default `compression.gzip.level`.
    #[arg(long, env = "RUNNEL_COMPRESSION_GZIP_LEVEL")]
    pub compression_gzip_level: Option<i32>,
    /// Topic default `compression.lz4.level`.
    #[arg(long, env = "RUNNEL_COMPRESSION_LZ4_LEVEL")]
    pub compression_lz4_level: Option<i32>,
    /// Topic default `compression.zstd.level`.
    #[arg(long, env = "RUNNEL_COMPRESSION_ZSTD_LEVEL")]
    pub compression_zstd_level: Option<i32>,
    /// Topic default `preallocate` (no effect here).
    #[arg(long, env = "RUNNEL_LOG_PREALLOCATE")]
    pub log_preallocate: Option<bool>,
    /// Topic default `file.delete.delay.ms` (no effect here).
    #[arg(long, env = "RUNNEL_LOG_SEGMENT_DELETE_DELAY_MS")]
    pub log_segment_delete_delay_ms: Option<i64>,
    /// Topic default `unclean.leader.election.enable` (no effect on one broker).
    #[arg(long, env = "RUNNEL_UNCLEAN_LEADER_ELECTION_ENABLE")]
    pub unclean_leader_election_enable: Option<bool>,
    /// Topic default `local.retention.ms` (no effect without tiered storage).
    #[arg(long, env = "RUNNEL_LOG_LOCAL_RETENTION_MS")]
    pub log_local_retention_ms: Option<i64>,
    /// Topic default `local.retention.bytes` (no effect without tiered storage).
    #[arg(long, env = "RUNNEL_LOG_LOCAL_RETENTION_BYTES")]
    pub log_local_retention_bytes: Option<i64>,
    /// Topic default `message.downconversion.enable` (no effect, as in Kafka 4.0).
    #[arg(long, env = "RUNNEL_LOG_MESSAGE_DOWNCONVERSION_ENABLE")]
    pub log_message_downconversion_enable: Option<bool>,
    /// How often retention runs, in milliseconds [default: 300000].
    #[arg(long, env = "RUNNEL_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// Page cache kept for the newest data of the partitions, shared among them (each keeps
    /// at most an equal tail); older pages are dropped once on disk, and after a lagging
    /// consumer read them. 0 leaves the page cache to the kernel (Kafka's behaviour)
    /// [default: 67108864].
    #[arg(long, env = "RUNNEL_LOG_PAGE_CACHE_BYTES")]
    pub log_page_cache_bytes: Option<u64>,
    /// How long a group's first rebalance waits for more members [default: 3000].
    #[arg(long, env = "RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<i32>,
    /// Smallest session timeout a member may ask for [default: 6000].
    #[arg(long, env = "RUNNEL_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<i32>,
    /// Largest session timeout a member may ask for [default: 1800000].
    #[arg(long, env = "RUNNEL_GROUP_MAX_SESSION_TIMEOUT_MS")]
    pub group_max_session_timeout_ms: Option<i32>,
    /// Members one group may have [default: 10000].
    #[arg(long, env = "RUNNEL_GROUP_MAX_SIZE")]
    pub group_max_size: Option<usize>,
    /// How long committed offsets of an empty group are kept, in minutes [default: 10080].
    #[arg(long, env = "RUNNEL_OFFSETS_RETENTION_MINUTES")]
    pub offsets_retention_minutes: Option<i64>,
    /// Partitions of `__consumer_offsets` when it is first created [default: 8].
    #[arg(long, env = "RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS")]
    pub offsets_topic_num_partitions: Option<i32>,
    /// An idempotent producer whose last batch is this old is forgotten by each partition
    /// (its next batch is accepted at any sequence) [default: 86400000].
    #[arg(long, env = "RUNNEL_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<i32>,
    /// How often partitions are checked for expired producers [default: 600000].
    #[arg(long, env = "RUNNEL_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS")]
    pub producer_id_expiration_check_interval_ms: Option<i32>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected key=value")]
    Syntax { path: PathBuf, line: usize },
    #[error("{path}: unknown or invalid setting: {detail}")]
    FileValue { path: PathBuf, detail: String },
    #[error("invalid {name}: {detail}")]
    Invalid { name: &'static str, detail: String },
    #[error(transparent)]
    Args(#[from] clap::Error),
}

/// The checked configuration the broker runs with.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// `host:port` advertised to clients; `None` advertises the bound listen address.
    pub advertise: Option<String>,
    /// HTTP server (`/metrics`, `/v1/…`, `/healthz`); port 0 picks a free port (tests).
    pub http_listen: String,
    pub node_id: i32,
    pub cluster_id: String,
    pub max_connections: usize,
    /// Per-partition metric series only for topics with at most this many partitions.
    pub metrics_partition_series_max: usize,
    /// Per-partition lag series for at most this many (group, partition) pairs in all.
    pub metrics_group_partition_series_max: usize,
    /// Per-group series for at most this many groups, the first in id order.
    pub metrics_group_series_max: usize,
    pub max_request_bytes: usize,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub request_timeout_ms: u64,
    /// No byte read or written this long closes a connection.
    pub connections_max_idle_ms: u64,
    pub shutdown_timeout_ms: u64,
    /// Requests applied but not yet answered, per connection.
    pub inflight_requests_max: usize,
    /// Bytes of request frames read and not yet applied, across all connections.
    pub queued_request_bytes_max: usize,
    /// Bytes request handlers may decompress at once, across all connections.
    pub decompression_bytes_max: usize,
    pub retention_check_interval_ms: u64,
    pub open_segments_max: usize,
    /// Page cache for the tails of the partitions being written (0: the kernel decides).
    pub page_cache_bytes: u64,
    /// Broker-wide topic defaults as Kafka config names (`segment.bytes`, …); the storage
    /// engine validates them on start.
    pub topic_defaults: BTreeMap<String, String>,
    /// Group coordinator settings (session timeout bounds, offset retention, …).
    pub groups: crate::groups::GroupConfig,
    /// Idempotent-producer state settings (`producer.id.expiration.*`).
    pub producers: crate::producers::ProducerStateConfig,
    /// The broker-only settings DescribeConfigs names (`node.id`, `num.partitions`,
    /// `auto.create.topics.enable`) that the operator set, by those names.
    pub set_broker_keys: BTreeSet<&'static str>,
}

impl BrokerConfig {
    /// Every default, data in `data_dir`, listening on `listen`.
    pub fn new(data_dir: impl Into<PathBuf>, listen: impl Into<String>) -> BrokerConfig {
        BrokerConfig {
            data_dir: data_dir.into(),
            listen: listen.into(),
            advertise: None,
            http_listen: defaults::HTTP_LISTEN.to_owned(),
            node_id: defaults::NODE_ID,
            cluster_id: defaults::CLUSTER_ID.to_owned(),
            max_connections: defaults::MAX_CONNECTIONS,
            metrics_partition_series_max: defaults::METRICS_PARTITION_SERIES_MAX,
            metrics_group_partition_series_max: defaults::METRICS_GROUP_PARTITION_SERIES_MAX,
            metrics_group_series_max: defaults::METRICS_GROUP_SERIES_MAX,
            max_request_bytes: defaults::MAX_REQUEST_BYTES,
            auto_create_topics: defaults::AUTO_CREATE_TOPICS,
            num_partitions: defaults::NUM_PARTITIONS,
            request_timeout_ms: defaults::REQUEST_TIMEOUT_MS,
            connections_max_idle_ms: defaults::CONNECTIONS_MAX_IDLE_MS,
            shutdown_timeout_ms: defaults::SHUTDOWN_TIMEOUT_MS,
            inflight_requests_max: defaults::INFLIGHT_REQUESTS_MAX,
            queued_request_bytes_max: defaults::QUEUED_REQUEST_BYTES_MAX,
            decompression_bytes_max: defaults::DECOMPRESSION_BYTES_MAX,
            retention_check_interval_ms: defaults::RETENTION_CHECK_INTERVAL_MS,
            open_segments_max: defaults::OPEN_SEGMENTS_MAX,
            page_cache_bytes: defaults::LOG_PAGE_CACHE_BYTES,
            topic_defaults: BTreeMap::new(),
            set_broker_keys: BTreeSet::new(),
            groups: crate::groups::GroupConfig::default(),
            producers: crate::producers::ProducerStateConfig::default(),
        }
    }

    /// Parses the process's flags, environment and `--config` file.
    pub fn from_env_and_args() -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_args(std::env::args_os())
    }

    /// Like [`BrokerConfig::from_env_and_args`] with explicit arguments (argv[0] first).
    pub fn from_args<I, T>(argv: I) -> Result<BrokerConfig, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let given = BrokerArgs::try_parse_from(argv)?;
        let from_file = match &given.config {
            Some(path) => read_properties_file(path)?,
            None => BrokerArgs::default(),
        };
        given.or(from_file).resolve()
    }
}

impl BrokerArgs {
    /// Fields set here win; the rest come from `fallback`.
    pub fn or(self, fallback: BrokerArgs) -> BrokerArgs {
        BrokerArgs {
            config: self.config.or(fallback.config),
            data_dir: self.data_dir.or(fallback.data_dir),
            listen: self.listen.or(fallback.listen),
            advertise: self.advertise.or(fallback.advertise),
            http_listen: self.http_listen.or(fallback.http_listen),
            node_id: self.node_id.or(fallback.node_id),
            cluster_id: self.cluster_id.or(fallback.cluster_id),
            max_connections: self.max_connections.or(fallback.max_connections),
            metrics_partition_series_max: self
                .metrics_partition_series_max
                .or(fallback.metrics_partition_series_max),
            metrics_group_partition_series_max: self
                .metrics_group_partition_series_max
                .or(fallback.metrics_group_partition_series_max),
            metrics_group_series_max: self
                .metrics_group_series_max
                .or(fallback.metrics_group_series_max),
            max_request_bytes: self.max_request_bytes.or(fallback.max_request_bytes),
            auto_create_topics: self.auto_create_topics.or(fallback.auto_create_topics),
            num_partitions: self.num_partitions.or(fallback.num_partitions),
            request_timeout_ms: self.request_timeout_ms.or(fallback.request_timeout_ms),
            connections_max_idle_ms: self
                .connections_max_idle_ms
                .or(fallback.connections_max_idle_ms),
            shutdown_timeout_ms: self.shutdown_timeout_ms.or(fallback.shutdown_timeout_ms),
            inflight_requests_max: self
                .inflight_requests_max
                .or(fallback.inflight_requests_max),
            queued_request_bytes_max: self
                .queued_request_bytes_max
                .or(fallback.queued_request_bytes_max),
            decompression_bytes_max: self
                .decompression_bytes_max
                .or(fallback.decompression_bytes_max),
            log_segment_bytes: self.log_segment_bytes.or(fallback.log_segment_bytes),
            log_segment_ms: self.log_segment_ms.or(fallback.log_segment_ms),
            log_roll_hours: self.log_roll_hours.or(fallback.log_roll_hours),
            log_roll_jitter_ms: self.log_roll_jitter_ms.or(fallback.log_roll_jitter_ms),
            log_roll_jitter_hours: self
                .log_roll_jitter_hours
                .or(fallback.log_roll_jitter_hours),
            log_retention_ms: self.log_retention_ms.or(fallback.log_retention_ms),
            log_retention_minutes: self
                .log_retention_minutes
                .or(fallback.log_retention_minutes),
            log_retention_hours: self.log_retention_hours.or(fallback.log_retention_hours),
            log_retention_bytes: self.log_retention_bytes.or(fallback.log_retention_bytes),
            log_cleanup_policy: self.log_cleanup_policy.or(fallback.log_cleanup_policy),
            message_max_bytes: self.message_max_bytes.or(fallback.message_max_bytes),
            log_flush_interval_ms: self
                .log_flush_interval_ms
                .or(fallback.log_flush_interval_ms),
            log_index_interval_bytes: self
                .log_index_interval_bytes
                .or(fallback.log_index_interval_bytes),
            log_message_timestamp_before_max_ms: self
                .log_message_timestamp_before_max_ms
                .or(fallback.log_message_timestamp_before_max_ms),
            log_message_timestamp_after_max_ms: self
                .log_message_timestamp_after_max_ms
                .or(fallback.log_message_timestamp_after_max_ms),
            compression_type: self.compression_type.or(fallback.compression_type),
            compression_gzip_level: self
                .compression_gzip_level
                .or(fallback.compression_gzip_level),
            compression_lz4_level: self
                .compression_lz4_level
                .or(fallback.compression_lz4_level),
            compression_zstd_level: self
                .compression_zstd_level
                .or(fallback.compression_zstd_level),
            log_preallocate: self.log_preallocate.or(fallback.log_preallocate),
            log_segment_delete_delay_ms: self
                .log_segment_delete_delay_ms
                .or(fallback.log_segment_delete_delay_ms),
            unclean_leader_election_enable: self
                .unclean_leader_election_enable
                .or(fallback.unclean_leader_election_enable),
            log_local_retention_ms: self
                .log_local_retention_ms
                .or(fallback.log_local_retention_ms),
            log_local_retention_bytes: self
                .log_local_retention_bytes
                .or(fallback.log_local_retention_bytes),
            log_message_downconversion_enable: self
                .log_message_downconversion_enable
                .or(fallback.log_message_downconversion_enable),
            log_retention_check_interval_ms: self
                .log_retention_check_interval_ms
                .or(fallback.log_retention_check_interval_ms),
            log_page_cache_bytes: self.log_page_cache_bytes.or(fallback.log_page_cache_bytes),
            group_initial_rebalance_delay_ms: self
                .group_initial_rebalance_delay_ms
                .or(fallback.group_initial_rebalance_delay_ms),
            group_min_session_timeout_ms: self
                .group_min_session_timeout_ms
                .or(fallback.group_min_session_timeout_ms),
            group_max_session_timeout_ms: self
                .group_max_session_timeout_ms
                .or(fallback.group_max_session_timeout_ms),
            group_max_size: self.group_max_size.or(fallback.group_max_size),
            offsets_retention_minutes: self
                .offsets_retention_minutes
                .or(fallback.offsets_retention_minutes),
            offsets_topic_num_partitions: self
                .offsets_topic_num_partitions
                .or(fallback.offsets_topic_num_partitions),
            producer_id_expiration_ms: self
                .producer_id_expiration_ms
                .or(fallback.producer_id_expiration_ms),
            producer_id_expiration_check_interval_ms: self
                .producer_id_expiration_check_interval_ms
                .or(fallback.producer_id_expiration_check_interval_ms),
        }
    }

    /// Applies defaults and validates.
    pub fn resolve(self) -> Result<BrokerConfig, ConfigError> {
        let mut groups = crate::groups::GroupConfig::default();
        self.resolve_groups(&mut groups);
        let topic_defaults = self.topic_defaults();
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
        let listen = self.listen.unwrap_or_else(|| defaults::LISTEN.to_owned());
        let mut config = BrokerConfig::new(data_dir, listen);
        config.groups = groups;
        config.producers = crate::producers::ProducerStateConfig {
            producer_id_expiration_ms: self.producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms: self.producer_id_expiration_check_interval_ms,
        };
        let set = [
            ("node.id", self.node_id.is_some()),
            ("num.partitions", self.num_partitions.is_some()),
            (
                "auto.create.topics.enable",
                self.auto_create_topics.is_some(),
            ),
        ];
        config.set_broker_keys = set
            .into_iter()
            .filter(|&(_, s)| s)
            .map(|(k, _)| k)
            .collect();
        config.advertise = self.advertise;
        config.http_listen = self.http_listen.unwrap_or(config.http_listen);
        config.node_id = self.node_id.unwrap_or(config.node_id);
        config.cluster_id = self.cluster_id.unwrap_or(config.cluster_id);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        config.metrics_partition_series_max = self
            .metrics_partition_series_max
            .unwrap_or(config.metrics_partition_series_max);
        config.metrics_group_partition_series_max = self
            .metrics_group_partition_series_max
            .unwrap_or(config.metrics_group_partition_series_max);
        config.metrics_group_series_max = self
            .metrics_group_series_max
            .unwrap_or(config.metrics_group_series_max);
        config.max_request_bytes = self.max_request_bytes.unwrap_or(config.max_request_bytes);
        config.auto_create_topics = self.auto_create_topics.unwrap_or(config.auto_create_topics);
        config.num_partitions = self.num_partitions.unwrap_or(config.num_partitions);
        config.request_timeout_ms = self.request_timeout_ms.unwrap_or(config.request_timeout_ms);
        config.connections_max_idle_ms = self
            .connections_max_idle_ms
            .unwrap_or(config.connections_max_idle_ms);
        config.shutdown_timeout_ms = self
            .shutdown_timeout_ms
            .unwrap_or(config.shutdown_timeout_ms);
        config.inflight_requests_max = self
            .inflight_requests_max
            .unwrap_or(config.inflight_requests_max);
        config.queued_request_bytes_max = self
            .queued_request_bytes_max
            .unwrap_or(config.queued_request_bytes_max);
        config.decompression_bytes_max = self
            .decompression_bytes_max
            .unwrap_or(config.decompression_bytes_max);
        config.retention_check_interval_ms = self
            .log_retention_check_interval_ms
            .unwrap_or(config.retention_check_interval_ms);
        config.page_cache_bytes = self.log_page_cache_bytes.unwrap_or(config.page_cache_bytes);
        config.topic_defaults = topic_defaults;
        validate(&config)?;
        Ok(config)
    }
}

/// Milliseconds from Kafka's unit-suffixed alternatives, the finest given winning (Kafka:
/// `log.retention.ms` > `.minutes` > `.hours`); a negative result is -1 ("never"), as
/// Kafka's `log.retention.*` read it.
fn finest_ms(ms: Option<i64>, coarser: &[(Option<i64>, i64)]) -> Option<i64> {
    if ms.is_some() {
        return ms;
    }
    let (value, unit_ms) = coarser
        .iter()
        .find_map(|(value, unit_ms)| Some(((*value)?, *unit_ms)))?;
    Some(if value < 0 {
        -1
    } else {
        value.saturating_mul(unit_ms)
    })
}

fn text<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|value| value.to_string())
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

impl BrokerArgs {
    /// The broker-wide topic defaults set here, as topic config names (Kafka's broker
    /// names map to them: `log.roll.ms` → `segment.ms`, …). Storage validates the values.
    fn topic_defaults(&self) -> BTreeMap<String, String> {
        let retention_ms = finest_ms(
            self.log_retention_ms,
            &[
                (self.log_retention_minutes, MINUTE_MS),
                (self.log_retention_hours, HOUR_MS),
            ],
        );
        let segment_ms = finest_ms(self.log_segment_ms, &[(self.log_roll_hours, HOUR_MS)]);
        let jitter_ms = finest_ms(
            self.log_roll_jitter_ms,
            &[(self.log_roll_jitter_hours, HOUR_MS)],
        );
        let pairs = [
            ("segment.bytes", text(self.log_segment_bytes)),
            ("segment.ms", text(segment_ms)),
            ("segment.jitter.ms", text(jitter_ms)),
            ("retention.ms", text(retention_ms)),
            ("retention.bytes", text(self.log_retention_bytes)),
            ("cleanup.policy", self.log_cleanup_policy.clone()),
            ("max.message.bytes", text(self.message_max_bytes)),
            ("flush.ms", text(self.log_flush_interval_ms)),
            ("index.interval.bytes", text(self.log_index_interval_bytes)),
            (
                "message.timestamp.before.max.ms",
                text(self.log_message_timestamp_before_max_ms),
            ),
            (
                "message.timestamp.after.max.ms",
                text(self.log_message_timestamp_after_max_ms),
            ),
            ("compression.type", self.compression_type.clone()),
            ("compression.gzip.level", text(self.compression_gzip_level)),
            ("compression.lz4.level", text(self.compression_lz4_level)),
            ("compression.zstd.level", text(self.compression_zstd_level)),
            ("preallocate", text(self.log_preallocate)),
            (
                "file.delete.delay.ms",
                text(self.log_segment_delete_delay_ms),
            ),
            (
                "unclean.leader.election.enable",
                text(self.unclean_leader_election_enable),
            ),
            ("local.retention.ms", text(self.log_local_retention_ms)),
            (
                "local.retention.bytes",
                text(self.log_local_retention_bytes),
            ),
            (
                "message.downconversion.enable",
                text(self.log_message_downconversion_enable),
            ),
        ];
        pairs
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect()
    }

    /// The group coordinator's settings (Kafka's `group.*` / `offsets.*` names).
    fn resolve_groups(&self, groups: &mut crate::groups::GroupConfig) {
        let or = |value: Option<i32>, default: i32| value.unwrap_or(default);
        groups.initial_rebalance_delay_ms = or(
            self.group_initial_rebalance_delay_ms,
            groups.initial_rebalance_delay_ms,
        );
        groups.min_session_timeout_ms = or(
            self.group_min_session_timeout_ms,
            groups.min_session_timeout_ms,
        );
        groups.max_session_timeout_ms = or(
            self.group_max_session_timeout_ms,
            groups.max_session_timeout_ms,
        );
        groups.group_members_max = self.group_max_size.unwrap_or(groups.group_members_max);
        if let Some(minutes) = self.offsets_retention_minutes {
            groups.offsets_retention_ms = minutes.saturating_mul(60_000);
        }
        groups.offsets_topic_partitions = or(
            self.offsets_topic_num_partitions,
            groups.offsets_topic_partitions,
        );
    }
}

/// Checks the values no default can fix.
fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
    let invalid = |name, detail: &str| {
        Err(ConfigError::Invalid {
            name,
            detail: detail.into(),
        })
    };
    if config.node_id < 0 {
        return invalid("node-id", "must be >= 0");
    }
    if config.max_connections == 0 {
        return invalid("max-connections", "must be > 0");
    }
    if config.max_request_bytes < runnel_protocol::frame::REQUEST_HEADER_MIN_BYTES
        || config.max_request_bytes > i32::MAX as usize
    {
        return invalid("max-request-bytes", "must be in 8..=2147483647");
    }
    if config.num_partitions < 1 {
        return invalid("num-partitions", "must be >= 1");
    }
    if config.request_timeout_ms == 0 {
        return invalid("request-timeout-ms", "must be > 0");
    }
    if config.connections_max_idle_ms == 0 {
        return invalid("connections-max-idle-ms", "must be > 0");
    }
    if config.inflight_requests_max == 0 {
        return invalid("inflight-requests-max", "must be > 0");
    }
    // Frames are at most `i32::MAX` bytes and a wait takes at most `u32::MAX` permits.
    if config.queued_request_bytes_max == 0 || config.queued_request_bytes_max > i32::MAX as usize {
        return invalid("queued-request-bytes-max", "must be in 1..=2147483647");
    }
    if config.decompression_bytes_max == 0 {
        return invalid("decompression-bytes-max", "must be > 0");
    }
    let groups = &config.groups;
    if groups.initial_rebalance_delay_ms < 0 {
        return invalid("group-initial-rebalance-delay-ms", "must be >= 0");
    }
    if groups.min_session_timeout_ms < 1
        || groups.max_session_timeout_ms < groups.min_session_timeout_ms
    {
        return invalid(
            "group-min-session-timeout-ms",
            "must be >= 1 and <= group-max-session-timeout-ms",
        );
    }
    if groups.group_members_max == 0 {
        return invalid("group-max-size", "must be > 0");
    }
    if groups.offsets_retention_ms < 1 {
        return invalid("offsets-retention-minutes", "must be >= 1");
    }
    if groups.offsets_topic_partitions < 1 {
        return invalid("offsets-topic-num-partitions", "must be >= 1");
    }
    // Kafka's validators: `atLeast(1)` on both (TransactionLogConfig).
    if config
        .producers
        .producer_id_expiration_ms
        .is_some_and(|ms| ms < 1)
    {
        return invalid("producer-id-expiration-ms", "must be >= 1");
    }
    if (config.producers.producer_id_expiration_check_interval_ms).is_some_and(|ms| ms < 1) {
        return invalid("producer-id-expiration-check-interval-ms", "must be >= 1");
    }
    for (name, addr) in [
        ("listen", Some(&config.listen)),
        ("advertise", config.advertise.as_ref()),
    ] {
        if let Some(addr) = addr {
            split_host_port(addr).map_err(|detail| ConfigError::Invalid { name, detail })?;
        }
    }
    Ok(())
}

/// Splits `host:port` (IPv6 hosts in brackets).
pub fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("{addr:?}: port: {e}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{addr:?}: empty host"));
    }
    Ok((host.to_owned(), port))
}

/// Kafka property names accepted as aliases of our flags.
const KAFKA_ALIASES: &[(&str, &str)] = &[
    ("log.dirs", "data-dir"),
    ("log.dir", "data-dir"),
    ("node.id", "node-id"),
    ("broker.id", "node-id"),
    ("auto.create.topics.enable", "auto-create-topics"),
    ("socket.request.max.bytes", "max-request-bytes"),
    ("queued.max.request.bytes", "queued-request-bytes-max"),
    ("message.max.bytes", "message-max-bytes"),
    (
        "log.retention.check.interval.ms",
        "log-retention-check-interval-ms",
    ),
    ("log.flush.interval.ms", "log-flush-interval-ms"),
    // Kafka's broker name for the segment.ms default (DescribeConfigs reports it so).
    ("log.roll.ms", "log-segment-ms"),
    ("log.index.interval.bytes", "log-index-interval-bytes"),
];

/// Reads a `key=value` file. Keys are our flag names (dots or dashes) or a Kafka alias.
fn read_properties_file(path: &Path) -> Result<BrokerArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut argv = vec!["runnel-broker".to_owned()];
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(ConfigError::Syntax {
            path: path.to_owned(),
            line: index + 1,
        })?;
        let key = key.trim();
        let flag = KAFKA_ALIASES
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or_else(
                || key.replace(['.', '_'], "-"),
                |(_, flag)| (*flag).to_owned(),
            );
        argv.push(format!("--{flag}={}", value.trim()));
    }
    // Environment variables must not leak into the file's values: they rank above the file
    // and are already in the flags' parse.
    let command = BrokerArgs::command().mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(argv)
        .map_err(|e| ConfigError::FileValue {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    BrokerArgs::from_arg_matches(&matches).map_err(|e| ConfigError::FileValue {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_tests.rs"]
mod tests;
