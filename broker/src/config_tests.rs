//! Tests of broker configuration: precedence, defaults, validation, the properties file.

use super::*;

#[test]
fn defaults_apply_when_nothing_is_given() {
    let config = BrokerConfig::from_args(["runnel-broker"]).unwrap();
    assert_eq!(config.listen, defaults::LISTEN);
    assert_eq!(config.data_dir, PathBuf::from(defaults::DATA_DIR));
    assert_eq!(config.max_request_bytes, 104_857_600);
    assert_eq!(config.queued_request_bytes_max, 536_870_912);
    assert!(config.auto_create_topics);
    assert!(config.loopback_unpaced);
    assert!(config.topic_defaults.is_empty());
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(
        &path,
        "# comment\nlog.dirs=/var/runnel\nnum.partitions=3\nlisten=0.0.0.0:9000\n\
         auto.create.topics.enable=false\nlog.retention.ms=1000\n\
         queued.max.request.bytes=8388608\nloopback.unpaced=false\n",
    )
    .unwrap();
    let config = BrokerConfig::from_args([
        "runnel-broker",
        "--config",
        path.to_str().unwrap(),
        "--num-partitions",
        "5",
        "--inflight-requests-max",
        "8",
    ])
    .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/var/runnel"));
    assert_eq!(config.num_partitions, 5);
    assert_eq!(config.inflight_requests_max, 8);
    assert_eq!(config.queued_request_bytes_max, 8 * 1024 * 1024);
    assert_eq!(config.listen, "0.0.0.0:9000");
    assert!(!config.auto_create_topics);
    assert!(!config.loopback_unpaced);
    assert_eq!(
        config
            .topic_defaults
            .get("retention.ms")
            .map(String::as_str),
        Some("1000")
    );
}

