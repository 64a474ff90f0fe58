//! Topic configuration: Kafka's names, Kafka's defaults, and the validation of overrides.
//!
//! Defaults live in [`TopicConfig::default`], validation in [`apply_override`]; both are
//! plain data and thread-safe by construction (the config is shared as `Arc<TopicConfig>`).

use std::collections::BTreeMap;

use runnel_protocol::batch::Compression;

use super::LogError;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
    /// Set as "compact,delete": Kafka describes a list config in the order it was set
    /// (`ConfigHelper.createTopicConfigEntry`: `ConfigDef.convertToString` of the parsed
    /// list), so that order is kept.
    pub compact_first: bool,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageTimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// `compression.type`: the codec batches are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionType {
    /// As the producer sent them, byte for byte (Kafka's default).
    #[default]
    Producer,
    /// Re-encoded in this codec when they arrive in another (`uncompressed` is `None`).
    Codec(Compression),
}

/// `compression.gzip.level` (KIP-390): -1 is gzip's own default.
pub const GZIP_LEVEL_DEFAULT: i32 = -1;
const GZIP_LEVEL_MIN: i64 = 1;
const GZIP_LEVEL_MAX: i64 = 9;
/// `compression.lz4.level` (KIP-390).
pub const LZ4_LEVEL_DEFAULT: i32 = 9;
const LZ4_LEVEL_MIN: i64 = 1;
const LZ4_LEVEL_MAX: i64 = 17;
/// `compression.zstd.level` (KIP-390): zstd's range, negative levels included.
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;
const ZSTD_LEVEL_MIN: i64 = -131_072;
const ZSTD_LEVEL_MAX: i64 = 22;
/// `local.retention.ms` / `local.retention.bytes`: "the same as retention.ms / .bytes".
const LOCAL_RETENTION_DEFAULT: i64 = -2;

/// Topic configs Kafka 4.0 has that mean nothing on one broker without tiered storage:
/// accepted, validated as Kafka does and described, never acted on (README says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InertConfig {
    /// `preallocate` (segments here reserve blocks ahead on their own; see `segment`).
    pub preallocate: bool,
    /// `file.delete.delay.ms` (segments are deleted at once).
    pub file_delete_delay_ms: i64,
    /// `unclean.leader.election.enable` (one replica: no election).
    pub unclean_leader_election_enable: bool,
    /// `leader.replication.throttled.replicas` (no replication).
    pub leader_replication_throttled_replicas: String,
    /// `follower.replication.throttled.replicas` (no replication).
    pub follower_replication_throttled_replicas: String,
    /// `local.retention.ms` (no remote tier: all data is local).
    pub local_retention_ms: i64,
    /// `local.retention.bytes`
    pub local_retention_bytes: i64,
    /// `remote.log.copy.disable`
    pub remote_log_copy_disable: bool,
    /// `remote.log.delete.on.disable`
    pub remote_log_delete_on_disable: bool,
    /// `message.downconversion.enable` (a no-op in Kafka 4.0 too: no old formats).
    pub message_downconversion_enable: bool,
}

impl Default for InertConfig {
    fn default() -> Self {
        InertConfig {
            preallocate: false,
            file_delete_delay_ms: 60_000,
            unclean_leader_election_enable: false,
            leader_replication_throttled_replicas: String::new(),
            follower_replication_throttled_replicas: String::new(),
            local_retention_ms: LOCAL_RETENTION_DEFAULT,
            local_retention_bytes: LOCAL_RETENTION_DEFAULT,
            remote_log_copy_disable: false,
            remote_log_delete_on_disable: false,
            message_downconversion_enable: true,
        }
    }
}

