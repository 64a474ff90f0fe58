//! CreateTopics (v2–7): creates topics in the storage engine, one result per requested topic.
//!
//! This file also holds the small pieces the admin handlers share: [`Refusal`] (why one item
//! of a request was refused), [`repeated`] (names given twice in one request) and, for unit
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
    let mut overrides = BTreeMap::new();
    for config in &topic.configs {
        let name = config.name.as_str();
        let Some(value) = &config.value else {
            return Err(Refusal::new(
                ResponseError::InvalidConfig,
                format!("config {name:?} has a null value"),
            ));
        };
        if overrides
            .insert(name.to_owned(), value.as_str().to_owned())
            .is_some()
        {
            return Err(Refusal::new(
                ResponseError::InvalidConfig,
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
        let ctx = BrokerContext {
            logs,
            groups,
            node_id: NODE_ID,
            advertised_host: "127.0.0.1".to_owned(),
            advertised_port: 19092,
            cluster_id: "runnel-test-cluster".to_owned(),
            auto_create_topics: true,
            default_partitions: 3,
            static_topic_defaults: std::collections::BTreeSet::new(),
            producers: crate::producers::ProducerRegistry::open(dir.path()).unwrap(),
            metrics: std::sync::Arc::new(crate::metrics::BrokerMetrics::new(
                crate::metrics::MetricsConfig::default(),
            )),
            decompression_budget: crate::budget::DecompressionBudget::new(
                crate::config::defaults::DECOMPRESSION_BYTES_MAX as u64,
            ),
            append_pool: crate::append_pool::AppendPool::with_threads(2),
        };
        Fixture { ctx, _dir: dir }
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
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use proptest::prelude::*;

    use super::super::create_partitions::NEW_PARTITIONS_PER_REQUEST_MAX;
    use super::fixture::{broker, header};
    use super::*;

    fn topic(name: &str, partitions: i32) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
    }

    fn config(name: &'static str, value: Option<&'static str>) -> CreatableTopicConfig {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(value.map(StrBytes::from_static_str))
    }

    fn create(
        fixture: &fixture::Fixture,
        version: i16,
        topics: Vec<CreatableTopic>,
    ) -> Vec<CreatableTopicResult> {
        let request = CreateTopicsRequest::default().with_topics(topics);
        handle(&fixture.ctx, &header(version), request).topics
    }

    #[test]
    fn creates_with_requested_and_default_partition_counts() {
        let fixture = broker();
        let results = create(&fixture, 7, vec![topic("orders", 4), topic("events", -1)]);
        assert_eq!(results.len(), 2);
        assert!(results
            .iter()
            .all(|r| r.error_code == 0 && r.error_message.is_none()));
        assert_eq!(results[0].num_partitions, 4);
        assert_eq!(results[1].num_partitions, fixture.ctx.default_partitions);
        assert_eq!(results[0].replication_factor, 1);
        let stored = fixture.ctx.logs.topic("orders").unwrap();
        assert_eq!(stored.partitions, 4);
        assert_eq!(results[0].topic_id, stored.id);
        assert_eq!(fixture.ctx.logs.topic("events").unwrap().partitions, 3);
    }

    #[test]
    fn v5_plus_reports_effective_configs_with_sources() {
        let fixture = broker();
        let wanted =
            topic("compacted", 1).with_configs(vec![config("cleanup.policy", Some("compact"))]);
        let results = create(&fixture, 5, vec![wanted]);
        assert_eq!(results[0].error_code, 0);
        let configs = results[0].configs.as_ref().unwrap();
        let policy = configs
            .iter()
            .find(|c| c.name.as_str() == "cleanup.policy")
            .unwrap();
        assert_eq!(policy.value.as_ref().unwrap().as_str(), "compact");
        assert_eq!(policy.config_source, 1);
        let retention = configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(retention.config_source, 5);
        assert_eq!(
            fixture.ctx.logs.topic("compacted").unwrap().overrides.len(),
            1
        );
    }

    #[test]
    fn validate_only_creates_nothing() {
        let fixture = broker();
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic("dry", 2)])
            .with_validate_only(true);
        let results = handle(&fixture.ctx, &header(7), request).topics;
        assert_eq!(results[0].error_code, 0);
        assert!(fixture.ctx.logs.topic("dry").is_none());
    }

    #[test]
    fn refusals_carry_their_codes() {
        let fixture = broker();
        fixture::topic(&fixture, "taken", 1);
        let assignment = CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(fixture::NODE_ID)]);
        let cases = vec![
            (topic("taken", 1), ResponseError::TopicAlreadyExists),
            (topic("bad/name", 1), ResponseError::InvalidTopicException),
            (topic("", 1), ResponseError::InvalidTopicException),
            (
                topic("rf3", 1).with_replication_factor(3),
                ResponseError::InvalidReplicationFactor,
            ),
            (
                topic("rf0", 1).with_replication_factor(0),
                ResponseError::InvalidReplicationFactor,
            ),
            (topic("zero", 0), ResponseError::InvalidPartitions),
            (topic("negative", -5), ResponseError::InvalidPartitions),
            (
                topic("manual", -1).with_assignments(vec![assignment]),
                ResponseError::InvalidRequest,
            ),
            (
                topic("unknown-key", 1).with_configs(vec![config("no.such.key", Some("1"))]),
                ResponseError::InvalidConfig,
            ),
            (
                topic("bad-value", 1).with_configs(vec![config("retention.ms", Some("soon"))]),
                ResponseError::InvalidConfig,
            ),
            (
                topic("null-value", 1).with_configs(vec![config("retention.ms", None)]),
                ResponseError::InvalidConfig,
            ),
        ];
        let (topics, codes): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
        let results = create(&fixture, 7, topics);
        for (result, code) in results.iter().zip(codes) {
            assert_eq!(result.error_code, code.code(), "{:?}", result.name);
            assert!(result.error_message.is_some(), "{:?}", result.name);
            assert_eq!(result.num_partitions, -1);
        }
        assert_eq!(fixture.ctx.logs.topics().len(), 1);
    }

    #[test]
    fn duplicate_names_refuse_every_copy() {
        let fixture = broker();
        let results = create(
            &fixture,
            2,
            vec![topic("twice", 1), topic("once", 1), topic("twice", 2)],
        );
        let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(codes, vec![invalid, 0, invalid]);
        assert!(fixture.ctx.logs.topic("twice").is_none());
    }

    #[test]
    fn one_request_may_add_only_so_many_partitions() {
        let fixture = broker();
        let half = (NEW_PARTITIONS_PER_REQUEST_MAX / 2 + 1) as i32;
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                topic("first", half),
                topic("second", half),
                topic("small", 1),
            ])
            .with_validate_only(true);
        let codes: Vec<i16> = handle(&fixture.ctx, &header(7), request)
            .topics
            .iter()
            .map(|r| r.error_code)
            .collect();
        assert_eq!(codes, vec![0, ResponseError::PolicyViolation.code(), 0]);
    }

    #[test]
    fn repeated_finds_only_items_seen_twice() {
        let twice = repeated(["a", "b", "a", "c", "a"]);
        assert_eq!(twice.into_iter().collect::<Vec<_>>(), vec!["a"]);
        assert!(repeated(Vec::<u8>::new()).is_empty());
    }

    fn any_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,2}",
            "[ -~]{0,12}",
            "\\PC{0,6}",
            Just(".".to_owned()),
            Just("x".repeat(300)),
        ]
    }

    fn any_config() -> impl Strategy<Value = CreatableTopicConfig> {
        let key = prop_oneof![
            Just("retention.ms"),
            Just("cleanup.policy"),
            Just("segment.bytes"),
            Just("bogus")
        ];
        (key, proptest::option::of("[-0-9a-z,]{0,6}")).prop_map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(value.map(StrBytes::from_string))
        })
    }

    fn any_topic() -> impl Strategy<Value = CreatableTopic> {
        let partitions = prop_oneof![-3i32..6, Just(i32::MAX), Just(i32::MIN)];
        let configs = proptest::collection::vec(any_config(), 0..3);
        (any_name(), partitions, -2i16..4, configs).prop_map(|(name, count, rf, configs)| {
            topic(&name, count)
                .with_replication_factor(rf)
                .with_configs(configs)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any request gets one answer per topic, in order, and storage holds exactly the
        /// topics answered with success.
        #[test]
        fn every_topic_gets_one_consistent_answer(
            topics in proptest::collection::vec(any_topic(), 0..6),
            validate_only in any::<bool>(),
        ) {
            let fixture = broker();
            let request = CreateTopicsRequest::default()
                .with_topics(topics.clone())
                .with_validate_only(validate_only);
            let results = handle(&fixture.ctx, &header(7), request).topics;
            prop_assert_eq!(results.len(), topics.len());
            let mut created = 0;
            for (result, asked) in results.iter().zip(&topics) {
                prop_assert_eq!(&result.name, &asked.name);
                prop_assert_eq!(result.error_code == 0, result.error_message.is_none());
                if result.error_code == 0 {
                    created += 1;
                    prop_assert!(result.num_partitions >= 1);
                }
            }
            let stored = fixture.ctx.logs.topics().len();
            prop_assert_eq!(stored, if validate_only { 0 } else { created });
        }
    }
}

#[cfg(test)]
mod internal_topic_tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
        MetadataRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::fixture::{append, broker, header, topic};
    use crate::api::{create_partitions, delete_records, delete_topics, metadata};
    use crate::groups::OFFSETS_TOPIC;

    fn name() -> TopicName {
        TopicName(StrBytes::from_static_str(OFFSETS_TOPIC))
    }

    #[test]
    fn clients_cannot_create_grow_trim_or_delete_the_coordinators_topic() {
        let fixture = broker();
        let ctx = &fixture.ctx;
        let invalid = ResponseError::InvalidTopicException.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        // Before the coordinator made it: neither Metadata nor CreateTopics creates it.
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name())),
        ]));
        let answer = metadata::handle(ctx, &header(4), request);
        assert_eq!(answer.topics[0].error_code, unknown);
        let create = CreatableTopic::default()
            .with_name(name())
            .with_num_partitions(3)
            .with_replication_factor(-1);
        let request = CreateTopicsRequest::default().with_topics(vec![create]);
        assert_eq!(
            super::handle(ctx, &header(5), request).topics[0].error_code,
            invalid
        );
        assert!(ctx.logs.topic(OFFSETS_TOPIC).is_none());
        // Once it exists (as the coordinator creates it), it cannot be grown, trimmed or deleted.
        topic(&fixture, OFFSETS_TOPIC, 1);
        append(&fixture, OFFSETS_TOPIC, 0, 3);
        let grow = CreatePartitionsTopic::default()
            .with_name(name())
            .with_count(4)
            .with_assignments(None);
        let request = CreatePartitionsRequest::default().with_topics(vec![grow]);
        let answer = create_partitions::handle(ctx, &header(3), request);
        assert_eq!(answer.results[0].error_code, invalid);
        let trim = DeleteRecordsTopic::default()
            .with_name(name())
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(2)]);
        let request = DeleteRecordsRequest::default().with_topics(vec![trim]);
        let answer = delete_records::handle(ctx, &header(2), request);
        assert_eq!(answer.topics[0].partitions[0].error_code, invalid);
        let request = DeleteTopicsRequest::default().with_topic_names(vec![name()]);
        let answer = delete_topics::answered(ctx, &header(5), request);
        assert_eq!(answer.responses[0].error_code, invalid);
        let info = ctx.logs.topic(OFFSETS_TOPIC).expect("still there");
        assert_eq!(info.partitions, 1);
        let log = ctx.logs.partition(OFFSETS_TOPIC, 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 3));
    }
}