#[test]
fn bad_values_are_rejected() {
    assert!(BrokerConfig::from_args(["b", "--num-partitions", "0"]).is_err());
    assert!(BrokerConfig::from_args(["b", "--listen", "nocolon"]).is_err());
    assert!(BrokerConfig::from_args(["b", "--max-request-bytes", "3"]).is_err());
    assert!(BrokerConfig::from_args(["b", "--queued-request-bytes-max", "0"]).is_err());
    assert!(BrokerConfig::from_args(["b", "--queued-request-bytes-max", "4294967296"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.properties");
    std::fs::write(&path, "no.such.setting=1\n").unwrap();
    assert!(BrokerConfig::from_args(["b", "--config", path.to_str().unwrap()]).is_err());
}

#[test]
fn group_settings_take_kafka_names_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(
        &path,
        "group.initial.rebalance.delay.ms=0\noffsets.retention.minutes=2\n\
         offsets.topic.num.partitions=3\ngroup.min.session.timeout.ms=1000\n",
    )
    .unwrap();
    let config = BrokerConfig::from_args(["b", "--config", path.to_str().unwrap()]).unwrap();
    assert_eq!(config.groups.initial_rebalance_delay_ms, 0);
    assert_eq!(config.groups.offsets_retention_ms, 120_000);
    assert_eq!(config.groups.offsets_topic_partitions, 3);
    assert_eq!(config.groups.min_session_timeout_ms, 1_000);
    assert!(BrokerConfig::from_args(["b", "--group-min-session-timeout-ms", "0"]).is_err());
    assert!(BrokerConfig::from_args(["b", "--offsets-topic-num-partitions", "0"]).is_err());
}

#[test]
fn host_port_split_handles_ipv6() {
    assert_eq!(
        split_host_port("[::1]:9092").unwrap(),
        ("::1".to_owned(), 9092)
    );
    assert_eq!(
        split_host_port("localhost:0").unwrap(),
        ("localhost".to_owned(), 0)
    );
    assert!(split_host_port(":9092").is_err());
}

#[test]
fn timestamp_bounds_and_decompression_budget_take_kafka_style_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(
        &path,
        "log.message.timestamp.before.max.ms=3600000\ndecompression.bytes.max=1048576\n\
         log.roll.ms=600000\n",
    )
    .unwrap();
    let config = BrokerConfig::from_args([
        "b",
        "--config",
        path.to_str().unwrap(),
        "--log-message-timestamp-after-max-ms",
        "60000",
    ])
    .unwrap();
    let topic = |name: &str| config.topic_defaults.get(name).map(String::as_str);
    assert_eq!(topic("message.timestamp.before.max.ms"), Some("3600000"));
    assert_eq!(topic("message.timestamp.after.max.ms"), Some("60000"));
    // Kafka's name for the segment.ms default, the synonym DescribeConfigs reports.
    assert_eq!(topic("segment.ms"), Some("600000"));
    assert_eq!(config.decompression_bytes_max, 1 << 20);
    let default = BrokerConfig::from_args(["b"]).unwrap();
    assert_eq!(default.decompression_bytes_max, 256 << 20);
    assert!(BrokerConfig::from_args(["b", "--decompression-bytes-max", "0"]).is_err());
}

/// Kafka's unit-suffixed broker names (`log.retention.hours` is in Kafka's own sample
/// `server.properties`) were refused as unknown settings. The finest unit given wins, as in
/// Kafka: ms over minutes over hours.
#[test]
fn kafka_time_units_and_new_topic_defaults_take_kafka_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(
        &path,
        "log.retention.hours=168\nlog.roll.hours=2\nlog.roll.jitter.hours=1\n\
         compression.type=zstd\ncompression.zstd.level=9\nlog.preallocate=true\n\
         log.segment.delete.delay.ms=0\nunclean.leader.election.enable=false\n\
         log.local.retention.ms=-2\nlog.local.retention.bytes=-2\n\
         log.message.downconversion.enable=false\ncompression.gzip.level=5\n\
         compression.lz4.level=3\n",
    )
    .unwrap();
    let config = BrokerConfig::from_args(["b", "--config", path.to_str().unwrap()]).unwrap();
    let topic = |name: &str| config.topic_defaults.get(name).map(String::as_str);
    assert_eq!(topic("retention.ms"), Some("604800000"));
    assert_eq!(topic("segment.ms"), Some("7200000"));
    assert_eq!(topic("segment.jitter.ms"), Some("3600000"));
    assert_eq!(topic("compression.type"), Some("zstd"));
    assert_eq!(topic("compression.zstd.level"), Some("9"));
    assert_eq!(topic("compression.gzip.level"), Some("5"));
    assert_eq!(topic("compression.lz4.level"), Some("3"));
    assert_eq!(topic("preallocate"), Some("true"));
    assert_eq!(topic("file.delete.delay.ms"), Some("0"));
    assert_eq!(topic("unclean.leader.election.enable"), Some("false"));
    assert_eq!(topic("local.retention.ms"), Some("-2"));
    assert_eq!(topic("local.retention.bytes"), Some("-2"));
    assert_eq!(topic("message.downconversion.enable"), Some("false"));
    // Every one is a value storage accepts.
    crate::log::TopicConfig::with_overrides(
        &crate::log::TopicConfig::default(),
        &config.topic_defaults,
    )
    .unwrap();

    // Precedence: ms > minutes > hours, and the roll ms over hours.
    std::fs::write(
        &path,
        "log.retention.hours=1\nlog.retention.minutes=2\nlog.roll.hours=1\n\
         log.roll.ms=5000\nlog.roll.jitter.ms=10\nlog.roll.jitter.hours=1\n",
    )
    .unwrap();
    let config = BrokerConfig::from_args(["b", "--config", path.to_str().unwrap()]).unwrap();
    let topic = |name: &str| config.topic_defaults.get(name).map(String::as_str);
    assert_eq!(topic("retention.ms"), Some("120000"), "minutes over hours");
    assert_eq!(topic("segment.ms"), Some("5000"), "log.roll.ms over hours");
    assert_eq!(topic("segment.jitter.ms"), Some("10"));
    // Each unit as given, under its own name, for DescribeConfigs.
    let given: Vec<(&str, &str)> = (config.static_unit_configs.iter())
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    assert_eq!(
        given,
        [
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "2"),
            ("log.roll.hours", "1"),
            ("log.roll.jitter.hours", "1"),
            ("log.roll.jitter.ms", "10"),
            ("log.roll.ms", "5000"),
        ]
    );
    let config = BrokerConfig::from_args([
        "b",
        "--config",
        path.to_str().unwrap(),
        "--log-retention-ms=-1",
    ])
    .unwrap();
    assert_eq!(
        config
            .topic_defaults
            .get("retention.ms")
            .map(String::as_str),
        Some("-1"),
        "ms over minutes"
    );
    // A negative hour count means "forever", as Kafka reads it.
    let config = BrokerConfig::from_args(["b", "--log-retention-hours=-1"]).unwrap();
    assert_eq!(
        config
            .topic_defaults
            .get("retention.ms")
            .map(String::as_str),
        Some("-1")
    );
}

