use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::protocol::StrBytes;

use super::super::create_topics::fixture::{broker, header, topic, Fixture, NODE_ID};
use super::*;

fn resource(resource_type: i8, name: &str) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_configuration_keys(None)
}

fn describe(
    fixture: &Fixture,
    version: i16,
    request: DescribeConfigsRequest,
) -> Vec<DescribeConfigsResult> {
    handle(&fixture.ctx, &header(version), request).results
}

fn one(
    fixture: &Fixture,
    version: i16,
    resource: DescribeConfigsResource,
) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    describe(fixture, version, request).remove(0)
}

fn find<'a>(result: &'a DescribeConfigsResult, name: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap()
}

#[test]
fn topic_lists_every_known_key_with_its_source() {
    let fixture = broker();
    let overrides = BTreeMap::from([("retention.ms".to_owned(), "60000".to_owned())]);
    fixture
        .ctx
        .logs
        .create_topic("t", 1, overrides, false)
        .unwrap();
    let result = one(&fixture, 1, resource(RESOURCE_TOPIC, "t"));
    assert_eq!(result.error_code, 0);
    assert_eq!(result.resource_type, RESOURCE_TOPIC);
    assert_eq!(result.configs.len(), TopicConfig::KNOWN_KEYS.len());
    let retention = find(&result, "retention.ms");
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "60000");
    assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC);
    assert!(!retention.read_only && !retention.is_sensitive);
    assert!(retention.synonyms.is_empty());
    let segment = find(&result, "segment.bytes");
    assert_eq!(segment.config_source, SOURCE_DEFAULT);
    assert_eq!(segment.value.as_ref().unwrap().as_str(), "1073741824");
}

#[test]
fn requested_keys_filter_and_unknown_keys_are_omitted() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    let keys = ["cleanup.policy", "no.such.key"]
        .map(StrBytes::from_static_str)
        .to_vec();
    let result = one(
        &fixture,
        4,
        resource(RESOURCE_TOPIC, "t").with_configuration_keys(Some(keys)),
    );
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["cleanup.policy"]);
    assert_eq!(result.configs[0].config_type, config_type::LIST);
    let empty = resource(RESOURCE_TOPIC, "t").with_configuration_keys(Some(Vec::new()));
    let all = one(&fixture, 4, empty);
    assert_eq!(all.configs.len(), TopicConfig::KNOWN_KEYS.len());
}

#[test]
fn synonyms_and_documentation_when_asked() {
    let fixture = broker();
    let overrides = BTreeMap::from([("retention.ms".to_owned(), "60000".to_owned())]);
    fixture
        .ctx
        .logs
        .create_topic("t", 1, overrides, false)
        .unwrap();
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource(RESOURCE_TOPIC, "t")])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    let result = describe(&fixture, 4, request).remove(0);
    let retention = find(&result, "retention.ms");
    let synonyms: Vec<(&str, &str, i8)> = retention
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.value.as_ref().unwrap().as_str(),
                s.source,
            )
        })
        .collect();
    // Kafka has no built-in log.retention.ms, so nothing follows the override.
    assert_eq!(synonyms, vec![("retention.ms", "60000", 1)]);
    assert_eq!(retention.config_type, config_type::LONG);
    assert!(retention
        .documentation
        .as_ref()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(find(&result, "segment.bytes").synonyms.len(), 1);
}

/// (name, value, source) of each synonym of `key`.
fn synonyms_of(result: &DescribeConfigsResult, key: &str) -> Vec<(String, String, i8)> {
    let synonyms = find(result, key).synonyms.iter();
    synonyms
        .map(|s| {
            let value = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (s.name.to_string(), value, s.source)
        })
        .collect()
}

fn owned(synonyms: &[(&str, &str, i8)]) -> Vec<(String, String, i8)> {
    let owned = synonyms
        .iter()
        .map(|&(n, v, s)| (n.to_owned(), v.to_owned(), s));
    owned.collect()
}

