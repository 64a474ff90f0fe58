//! What the configuration is checked against, and the properties file's reader: the values
//! no default can fix ([`validate`]), `host:port` parsing, and Kafka-style `key=value`
//! files whose keys are our flag names or Kafka's.

use super::*;

/// Checks the values no default can fix.
pub(super) fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
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
pub(super) fn read_properties_file(path: &Path) -> Result<BrokerArgs, ConfigError> {
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