#[test]
fn the_metric_series_bounds_come_from_flags_or_the_file() {
    let config = BrokerConfig::from_args(["runnel-broker"]).unwrap();
    assert_eq!(config.metrics_group_partition_series_max, 10_000);
    assert_eq!(config.metrics_group_series_max, 1_000);
    let (_dir, path) =
        properties_file("metrics.group.partition.series.max=7\nmetrics.group.series.max=5\n");
    let from_file = BrokerConfig::from_args(["runnel-broker", "--config", &path]).unwrap();
    assert_eq!(from_file.metrics_group_partition_series_max, 7);
    assert_eq!(from_file.metrics_group_series_max, 5);
    let from_flag = BrokerConfig::from_args([
        "runnel-broker",
        "--metrics-group-partition-series-max=3",
        "--metrics-group-series-max=2",
    ])
    .unwrap();
    assert_eq!(from_flag.metrics_group_partition_series_max, 3);
    assert_eq!(from_flag.metrics_group_series_max, 2);
}

/// `producer.id.expiration.ms` and its check interval take Kafka's names in the file, are
/// left unset (Kafka's defaults) when not given, and must be in 1..=i32::MAX (Kafka: INT,
/// `atLeast(1)`).
#[test]
fn producer_expiration_takes_kafka_names_and_validators() {
    let defaults = BrokerConfig::from_args(["b"]).unwrap();
    assert_eq!(defaults.producers.producer_id_expiration_ms, None);
    assert_eq!(defaults.producers.expiration_ms(), 86_400_000);
    assert_eq!(defaults.producers.check_interval_ms(), 600_000);
    let (_dir, path) = properties_file(
        "producer.id.expiration.ms=5000\nproducer.id.expiration.check.interval.ms=250\n",
    );
    let config = BrokerConfig::from_args(["b", "--config", &path]).unwrap();
    assert_eq!(config.producers.producer_id_expiration_ms, Some(5_000));
    assert_eq!(
        config.producers.producer_id_expiration_check_interval_ms,
        Some(250)
    );
    for bad in ["0", "-1", "2147483648"] {
        for flag in [
            "--producer-id-expiration-ms",
            "--producer-id-expiration-check-interval-ms",
        ] {
            let given = format!("{flag}={bad}");
            assert!(BrokerConfig::from_args(["b", &given]).is_err(), "{given}");
        }
    }
}

/// A `broker.properties` file holding `text` (its path), in a directory kept as long as the
/// returned handle.
fn properties_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[test]
fn the_broker_only_settings_given_are_remembered_as_set() {
    let config = BrokerConfig::from_args(["b"]).unwrap();
    assert!(config.set_broker_keys.is_empty());
    let config = BrokerConfig::from_args(["b", "--num-partitions", "1", "--node-id", "0"]).unwrap();
    // Set, though to the built-in values: Kafka reports what the operator gave as static.
    let set: Vec<&str> = config.set_broker_keys.iter().copied().collect();
    assert_eq!(set, ["node.id", "num.partitions"]);
}
