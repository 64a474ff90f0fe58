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
        (
            topic("repeated-key", 1).with_configs(vec![
                config("retention.ms", Some("1000")),
                config("retention.ms", Some("2000")),
            ]),
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
