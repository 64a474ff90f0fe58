//! CreateTopics (v2–7): creates topics in the storage engine, one result per requested topic.
//!
//! This file also holds the small pieces the admin handlers share: `Refusal` (why one item
//! of a request was refused), `repeated` (names given twice in one request) and, for unit
//! tests, a broker context over a real `LogManager` in a temporary directory (`fixture`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::create_partitions::PartitionBudget;
use super::describe_configs::config_source;
use super::errors::log_error_i16;
use super::BrokerContext;
use crate::log::{LogError, TopicInfo};

/// Why one item (topic, resource, partition) of an admin request was refused: the Kafka error
/// code and a message for the operator. Storage errors enter only through `From<LogError>`,
/// which defers to [`super::errors`] for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: i16,
    pub message: String,
}

impl Refusal {
    pub(super) fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal {
            code: error.code(),
            message: message.into(),
        }
    }

    /// A topic the request names does not exist.
    pub(super) fn unknown_topic(name: &str) -> Refusal {
        Refusal::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic {name:?} does not exist"),
        )
    }

    /// Clients may read the group coordinator's internal topic (`__consumer_offsets`) but
    /// not `what` it (create, delete, grow, trim, write): every record there is replayed as
    /// commits and group state on the next start, and its partition count places the groups.
    /// Kafka answers INVALID_TOPIC_EXCEPTION too.
    pub(super) fn unless_client_may(what: &str, name: &str) -> Result<(), Refusal> {
        if crate::groups::is_internal_topic(name) {
            return Err(Refusal::new(
                ResponseError::InvalidTopicException,
                format!("cannot {what} internal topic {name:?}: the group coordinator owns it"),
            ));
        }
        Ok(())
    }

    /// The message as a response field.
    pub(super) fn message_field(&self) -> Option<StrBytes> {
        Some(StrBytes::from_string(self.message.clone()))
    }
}

impl From<LogError> for Refusal {
    fn from(error: LogError) -> Refusal {
        Refusal {
            code: log_error_i16(&error),
            message: error.to_string(),
        }
    }
}

/// The items that occur more than once in `items` (Kafka refuses every copy of those).
pub(super) fn repeated<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for item in items {
        if let Some(again) = seen.replace(item) {
            twice.insert(again);
        }
    }
    twice
}

/// Replication factors a single broker can honour: -1 (the default) and 1.
const SINGLE_BROKER_REPLICATION_FACTORS: [i16; 2] = [-1, 1];

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let with_configs = header.request_api_version >= 5;
    let duplicates = repeated(request.topics.iter().map(|topic| topic.name.0.as_str()));
    let mut budget = PartitionBudget::new();
    let results = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.clone();
            let outcome = if duplicates.contains(topic.name.0.as_str()) {
                Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "topic {:?} appears more than once in the request",
                        name.0.as_str()
                    ),
                ))
            } else {
                create_one(ctx, topic, request.validate_only, &mut budget)
            };
            let result = CreatableTopicResult::default().with_name(name);
            match outcome {
                Ok(info) => created(ctx, result, &info, with_configs),
                Err(refusal) => refused(result, &refusal),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Checks one topic's request and hands it to storage: first to validate (so a budget
/// refusal only ever hits an otherwise valid topic), then, unless `validate_only`, to create.
fn create_one(
    ctx: &BrokerContext,
    topic: &CreatableTopic,
    validate_only: bool,
    budget: &mut PartitionBudget,
) -> Result<TopicInfo, Refusal> {
    Refusal::unless_client_may("create", topic.name.0.as_str())?;
    if !SINGLE_BROKER_REPLICATION_FACTORS.contains(&topic.replication_factor) {
        return Err(Refusal::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is impossible: this cluster has a single broker \
                 (use 1 or -1)",
                topic.replication_factor
            ),
        ));
    }
    if !topic.assignments.is_empty() {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "manual replica assignments are not supported: give num_partitions instead",
        ));
    }
    let partitions = match topic.num_partitions {
        -1 => ctx.default_partitions,
        count => count,
    };
    let overrides = requested_configs(topic)?;
    let name = topic.name.0.as_str();
    let checked = ctx
        .logs
        .create_topic(name, partitions, overrides.clone(), true)?;
    budget.take(i64::from(checked.partitions))?;
    if validate_only {
        return Ok(checked);
    }
    Ok(ctx.logs.create_topic(name, partitions, overrides, false)?)
}

/// The request's configs as an overrides map; storage validates names and values.
fn requested_configs(topic: &CreatableTopic) -> Result<BTreeMap<String, String>, Refusal> {
    let configs =
        (topic.configs.iter()).map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
    overrides_map(configs, ResponseError::InvalidConfig, "")
}

/// Configs named in a request as an overrides map: a null value is INVALID_CONFIG (`null_hint`
/// ends its message), a name given twice is `duplicate` (CreateTopics and AlterConfigs answer
/// it with different codes, as Kafka does).
pub(super) fn overrides_map<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    duplicate: ResponseError,
    null_hint: &str,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut overrides = BTreeMap::new();
    for (name, value) in configs {
        let Some(value) = value else {
            return Err(Refusal::new(
                ResponseError::InvalidConfig,
                format!("config {name:?} has a null value{null_hint}"),
            ));
        };
        if overrides
            .insert(name.to_owned(), value.to_owned())
            .is_some()
        {
            return Err(Refusal::new(
                duplicate,
                format!("config {name:?} is given more than once"),
            ));
        }
    }
    Ok(overrides)
}

