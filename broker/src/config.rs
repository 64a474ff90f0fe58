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
    /// Loopback connections leave a pacing congestion control (`runnel_protocol::loopback`).
    pub const LOOPBACK_UNPACED: bool = true;
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
    /// Switch connections from this machine (loopback) off a congestion control that paces
    /// its sends, BBR, to Reno; false keeps the system's choice [default: true].
    #[arg(long, env = "RUNNEL_LOOPBACK_UNPACED")]
    pub loopback_unpaced: Option<bool>,
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
    /// (its next batch is accepted at any sequence); a dynamic broker config set with
    /// AlterConfigs takes precedence [default: 86400000].
    #[arg(long, env = "RUNNEL_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<i32>,
    /// How often partitions are checked for expired producers [default: 600000].
    #[arg(long, env = "RUNNEL_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS")]
    pub producer_id_expiration_check_interval_ms: Option<i32>,
    /// Incremental fetch sessions (KIP-227) kept at once; 0 turns them off (every fetch is
    /// then a full one) [default: 1000].
    #[arg(long, env = "RUNNEL_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS")]
    pub max_incremental_fetch_session_cache_slots: Option<usize>,
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

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// A broker name of a time setting: the name, milliseconds per unit, and Kafka's built-in
/// default (`None`: it has none).
pub type TimeUnit = (&'static str, i64, Option<&'static str>);

/// Kafka's broker configs for the topic time configs that several set, finest first — the
/// finest given wins, and that is also Kafka's synonym order
/// (`ServerTopicConfigSynonyms.ALL_TOPIC_CONFIG_SYNONYMS`, `DynamicBrokerConfig.
/// brokerConfigSynonyms`). The first name is the key's dynamic broker name. `flush.ms` is
/// left out: its default here (1 s) is not Kafka's, which comes from a scheduler setting
/// this broker does not have.
#[rustfmt::skip]
pub const TIME_UNITS: &[(&str, &[TimeUnit])] = &[
    ("retention.ms", &[("log.retention.ms", 1, None), ("log.retention.minutes", MINUTE_MS, None),
        ("log.retention.hours", HOUR_MS, Some("168"))]),
    ("segment.ms", &[("log.roll.ms", 1, None), ("log.roll.hours", HOUR_MS, Some("168"))]),
    ("segment.jitter.ms", &[("log.roll.jitter.ms", 1, None),
        ("log.roll.jitter.hours", HOUR_MS, Some("0"))]),
];

/// `topic_key`'s broker names in [`TIME_UNITS`], if it is a time key set in several units.
pub fn time_units(topic_key: &str) -> Option<&'static [TimeUnit]> {
    (TIME_UNITS.iter())
        .find(|(key, _)| *key == topic_key)
        .map(|(_, units)| *units)
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
    /// Loopback connections leave a pacing congestion control for Reno.
    pub loopback_unpaced: bool,
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
    /// `auto.create.topics.enable`, …) that the operator set, by those names.
    pub set_broker_keys: BTreeSet<&'static str>,
    /// Kafka's unit-suffixed time settings the operator gave (`log.retention.hours`,
    /// `log.roll.ms`, …), by Kafka name, as given: `topic_defaults` holds what they resolve
    /// to, DescribeConfigs lists each under its own name as Kafka does.
    pub static_unit_configs: BTreeMap<&'static str, String>,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions kept (0: none).
    pub fetch_session_cache_slots: usize,
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
            loopback_unpaced: defaults::LOOPBACK_UNPACED,
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
            static_unit_configs: BTreeMap::new(),
            groups: crate::groups::GroupConfig::default(),
            producers: crate::producers::ProducerStateConfig::default(),
            fetch_session_cache_slots: crate::fetch_sessions::FETCH_SESSION_SLOTS_DEFAULT,
        }
    }

    /// Parses the process's flags, environment and `--config` file.
    pub fn from_env_and_args() -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_args(std::env::args_os())
    }

    /// Like [`BrokerConfig::from_env_and_args`] with explicit arguments (`argv[0]` first).
    pub fn from_args<I, T>(argv: I) -> Result<BrokerConfig, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let given = BrokerArgs::try_parse_from(argv)?;
        let from_file = match &given.config {
            Some(path) => checks::read_properties_file(path)?,
            None => BrokerArgs::default(),
        };
        given.or(from_file).resolve()
    }
}

#[path = "config_checks.rs"]
mod checks;
#[path = "config_resolve.rs"]
mod resolve;

pub use checks::split_host_port;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_tests.rs"]
mod tests;