/// Kafka lists a topic config's broker synonyms from its operator-set ones down to its
/// built-in defaults, dropping those ahead of the first synonym's name
/// (`ConfigHelper.configSynonyms`): retention.ms, segment.ms and segment.jitter.ms have
/// none until set (log.retention.ms, log.roll.ms and log.roll.jitter.ms have no
/// built-in default), and a set one is followed by the built-in defaults.
#[test]
fn broker_synonyms_follow_kafkas_order_and_defaults() {
    let mut fixture = broker();
    topic(&fixture, "t", 1);
    let request = || {
        DescribeConfigsRequest::default()
            .with_resources(vec![resource(RESOURCE_TOPIC, "t")])
            .with_include_synonyms(true)
    };
    let unset = describe(&fixture, 4, request()).remove(0);
    for key in ["retention.ms", "segment.ms", "segment.jitter.ms"] {
        assert_eq!(synonyms_of(&unset, key), Vec::new(), "{key}");
        assert_eq!(find(&unset, key).config_source, SOURCE_DEFAULT, "{key}");
    }
    let segment_bytes = [("log.segment.bytes", "1073741824", SOURCE_DEFAULT)];
    assert_eq!(synonyms_of(&unset, "segment.bytes"), owned(&segment_bytes));
    // The time keys are set under their first broker name (`log.retention.hours` alone
    // would not count: see `a_time_default_set_in_hours_is_described_as_kafka_does`).
    for (name, value) in [
        ("log.retention.ms", "604800000"),
        ("log.roll.ms", "604800000"),
        ("log.roll.jitter.ms", "0"),
    ] {
        fixture
            .ctx
            .static_unit_configs
            .insert(name, value.to_owned());
    }
    fixture
        .ctx
        .static_config_keys
        .insert("segment.bytes".to_owned());
    let set = describe(&fixture, 4, request()).remove(0);
    type Synonym<'a> = (&'a str, &'a str, i8);
    let expected: [(&str, &[Synonym<'_>]); 4] = [
        (
            "retention.ms",
            &[
                ("log.retention.ms", "604800000", SOURCE_STATIC_BROKER),
                ("log.retention.hours", "168", SOURCE_DEFAULT),
            ],
        ),
        (
            "segment.ms",
            &[
                ("log.roll.ms", "604800000", SOURCE_STATIC_BROKER),
                ("log.roll.hours", "168", SOURCE_DEFAULT),
            ],
        ),
        (
            "segment.jitter.ms",
            &[
                ("log.roll.jitter.ms", "0", SOURCE_STATIC_BROKER),
                ("log.roll.jitter.hours", "0", SOURCE_DEFAULT),
            ],
        ),
        (
            "segment.bytes",
            &[
                ("log.segment.bytes", "1073741824", SOURCE_STATIC_BROKER),
                ("log.segment.bytes", "1073741824", SOURCE_DEFAULT),
            ],
        ),
    ];
    for (key, synonyms) in expected {
        assert_eq!(synonyms_of(&set, key), owned(synonyms), "{key}");
        assert_eq!(find(&set, key).config_source, SOURCE_STATIC_BROKER, "{key}");
    }
}

#[test]
fn documentation_needs_v3() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource(RESOURCE_TOPIC, "t")])
        .with_include_documentation(true);
    let result = describe(&fixture, 2, request).remove(0);
    assert!(result.configs.iter().all(|c| c.documentation.is_none()));
}

#[test]
fn our_broker_describes_its_defaults() {
    let fixture = broker();
    let result = one(&fixture, 4, resource(RESOURCE_BROKER, &NODE_ID.to_string()));
    assert_eq!(result.error_code, 0);
    let dynamic_defaults = one(&fixture, 4, resource(RESOURCE_BROKER, ""));
    assert_eq!(dynamic_defaults.error_code, 0);
    assert!(dynamic_defaults.configs.is_empty());
    assert!(result
        .configs
        .iter()
        .all(|c| c.config_source == SOURCE_DEFAULT));
    // The topic defaults can change at run time (KIP-226); the identity cannot.
    assert!(!find(&result, "log.retention.ms").read_only);
    assert!(find(&result, "node.id").read_only);
    // As Kafka: `log.retention.ms` has no built-in default (null); the hours one has.
    assert_eq!(find(&result, "log.retention.ms").value, None);
    assert_eq!(
        find(&result, "log.retention.hours")
            .value
            .as_ref()
            .unwrap()
            .as_str(),
        "168"
    );
    assert_eq!(
        find(&result, "num.partitions")
            .value
            .as_ref()
            .unwrap()
            .as_str(),
        "3"
    );
    assert_eq!(
        find(&result, "node.id").value.as_ref().unwrap().as_str(),
        "7"
    );
    assert_eq!(
        find(&result, "auto.create.topics.enable").config_type,
        config_type::BOOLEAN
    );
}

