//! Tests of topic configs: defaults, validation, describe.

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
        let again = TopicConfig::with_overrides(&base, &overrides(&[(entry.name, &entry.value)]));
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

/// Kafka describes `cleanup.policy` in the order it was set (its value is a parsed list):
/// "compact,delete" was described as "delete,compact".
#[test]
fn cleanup_policy_is_described_in_the_order_it_was_set() {
    let base = TopicConfig::default();
    for (set, described) in [
        ("compact,delete", "compact,delete"),
        (" compact , delete ", "compact,delete"),
        ("delete,compact", "delete,compact"),
        ("compact", "compact"),
        ("delete", "delete"),
    ] {
        let set = overrides(&[("cleanup.policy", set)]);
        let config = TopicConfig::with_overrides(&base, &set).unwrap();
        let entry = config
            .describe(&set)
            .into_iter()
            .find(|e| e.name == "cleanup.policy");
        assert_eq!(entry.map(|e| e.value).as_deref(), Some(described));
    }
}

/// Kafka 4.0's topic configs used to be refused as unknown, failing admin tools that set
/// them (Terraform, UIs, `kafka-topics --config`).
#[test]
fn every_kafka_4_topic_config_is_accepted_with_kafkas_validation() {
    let base = TopicConfig::default();
    let good = overrides(&[
        ("compression.type", "zstd"),
        ("compression.gzip.level", "9"),
        ("compression.lz4.level", "17"),
        ("compression.zstd.level", "-131072"),
        ("segment.jitter.ms", "1000"),
        ("preallocate", "TRUE"),
        ("file.delete.delay.ms", "0"),
        ("unclean.leader.election.enable", "true"),
        ("leader.replication.throttled.replicas", "0:1, 1:2"),
        ("follower.replication.throttled.replicas", "*"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "1024"),
        ("remote.log.copy.disable", "true"),
        ("remote.log.delete.on.disable", "false"),
        ("message.downconversion.enable", "false"),
        ("remote.storage.enable", "false"),
    ]);
    let config = TopicConfig::with_overrides(&base, &good).unwrap();
    assert_eq!(
        config.compression_type,
        CompressionType::Codec(Compression::Zstd)
    );
    assert_eq!(config.compression_zstd_level, -131_072);
    assert_eq!(config.segment_jitter_ms, 1000);
    assert!(config.inert.preallocate);
    let described: BTreeMap<&str, String> = config
        .describe(&good)
        .into_iter()
        .map(|entry| (entry.name, entry.value))
        .collect();
    assert_eq!(described["preallocate"], "true");
    assert_eq!(
        described["leader.replication.throttled.replicas"],
        "0:1,1:2"
    );
    assert_eq!(described["compression.type"], "zstd");
    assert_eq!(described["remote.storage.enable"], "false");
    let defaults: BTreeMap<&str, String> = base
        .describe(&BTreeMap::new())
        .into_iter()
        .map(|entry| (entry.name, entry.value))
        .collect();
    assert_eq!(defaults["compression.type"], "producer");
    assert_eq!(defaults["compression.gzip.level"], "-1");
    assert_eq!(defaults["compression.lz4.level"], "9");
    assert_eq!(defaults["compression.zstd.level"], "3");
    assert_eq!(defaults["local.retention.ms"], "-2");
    assert_eq!(defaults["file.delete.delay.ms"], "60000");
    assert_eq!(defaults["message.downconversion.enable"], "true");
    assert_eq!(defaults["leader.replication.throttled.replicas"], "");
    for (k, v) in [
        ("compression.type", "ZSTD"),
        ("compression.type", "none"),
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.gzip.level", "-2"),
        ("compression.lz4.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("compression.zstd.level", "-131073"),
        ("segment.jitter.ms", "-1"),
        ("preallocate", "yes"),
        ("file.delete.delay.ms", "-1"),
        ("unclean.leader.election.enable", "1"),
        ("leader.replication.throttled.replicas", "0:x"),
        ("follower.replication.throttled.replicas", "*,0:1"),
        ("follower.replication.throttled.replicas", "0"),
        ("local.retention.ms", "-3"),
        ("local.retention.bytes", "-3"),
        ("remote.log.copy.disable", ""),
        ("message.downconversion.enable", "no"),
        ("remote.storage.enable", "maybe"),
    ] {
        let result = TopicConfig::with_overrides(&base, &overrides(&[(k, v)]));
        assert!(matches!(result, Err(LogError::InvalidConfig(_))), "{k}={v}");
    }
}

#[test]
fn remote_storage_enable_true_says_tiered_storage_is_not_supported() {
    let base = TopicConfig::default();
    let result =
        TopicConfig::with_overrides(&base, &overrides(&[("remote.storage.enable", "true")]));
    let Err(LogError::InvalidConfig(message)) = result else {
        panic!("remote.storage.enable=true accepted");
    };
    assert!(
        message.contains("tiered storage is not supported"),
        "{message}"
    );
}

/// Kafka draws each segment's jitter in [0, min(segment.jitter.ms, segment.ms)).
#[test]
fn segment_roll_ms_subtracts_the_drawn_jitter() {
    let mut config = TopicConfig {
        segment_ms: 1_000,
        ..TopicConfig::default()
    };
    assert_eq!(
        config.segment_roll_ms(123_456),
        1_000,
        "no jitter configured"
    );
    config.segment_jitter_ms = 300;
    assert_eq!(config.segment_roll_ms(0), 1_000);
    assert_eq!(config.segment_roll_ms(299), 701);
    assert_eq!(
        config.segment_roll_ms(300),
        1_000,
        "the draw wraps below the bound"
    );
    assert_eq!(
        config.segment_roll_ms(u64::MAX),
        1_000 - (u64::MAX % 300) as i64
    );
    // A jitter above segment.ms is bounded by it: a segment never rolls at age 0.
    config.segment_jitter_ms = i64::MAX;
    assert_eq!(config.segment_roll_ms(999), 1);
    assert_eq!(config.segment_roll_ms(1_000), 1_000);
}
