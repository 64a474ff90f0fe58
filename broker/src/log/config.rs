//! Topic configuration: Kafka's names, Kafka's defaults, and the validation of overrides.
//!
//! Defaults live in [`TopicConfig::default`], validation in [`apply_override`]; both are
//! plain data and thread-safe by construction (the config is shared as `Arc<TopicConfig>`).

use std::collections::BTreeMap;

use super::LogError;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

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
    pub const KNOWN_KEYS: &'static [&'static str] = &[
        "cleanup.policy",
        "delete.retention.ms",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.ms",
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
                let mut parts = Vec::new();
                if self.cleanup_policy.delete {
                    parts.push("delete");
                }
                if self.cleanup_policy.compact {
                    parts.push("compact");
                }
                parts.join(",")
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
            _ => String::new(),
        }
    }
}

impl Default for TopicConfig {
    /// Kafka's defaults (segment 1 GiB / 7 days, retention 7 days / unlimited, …), except
    /// `flush.ms`, which is 1 s here (Kafka: never) so acks=1 data reaches the disk promptly.
    fn default() -> Self {
        TopicConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
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

fn parse_policy(name: &str, value: &str) -> Result<CleanupPolicy, LogError> {
    let mut policy = CleanupPolicy::default();
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => policy.delete = true,
            "compact" => policy.compact = true,
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
        _ => return Err(LogError::InvalidConfig(format!("unknown config {name:?}"))),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let config = TopicConfig::default();
        assert_eq!(config.segment_bytes, 1 << 30);
        assert_eq!(config.retention_bytes, -1);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert!(config.cleanup_policy.delete && !config.cleanup_policy.compact);
    }

    #[test]
    fn overrides_apply_and_round_trip_through_describe() {
        let base = TopicConfig::default();
        let set = overrides(&[
            ("retention.ms", "1000"),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "3600000"),
        ]);
        let config = TopicConfig::with_overrides(&base, &set).unwrap();
        assert_eq!(config.retention_ms, 1000);
        assert_eq!(config.message_timestamp_before_max_ms, 3_600_000);
        assert_eq!(config.message_timestamp_after_max_ms, i64::MAX);
        assert!(config.cleanup_policy.compact && config.cleanup_policy.delete);
        let described = config.describe(&set);
        assert_eq!(described.len(), TopicConfig::KNOWN_KEYS.len());
        for entry in described {
            assert_eq!(entry.is_override, set.contains_key(entry.name));
            let again =
                TopicConfig::with_overrides(&base, &overrides(&[(entry.name, &entry.value)]));
            assert!(again.is_ok(), "{} = {}", entry.name, entry.value);
        }
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let base = TopicConfig::default();
        for (k, v) in [
            ("no.such.key", "1"),
            ("retention.ms", "-2"),
            ("segment.bytes", "abc"),
            ("segment.bytes", "3"),
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("message.timestamp.type", "Now"),
            ("message.timestamp.before.max.ms", "-1"),
            ("message.timestamp.after.max.ms", "soon"),
            ("cleanup.policy", ""),
            ("cleanup.policy", "compact,,delete"),
            ("min.cleanable.dirty.ratio", "-0.1"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("delete.retention.ms", "-1"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("segment.ms", "0"),
            ("segment.bytes", "2147483648"),
            ("flush.messages", "0"),
            ("flush.messages", "1e9"),
            ("min.insync.replicas", "0"),
            ("min.insync.replicas", "2147483648"),
        ] {
            let result = TopicConfig::with_overrides(&base, &overrides(&[(k, v)]));
            assert!(matches!(result, Err(LogError::InvalidConfig(_))), "{k}={v}");
        }
        let lags = overrides(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]);
        assert!(TopicConfig::with_overrides(&base, &lags).is_err());
        let compact = overrides(&[("cleanup.policy", " compact , delete ")]);
        assert!(TopicConfig::with_overrides(&base, &compact).is_ok());
    }
}