fn created(
    ctx: &BrokerContext,
    result: CreatableTopicResult,
    info: &TopicInfo,
    with_configs: bool,
) -> CreatableTopicResult {
    let configs = with_configs.then(|| {
        info.config
            .describe(&info.overrides)
            .into_iter()
            .map(|entry| {
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_static_str(entry.name))
                    .with_config_source(config_source(ctx, &entry))
                    .with_read_only(entry.read_only)
                    .with_value(Some(StrBytes::from_string(entry.value)))
            })
            .collect()
    });
    result
        .with_topic_id(info.id)
        .with_error_code(0)
        .with_error_message(None)
        .with_num_partitions(info.partitions)
        .with_replication_factor(1)
        .with_configs(configs.or(Some(Vec::new())))
}

fn refused(result: CreatableTopicResult, refusal: &Refusal) -> CreatableTopicResult {
    result
        .with_error_code(refusal.code)
        .with_error_message(refusal.message_field())
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_configs(None)
}

/// A broker context over a real `LogManager` in a temporary directory, shared by the unit
/// tests of every admin handler.
#[cfg(test)]
pub(crate) mod fixture {
    use std::sync::Arc;

    use bytes::BytesMut;
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use runnel_protocol::batch::RecordBatch;
    use tempfile::TempDir;

    use crate::api::BrokerContext;
    use crate::log::{LogManager, LogManagerConfig, TopicConfig};

    pub const NODE_ID: i32 = 7;

    /// Owns the data directory; shuts the log manager down before it is removed.
    pub struct Fixture {
        pub ctx: BrokerContext,
        _dir: TempDir,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = self.ctx.logs.shutdown();
        }
    }

    pub fn broker() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig {
            data_dir: dir.path().to_path_buf(),
            topic_defaults: TopicConfig::default(),
            node_id: NODE_ID,
            retention_check_interval_ms: 3_600_000,
            open_segments_max: 64,
            page_cache_bytes: 0,
        })
        .unwrap();
        let groups = crate::groups::GroupCoordinator::open(
            logs.clone(),
            crate::groups::GroupConfig::default(),
            std::sync::Arc::new(crate::groups::SystemClock),
        )
        .unwrap();
        let dynamic_expiration = logs.dynamic_producer_expiration();
        let ctx = BrokerContext {
            logs,
            groups,
            node_id: NODE_ID,
            advertised_host: "127.0.0.1".to_owned(),
            advertised_port: 19092,
            cluster_id: "runnel-test-cluster".to_owned(),
            auto_create_topics: true,
            default_partitions: 3,
            static_config_keys: std::collections::BTreeSet::new(),
            static_unit_configs: std::collections::BTreeMap::new(),
            producers: std::sync::Arc::new(
                crate::producers::ProducerRegistry::open(
                    dir.path(),
                    Default::default(),
                    dynamic_expiration,
                )
                .unwrap(),
            ),
            metrics: std::sync::Arc::new(crate::metrics::BrokerMetrics::new(
                crate::metrics::MetricsConfig::default(),
            )),
            decompression_budget: crate::budget::DecompressionBudget::new(
                crate::config::defaults::DECOMPRESSION_BYTES_MAX as u64,
            ),
            append_pool: crate::append_pool::AppendPool::with_threads(2),
            fetch_sessions: std::sync::Arc::new(crate::fetch_sessions::FetchSessions::new(
                crate::fetch_sessions::FETCH_SESSION_SLOTS_DEFAULT,
            )),
        };
        Fixture { ctx, _dir: dir }
    }

    /// One IncrementalAlterConfigs operation: config name, op (0 SET, 1 DELETE, 2 APPEND,
    /// 3 SUBTRACT), value.
    pub type Op = (&'static str, i8, Option<&'static str>);

    /// An IncrementalAlterConfigs resource with `ops`.
    pub fn incremental_resource(
        resource_type: i8,
        name: &str,
        ops: &[Op],
    ) -> kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::protocol::StrBytes;
        let configs = ops
            .iter()
            .map(|(key, op, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_config_operation(*op)
                    .with_value(value.map(StrBytes::from_static_str))
            })
            .collect();
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configs(configs)
    }

    pub fn header(version: i16) -> RequestHeader {
        RequestHeader::default().with_request_api_version(version)
    }

    /// Creates `name` straight through storage (not through the handler under test).
    pub fn topic(fixture: &Fixture, name: &str, partitions: i32) {
        fixture
            .ctx
            .logs
            .create_topic(name, partitions, Default::default(), false)
            .unwrap();
    }

    /// Appends `count` one-record batches to a partition.
    pub fn append(fixture: &Fixture, name: &str, partition: i32, count: i64) {
        let log: Arc<_> = fixture.ctx.logs.partition(name, partition).unwrap();
        for i in 0..count {
            let record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i,
                key: None,
                value: Some(bytes::Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
            };
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
            let batch = RecordBatch::parse(buf.freeze()).unwrap();
            log.append(&[batch]).unwrap();
        }
    }
}

#[cfg(test)]
#[path = "create_topics_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "create_topics_internal_tests.rs"]
mod internal_topic_tests;