#[test]
fn errors_stay_with_their_resource() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        resource(RESOURCE_TOPIC, "missing"),
        resource(RESOURCE_BROKER, "99"),
        resource(RESOURCE_BROKER, "not-a-number"),
        resource(8, "7"),
        resource(RESOURCE_TOPIC, "t"),
    ]);
    let codes: Vec<i16> = describe(&fixture, 1, request)
        .iter()
        .map(|r| r.error_code)
        .collect();
    let invalid = ResponseError::InvalidRequest.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![unknown, invalid, invalid, invalid, 0]);
}

#[test]
fn every_known_storage_key_has_a_description() {
    for name in TopicConfig::KNOWN_KEYS {
        assert!(
            key_info(name).is_some(),
            "{name} has no type/synonym/doc entry"
        );
    }
}

/// `producer.id.expiration.ms` is listed with Kafka's default and source, or the operator's
/// value as STATIC_BROKER_CONFIG; its check interval (internal in Kafka) only when set.
#[test]
fn our_broker_describes_producer_expiration() {
    let mut fixture = broker();
    let result = one(&fixture, 4, resource(RESOURCE_BROKER, &NODE_ID.to_string()));
    let expiration = find(&result, "producer.id.expiration.ms");
    assert_eq!(expiration.value.as_ref().unwrap().as_str(), "86400000");
    assert_eq!(
        (expiration.config_source, expiration.config_type),
        (SOURCE_DEFAULT, config_type::INT)
    );
    let interval_key = "producer.id.expiration.check.interval.ms";
    assert!(result
        .configs
        .iter()
        .all(|c| c.name.as_str() != interval_key));

    let dir = tempfile::tempdir().unwrap();
    let config = crate::producers::ProducerStateConfig {
        producer_id_expiration_ms: Some(5_000),
        producer_id_expiration_check_interval_ms: Some(250),
    };
    let dynamic = fixture.ctx.logs.dynamic_producer_expiration();
    let registry = crate::producers::ProducerRegistry::open(dir.path(), config, dynamic).unwrap();
    fixture.ctx.producers = std::sync::Arc::new(registry);
    let result = one(&fixture, 4, resource(RESOURCE_BROKER, &NODE_ID.to_string()));
    for (key, value) in [("producer.id.expiration.ms", "5000"), (interval_key, "250")] {
        let row = find(&result, key);
        assert_eq!(row.value.as_ref().unwrap().as_str(), value, "{key}");
        assert_eq!(row.config_source, SOURCE_STATIC_BROKER, "{key}");
        // Only the interval is read-only: Kafka alters the expiration (KIP-854).
        assert_eq!(row.read_only, key == interval_key, "{key}");
    }
}

#[test]
fn broker_only_settings_the_operator_gave_are_static() {
    let mut fixture = broker();
    (fixture.ctx.static_config_keys).insert("num.partitions".to_owned());
    (fixture.ctx.static_config_keys).insert("node.id".to_owned());
    let result = one(&fixture, 4, resource(RESOURCE_BROKER, &NODE_ID.to_string()));
    let source = |name: &str| find(&result, name).config_source;
    assert_eq!(source("num.partitions"), SOURCE_STATIC_BROKER);
    assert_eq!(source("node.id"), SOURCE_STATIC_BROKER);
    assert_eq!(source("broker.id"), SOURCE_STATIC_BROKER);
    assert_eq!(source("auto.create.topics.enable"), SOURCE_DEFAULT);
    assert_eq!(source("default.replication.factor"), SOURCE_DEFAULT);
}