/// A topic's effective configuration, Kafka's names in the docs of each field.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much (a random part of it, drawn
    /// per segment) before `segment.ms`, so partitions created together do not all roll at
    /// once.
    pub segment_jitter_ms: i64,
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
    /// `message.timestamp.before.max.ms` (KIP-937): with CreateTime, how far a batch's
    /// timestamps may lie before the broker's clock.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937): with CreateTime, how far a batch's
    /// timestamps may lie after the broker's clock.
    pub message_timestamp_after_max_ms: i64,
    /// `flush.ms` (background flush interval for acks != all)
    pub flush_ms: i64,
    /// `flush.messages`: an append that leaves this many records not yet fsynced is
    /// fsynced before it is answered, whatever the acks.
    pub flush_messages: i64,
    /// `min.insync.replicas`: this broker is every partition's only replica, so above 1 an
    /// acks=all write fails with NOT_ENOUGH_REPLICAS (as Kafka's with one replica).
    pub min_insync_replicas: i32,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`
    pub max_compaction_lag_ms: i64,
    /// `compression.type`
    pub compression_type: CompressionType,
    /// `compression.gzip.level` (when the broker compresses with gzip)
    pub compression_gzip_level: i32,
    /// `compression.lz4.level` (validated; the lz4 encoder here has a single level)
    pub compression_lz4_level: i32,
    /// `compression.zstd.level` (when the broker compresses with zstd)
    pub compression_zstd_level: i32,
    /// Configs with no effect on this broker.
    pub inert: InertConfig,
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

/// Smallest `segment.bytes` accepted (Kafka's: one legacy record overhead).
const SEGMENT_BYTES_MIN: u64 = 14;
/// Positions in the offset index are u32 and Kafka keeps segment sizes in an int.
const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// One time-index entry (the larger of the two index entry sizes).
const SEGMENT_INDEX_BYTES_MIN: u32 = 12;

impl TopicConfig {
    /// Every config name a topic accepts.
    /// Kafka 4.0's topic configs, all of them.
    pub const KNOWN_KEYS: &'static [&'static str] = &[
        "cleanup.policy",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.type",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.downconversion.enable",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "remote.storage.enable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ];

    /// `base` with `overrides` (Kafka names → string values) applied; unknown names or bad
    /// values are `InvalidConfig`.
    pub fn with_overrides(
        base: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, LogError> {
        let mut config = base.clone();
        for (name, value) in overrides {
            apply_override(&mut config, name, value.trim())?;
        }
        if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
            return Err(LogError::InvalidConfig(format!(
                "min.compaction.lag.ms ({}) exceeds max.compaction.lag.ms ({})",
                config.min_compaction_lag_ms, config.max_compaction_lag_ms
            )));
        }
        Ok(config)
    }

    /// Every known config with its effective value, marking the overridden ones.
    pub fn describe(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        Self::KNOWN_KEYS
            .iter()
            .map(|&name| ConfigEntry {
                name,
                value: self.value_of(name),
                is_override: overrides.contains_key(name),
                read_only: false,
            })
            .collect()
    }

    /// The effective value of a known key as Kafka would print it.
    fn value_of(&self, name: &str) -> String {
        match name {
            "cleanup.policy" => {
                let policy = self.cleanup_policy;
                match (policy.delete, policy.compact, policy.compact_first) {
                    (true, true, true) => "compact,delete",
                    (true, true, false) => "delete,compact",
                    (true, false, _) => "delete",
                    (false, true, _) => "compact",
                    (false, false, _) => "",
                }
                .to_string()
            }
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                MessageTimestampType::CreateTime => "CreateTime".to_string(),
                MessageTimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "compression.type" => compression_type_name(self.compression_type).to_owned(),
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            // Refused when true, so always false.
            "remote.storage.enable" => "false".to_owned(),
            _ => self.inert.value_of(name),
        }
    }

    /// The age at which a segment whose jitter draw is `jitter_draw` rolls: `segment.ms`
    /// less a jitter in [0, min(segment.jitter.ms, segment.ms)), as Kafka draws it.
    pub(crate) fn segment_roll_ms(&self, jitter_draw: u64) -> i64 {
        let bound_ms = self.segment_jitter_ms.min(self.segment_ms);
        let Ok(bound_ms) = u64::try_from(bound_ms) else {
            return self.segment_ms;
        };
        if bound_ms == 0 {
            return self.segment_ms;
        }
        // Below `segment_ms`, which is an i64, so the conversion cannot fail.
        let jitter_ms = i64::try_from(jitter_draw % bound_ms).unwrap_or(0);
        debug_assert!((0..self.segment_ms).contains(&jitter_ms));
        self.segment_ms - jitter_ms
    }
}

impl InertConfig {
    fn value_of(&self, name: &str) -> String {
        match name {
            "preallocate" => self.preallocate.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas.clone()
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas.clone()
            }
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "remote.log.copy.disable" => self.remote_log_copy_disable.to_string(),
            "remote.log.delete.on.disable" => self.remote_log_delete_on_disable.to_string(),
            "message.downconversion.enable" => self.message_downconversion_enable.to_string(),
            _ => String::new(),
        }
    }

    /// Validates and stores one inert key; `Ok(false)` when `name` is not one of them.
    fn apply(&mut self, name: &str, value: &str) -> Result<bool, LogError> {
        match name {
            "preallocate" => self.preallocate = parse_bool(name, value)?,
            "file.delete.delay.ms" => {
                self.file_delete_delay_ms = parse_i64(name, value, 0, i64::MAX)?;
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse_bool(name, value)?;
            }
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas = parse_throttled(name, value)?;
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas = parse_throttled(name, value)?;
            }
            "local.retention.ms" => {
                self.local_retention_ms =
                    parse_i64(name, value, LOCAL_RETENTION_DEFAULT, i64::MAX)?;
            }
            "local.retention.bytes" => {
                self.local_retention_bytes =
                    parse_i64(name, value, LOCAL_RETENTION_DEFAULT, i64::MAX)?;
            }
            "remote.log.copy.disable" => self.remote_log_copy_disable = parse_bool(name, value)?,
            "remote.log.delete.on.disable" => {
                self.remote_log_delete_on_disable = parse_bool(name, value)?;
            }
            "message.downconversion.enable" => {
                self.message_downconversion_enable = parse_bool(name, value)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Kafka's name of a `compression.type`.
fn compression_type_name(compression_type: CompressionType) -> &'static str {
    match compression_type {
        CompressionType::Producer => "producer",
        CompressionType::Codec(Compression::None) => "uncompressed",
        CompressionType::Codec(Compression::Gzip) => "gzip",
        CompressionType::Codec(Compression::Snappy) => "snappy",
        CompressionType::Codec(Compression::Lz4) => "lz4",
        CompressionType::Codec(Compression::Zstd) => "zstd",
    }
}

impl Default for TopicConfig {
    /// Kafka's defaults (segment 1 GiB / 7 days, retention 7 days / unlimited, …), except
    /// `flush.ms`, which is 1 s here (Kafka: never) so acks=1 data reaches the disk promptly.
    fn default() -> Self {
        TopicConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
                compact_first: false,
            },
            max_message_bytes: 1_048_588,
            message_timestamp_type: MessageTimestampType::CreateTime,
            // KIP-937's defaults (Kafka 3.6): no bound either way. Kafka 4.0 (KIP-1030)
            // lowered the "after" default to one hour; we keep 3.6's so existing producers
            // with skewed clocks are not refused after an upgrade.
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            flush_ms: 1000,
            // Kafka's: never by count, and one in-sync replica.
            flush_messages: i64::MAX,
            min_insync_replicas: 1,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            compression_type: CompressionType::Producer,
            compression_gzip_level: GZIP_LEVEL_DEFAULT,
            compression_lz4_level: LZ4_LEVEL_DEFAULT,
            compression_zstd_level: ZSTD_LEVEL_DEFAULT,
            inert: InertConfig::default(),
        }
    }
}

fn invalid(name: &str, value: &str, why: &str) -> LogError {
    LogError::InvalidConfig(format!("{name}={value:?}: {why}"))
}

fn parse_i64(name: &str, value: &str, min: i64, max: i64) -> Result<i64, LogError> {
    let parsed: i64 = value
        .parse()
        .map_err(|_| invalid(name, value, "not an integer"))?;
    if parsed < min || parsed > max {
        return Err(invalid(name, value, &format!("must be in [{min}, {max}]")));
    }
    Ok(parsed)
}

/// Kafka's booleans: `true` or `false`, any case.
fn parse_bool(name: &str, value: &str) -> Result<bool, LogError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(name, value, "expected true or false"))
    }
}

/// `*.replication.throttled.replicas`: `*`, or a list of `partition:broker` pairs (Kafka's
/// validator; an empty list is allowed). Stored as given, trimmed.
fn parse_throttled(name: &str, value: &str) -> Result<String, LogError> {
    if value == "*" {
        return Ok(value.to_owned());
    }
    let pair = |item: &str| {
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        item.split_once(':')
            .is_some_and(|(partition, broker)| digits(partition) && digits(broker))
    };
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let empty = items.len() == 1 && items[0].is_empty();
    if !empty && !items.iter().all(|item| pair(item)) {
        let why = "expected * or a list of partition:broker pairs";
        return Err(invalid(name, value, why));
    }
    Ok(if empty {
        String::new()
    } else {
        items.join(",")
    })
}

fn parse_compression_type(name: &str, value: &str) -> Result<CompressionType, LogError> {
    // Kafka's validator is case-sensitive.
    let codec = match value {
        "producer" => return Ok(CompressionType::Producer),
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => {
            let why = "expected producer, uncompressed, gzip, snappy, lz4 or zstd";
            return Err(invalid(name, value, why));
        }
    };
    Ok(CompressionType::Codec(codec))
}

/// `compression.gzip.level`: 1 to 9, or -1 for gzip's default.
fn parse_gzip_level(name: &str, value: &str) -> Result<i32, LogError> {
    let level = parse_i64(name, value, i64::from(GZIP_LEVEL_DEFAULT), GZIP_LEVEL_MAX)?;
    if level != i64::from(GZIP_LEVEL_DEFAULT) && level < GZIP_LEVEL_MIN {
        return Err(invalid(name, value, "must be in [1, 9] or -1"));
    }
    // Within [-1, 9]: fits.
    Ok(level as i32)
}

fn parse_policy(name: &str, value: &str) -> Result<CleanupPolicy, LogError> {
    let mut policy = CleanupPolicy::default();
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => policy.delete = true,
            "compact" => (policy.compact, policy.compact_first) = (true, !policy.delete),
            _ => return Err(invalid(name, value, "expected delete, compact or both")),
        }
    }
    Ok(policy)
}

/// Validates one `name=value` pair and stores it in `config`.
fn apply_override(config: &mut TopicConfig, name: &str, value: &str) -> Result<(), LogError> {
    let i32_max = i64::from(i32::MAX);
    match name {
        "cleanup.policy" => config.cleanup_policy = parse_policy(name, value)?,
        "delete.retention.ms" => config.delete_retention_ms = parse_i64(name, value, 0, i64::MAX)?,
        "flush.messages" => config.flush_messages = parse_i64(name, value, 1, i64::MAX)?,
        "flush.ms" => config.flush_ms = parse_i64(name, value, 0, i64::MAX)?,
        "index.interval.bytes" => {
            config.index_interval_bytes = parse_i64(name, value, 0, i32_max)? as u32;
        }
        "max.compaction.lag.ms" => {
            config.max_compaction_lag_ms = parse_i64(name, value, 1, i64::MAX)?;
        }
        "max.message.bytes" => {
            config.max_message_bytes = parse_i64(name, value, 0, i32_max)? as i32
        }
        "message.timestamp.after.max.ms" => {
            config.message_timestamp_after_max_ms = parse_i64(name, value, 0, i64::MAX)?;
        }
        "message.timestamp.before.max.ms" => {
            config.message_timestamp_before_max_ms = parse_i64(name, value, 0, i64::MAX)?;
        }
        "message.timestamp.type" => {
            config.message_timestamp_type = match value {
                "CreateTime" => MessageTimestampType::CreateTime,
                "LogAppendTime" => MessageTimestampType::LogAppendTime,
                _ => return Err(invalid(name, value, "expected CreateTime or LogAppendTime")),
            };
        }
        "min.cleanable.dirty.ratio" => {
            let ratio: f64 = value
                .parse()
                .map_err(|_| invalid(name, value, "not a number"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid(name, value, "must be in [0, 1]"));
            }
            config.min_cleanable_dirty_ratio = ratio;
        }
        "min.compaction.lag.ms" => {
            config.min_compaction_lag_ms = parse_i64(name, value, 0, i64::MAX)?;
        }
        "min.insync.replicas" => {
            config.min_insync_replicas = parse_i64(name, value, 1, i32_max)? as i32;
        }
        "retention.bytes" => config.retention_bytes = parse_i64(name, value, i64::MIN, i64::MAX)?,
        "retention.ms" => config.retention_ms = parse_i64(name, value, -1, i64::MAX)?,
        "segment.bytes" => {
            let min = SEGMENT_BYTES_MIN as i64;
            config.segment_bytes = parse_i64(name, value, min, SEGMENT_BYTES_MAX as i64)? as u64;
        }
        "segment.index.bytes" => {
            let min = i64::from(SEGMENT_INDEX_BYTES_MIN);
            config.segment_index_bytes = parse_i64(name, value, min, i32_max)? as u32;
        }
        "segment.ms" => config.segment_ms = parse_i64(name, value, 1, i64::MAX)?,
        "segment.jitter.ms" => config.segment_jitter_ms = parse_i64(name, value, 0, i64::MAX)?,
        "compression.type" => config.compression_type = parse_compression_type(name, value)?,
        "compression.gzip.level" => config.compression_gzip_level = parse_gzip_level(name, value)?,
        "compression.lz4.level" => {
            config.compression_lz4_level =
                parse_i64(name, value, LZ4_LEVEL_MIN, LZ4_LEVEL_MAX)? as i32;
        }
        "compression.zstd.level" => {
            config.compression_zstd_level =
                parse_i64(name, value, ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX)? as i32;
        }
        "remote.storage.enable" => {
            // As Kafka with tiered storage off in the broker: the topic cannot have it.
            if parse_bool(name, value)? {
                return Err(invalid(
                    name,
                    value,
                    "tiered storage is not supported by this broker",
                ));
            }
        }
        _ => {
            if !config.inert.apply(name, value)? {
                return Err(LogError::InvalidConfig(format!("unknown config {name:?}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_tests.rs"]
mod tests;
