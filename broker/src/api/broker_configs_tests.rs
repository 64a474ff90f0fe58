use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::super::create_topics::fixture::{
    broker, header, incremental_resource, topic, Fixture, Op, NODE_ID,
};
use super::super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC, SOURCE_DYNAMIC_BROKER};
use super::*;

/// A row's value, source and synonyms as (name, value, source).
type Row = (String, i8, Vec<(String, String, i8)>);

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

fn incremental(
    fixture: &Fixture,
    name: &str,
    ops: &[Op],
    validate_only: bool,
) -> (i16, Option<String>) {
    let resource = incremental_resource(RESOURCE_BROKER, name, ops);
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(validate_only);
    let response =
        super::super::incremental_alter_configs::handle(&fixture.ctx, &header(1), request);
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn set(fixture: &Fixture, name: &str, key: &'static str, value: &'static str) -> i16 {
    incremental(fixture, name, &[(key, SET, Some(value))], false).0
}

fn describe(fixture: &Fixture, resource_type: i8, name: &str) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(true);
    super::super::describe_configs::handle(&fixture.ctx, &header(4), request)
        .results
        .remove(0)
}

/// (value, source, synonyms as (name, value, source)) of one row.
fn row_of(result: &DescribeConfigsResult, name: &str) -> Option<Row> {
    let row = result.configs.iter().find(|c| c.name.as_str() == name)?;
    let synonyms = row
        .synonyms
        .iter()
        .map(|s| {
            let value = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (s.name.to_string(), value, s.source)
        })
        .collect();
    let value = row
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    Some((value, row.config_source, synonyms))
}

fn me() -> String {
    NODE_ID.to_string()
}

#[test]
fn dynamic_layers_show_in_every_describe() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    assert_eq!(set(&fixture, "", "log.retention.ms", "5000"), 0);
    let cluster = describe(&fixture, RESOURCE_BROKER, "");
    assert_eq!(cluster.configs.len(), 1);
    let dynamic_default = (
        "log.retention.ms".to_owned(),
        "5000".to_owned(),
        SOURCE_DYNAMIC_DEFAULT_BROKER,
    );
    // Kafka's built-in default comes under its unit synonym.
    let built_in = (
        "log.retention.hours".to_owned(),
        "168".to_owned(),
        SOURCE_DEFAULT,
    );
    // The cluster default resource lists only its own layer (Kafka's
    // `createBrokerConfigEntry` filters the synonyms of `perBrokerConfig = false`).
    assert_eq!(
        row_of(&cluster, "log.retention.ms").unwrap(),
        (
            "5000".to_owned(),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![dynamic_default.clone()]
        )
    );
    let topic_row = row_of(&describe(&fixture, RESOURCE_TOPIC, "t"), "retention.ms").unwrap();
    assert_eq!(
        topic_row,
        (
            "5000".to_owned(),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![dynamic_default.clone(), built_in.clone()]
        )
    );
    assert_eq!(
        fixture.ctx.logs.topic("t").unwrap().config.retention_ms,
        5000
    );

    assert_eq!(set(&fixture, &me(), "log.retention.ms", "4000"), 0);
    let mine = row_of(
        &describe(&fixture, RESOURCE_BROKER, &me()),
        "log.retention.ms",
    )
    .unwrap();
    let dynamic_broker = (
        "log.retention.ms".to_owned(),
        "4000".to_owned(),
        SOURCE_DYNAMIC_BROKER,
    );
    assert_eq!(
        mine,
        (
            "4000".to_owned(),
            SOURCE_DYNAMIC_BROKER,
            vec![
                dynamic_broker.clone(),
                dynamic_default.clone(),
                built_in.clone()
            ]
        )
    );
    let topic_row = row_of(&describe(&fixture, RESOURCE_TOPIC, "t"), "retention.ms").unwrap();
    assert_eq!(topic_row.1, SOURCE_DYNAMIC_BROKER);
    assert_eq!(
        fixture.ctx.logs.topic("t").unwrap().config.retention_ms,
        4000
    );
    // The cluster resource shows its own set, without this broker's value.
    let cluster = describe(&fixture, RESOURCE_BROKER, "");
    assert_eq!(
        row_of(&cluster, "log.retention.ms").unwrap().2,
        vec![dynamic_default]
    );

    assert_eq!(
        incremental(
            &fixture,
            &me(),
            &[("log.retention.ms", DELETE, None)],
            false
        )
        .0,
        0
    );
    assert_eq!(
        incremental(&fixture, "", &[("log.retention.ms", DELETE, None)], false).0,
        0
    );
    assert!(describe(&fixture, RESOURCE_BROKER, "").configs.is_empty());
    let restored = row_of(&describe(&fixture, RESOURCE_TOPIC, "t"), "retention.ms").unwrap();
    assert_eq!(restored.0, "604800000");
    assert_eq!(restored.1, SOURCE_DEFAULT);
}

#[test]
fn refusals_follow_kafka() {
    let fixture = broker();
    let request = ResponseError::InvalidRequest.code();
    let config = ResponseError::InvalidConfig.code();
    let cases: [(&str, &[Op], i16); 8] = [
        ("99", &[("log.retention.ms", SET, Some("1"))], request),
        ("x", &[("log.retention.ms", SET, Some("1"))], request),
        ("", &[("num.partitions", SET, Some("2"))], request),
        ("", &[("node.id", SET, Some("2"))], request),
        ("", &[("no.such.config", SET, Some("2"))], request),
        // The topic name is not the broker's.
        ("", &[("retention.ms", SET, Some("2"))], request),
        ("", &[("log.retention.ms", SET, Some("soon"))], request),
        ("", &[("log.retention.ms", APPEND, Some("1"))], config),
    ];
    for (name, ops, code) in cases {
        let (got, message) = incremental(&fixture, name, ops, false);
        assert_eq!(got, code, "{name:?} {ops:?}");
        assert!(message.is_some());
    }
    assert!(fixture.ctx.logs.broker_defaults().cluster.is_empty());
    let (_, message) = incremental(&fixture, "", &[("num.partitions", SET, Some("2"))], false);
    assert!(message
        .unwrap()
        .contains("Cannot update these configs dynamically: num.partitions"));
}

#[test]
fn validate_only_append_and_alter_configs() {
    let fixture = broker();
    assert_eq!(
        incremental(&fixture, "", &[("log.retention.ms", SET, Some("1"))], true).0,
        0
    );
    assert!(fixture.ctx.logs.broker_defaults().cluster.is_empty());
    // APPEND starts from the static default (`delete`).
    let append = [("log.cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(incremental(&fixture, &me(), &append, false).0, 0);
    let policy = &fixture.ctx.logs.broker_defaults().this_broker["cleanup.policy"];
    assert_eq!(policy, "delete,compact");

    // AlterConfigs replaces the whole set of the resource.
    assert_eq!(set(&fixture, "", "log.segment.bytes", "1048576"), 0);
    let whole = |name: &str, configs: &[(&'static str, Option<&'static str>)]| {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(k))
                    .with_value(v.map(StrBytes::from_static_str))
            })
            .collect();
        let resource =
            kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(configs);
        let request = AlterConfigsRequest::default().with_resources(vec![resource]);
        super::super::alter_configs::handle(&fixture.ctx, &header(2), request).responses[0]
            .error_code
    };
    assert_eq!(whole("", &[("log.roll.ms", Some("60000"))]), 0);
    let cluster = fixture.ctx.logs.broker_defaults().cluster.clone();
    assert_eq!(
        cluster.into_iter().collect::<Vec<_>>(),
        vec![("segment.ms".to_owned(), "60000".to_owned())]
    );
    assert_eq!(
        whole("", &[("log.roll.ms", None)]),
        ResponseError::InvalidRequest.code()
    );
    assert_eq!(
        whole("", &[("broker.id", Some("3"))]),
        ResponseError::InvalidRequest.code()
    );
    let expiration = "producer.id.expiration.ms";
    assert_eq!(whole("", &[(expiration, Some("7000"))]), 0);
    assert_eq!(fixture.ctx.producers.expiration_ms(), 7000);
    assert_eq!(
        whole("", &[(expiration, Some("0"))]),
        ResponseError::InvalidRequest.code()
    );
    assert_eq!(whole("", &[]), 0);
    assert!(fixture.ctx.logs.broker_defaults().cluster.is_empty());
    assert_eq!(fixture.ctx.producers.expiration_ms(), 86_400_000);
}

/// `producer.id.expiration.ms` is a dynamic broker config (Kafka's KIP-854): alterable on
/// both resources, held to the static flag's rule (an INT of at least 1), described with
/// its sources and synonyms in Kafka's order, and in force for the producer registry at
/// once. Its check interval stays static.
#[test]
fn producer_expiration_is_a_dynamic_broker_config() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    let key = "producer.id.expiration.ms";
    let in_force = || fixture.ctx.producers.expiration_ms();
    let synonym = |value: &str, source| (key.to_owned(), value.to_owned(), source);
    let invalid_request = ResponseError::InvalidRequest.code();
    for bad in ["0", "-5", "soon", "2147483648"] {
        assert_eq!(set(&fixture, "", key, bad), invalid_request, "{bad}");
        assert_eq!(set(&fixture, &me(), key, bad), invalid_request, "{bad}");
    }
    let append = [(key, APPEND, Some("1"))];
    let code = incremental(&fixture, "", &append, false).0;
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert_eq!(
        incremental(&fixture, "", &[(key, SET, Some("5000"))], true).0,
        0
    );
    assert_eq!(in_force(), 86_400_000);
    assert_eq!(row_of(&describe(&fixture, RESOURCE_BROKER, ""), key), None);

    assert_eq!(set(&fixture, "", key, "5000"), 0);
    assert_eq!(in_force(), 5000);
    let default = synonym("86400000", SOURCE_DEFAULT);
    let cluster = synonym("5000", SOURCE_DYNAMIC_DEFAULT_BROKER);
    assert_eq!(
        row_of(&describe(&fixture, RESOURCE_BROKER, ""), key),
        Some((
            "5000".to_owned(),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![cluster.clone()]
        ))
    );
    assert_eq!(set(&fixture, &me(), key, "3000"), 0);
    assert_eq!(in_force(), 3000);
    let mine = describe(&fixture, RESOURCE_BROKER, &me());
    let mine_synonyms = vec![synonym("3000", SOURCE_DYNAMIC_BROKER), cluster, default];
    assert_eq!(
        row_of(&mine, key),
        Some(("3000".to_owned(), SOURCE_DYNAMIC_BROKER, mine_synonyms))
    );
    let row = mine
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap();
    assert!(!row.read_only);
    // Not a topic default: no topic describes it, and the topic defaults are untouched.
    let logs = &fixture.ctx.logs;
    assert_eq!(*logs.topic_defaults(), *logs.static_topic_defaults());
    let topic_rows = describe(&fixture, RESOURCE_TOPIC, "t");
    assert!(row_of(&topic_rows, "retention.ms").is_some() && row_of(&topic_rows, key).is_none());

    assert_eq!(
        incremental(&fixture, &me(), &[(key, DELETE, None)], false).0,
        0
    );
    assert_eq!(in_force(), 5000);
    assert_eq!(
        incremental(&fixture, "", &[(key, DELETE, None)], false).0,
        0
    );
    assert_eq!(in_force(), 86_400_000);
    let mine = describe(&fixture, RESOURCE_BROKER, &me());
    assert_eq!(
        row_of(&mine, key),
        Some((
            "86400000".to_owned(),
            SOURCE_DEFAULT,
            vec![synonym("86400000", SOURCE_DEFAULT)]
        ))
    );
    let interval = "producer.id.expiration.check.interval.ms";
    assert_eq!(set(&fixture, "", interval, "5"), invalid_request);
}

/// (name, value, source, synonyms) of each named row, in order.
fn rows_named(result: &DescribeConfigsResult, names: &[&str]) -> Vec<(String, Row)> {
    let row = |name: &&str| (name.to_string(), row_of(result, name).unwrap());
    names.iter().map(row).collect()
}

fn expect(name: &str, value: &str, source: i8, synonyms: &[(&str, &str, i8)]) -> (String, Row) {
    let synonyms = (synonyms.iter())
        .map(|(name, value, source)| (name.to_string(), value.to_string(), *source))
        .collect();
    (name.to_owned(), (value.to_owned(), source, synonyms))
}

const RETENTION: [&str; 3] = [
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
];

/// Kafka lists every unit of the time settings (`KafkaConfig`'s `log.retention.ms`,
/// `.minutes`, `.hours`, …) with its own value: null where it has no built-in default and is
/// not set; the coarse ones typed INT.
#[test]
fn a_broker_lists_each_time_unit_as_kafka_does() {
    let fixture = broker();
    let mine = describe(&fixture, RESOURCE_BROKER, &me());
    let hours = ("log.retention.hours", "168", SOURCE_DEFAULT);
    assert_eq!(
        rows_named(&mine, &RETENTION),
        [
            expect("log.retention.ms", "", SOURCE_DEFAULT, &[]),
            expect("log.retention.minutes", "", SOURCE_DEFAULT, &[]),
            expect("log.retention.hours", "168", SOURCE_DEFAULT, &[hours]),
        ]
    );
    let value = |name: &str| {
        let row = mine
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap();
        (row.value.as_ref().map(|v| v.to_string()), row.config_type)
    };
    let read_only = |name: &str| {
        let found = mine.configs.iter().find(|c| c.name.as_str() == name);
        found.unwrap().read_only
    };
    // Only the `.ms` names can change at run time, as in Kafka.
    assert!(!read_only("log.retention.ms") && !read_only("log.roll.jitter.ms"));
    assert!(read_only("log.retention.hours") && read_only("log.retention.minutes"));
    assert_eq!(value("log.retention.ms"), (None, config_type::LONG));
    assert_eq!(value("log.retention.minutes"), (None, config_type::INT));
    assert_eq!(value("log.roll.ms"), (None, config_type::LONG));
    assert_eq!(
        value("log.roll.hours"),
        (Some("168".to_owned()), config_type::INT)
    );
    assert_eq!(value("log.roll.jitter.ms"), (None, config_type::LONG));
    assert_eq!(
        value("log.roll.jitter.hours"),
        (Some("0".to_owned()), config_type::INT)
    );
}

/// A retention default given in hours is `log.retention.hours` = 24, STATIC, and leaves
/// `log.retention.ms` null; a topic's `retention.ms` then reads DEFAULT_CONFIG with no
/// synonyms, as in Kafka (`ConfigHelper.configSynonyms` drops the entries ahead of the
/// first named `log.retention.ms`). A dynamic `log.retention.ms` goes ahead of it.
#[test]
fn a_time_default_set_in_hours_is_described_as_kafka_does() {
    let mut fixture = broker();
    fixture
        .ctx
        .static_unit_configs
        .insert("log.retention.hours", "24".to_owned());
    fixture
        .ctx
        .static_config_keys
        .insert("retention.ms".to_owned());
    topic(&fixture, "t", 1);
    let static_hours = ("log.retention.hours", "24", SOURCE_STATIC_BROKER);
    let default_hours = ("log.retention.hours", "168", SOURCE_DEFAULT);
    // Static, and so unchanged by a dynamic `log.retention.ms` below.
    let hours_row = expect(
        "log.retention.hours",
        "24",
        SOURCE_STATIC_BROKER,
        &[static_hours, default_hours],
    );
    let mine = describe(&fixture, RESOURCE_BROKER, &me());
    assert_eq!(
        rows_named(&mine, &RETENTION),
        [
            expect("log.retention.ms", "", SOURCE_DEFAULT, &[]),
            expect("log.retention.minutes", "", SOURCE_DEFAULT, &[]),
            hours_row.clone(),
        ]
    );
    let topic_row = |fixture: &Fixture| {
        row_of(&describe(fixture, RESOURCE_TOPIC, "t"), "retention.ms").unwrap()
    };
    let (_, source, synonyms) = topic_row(&fixture);
    assert_eq!((source, synonyms), (SOURCE_DEFAULT, Vec::new()));

    assert_eq!(set(&fixture, "", "log.retention.ms", "5000"), 0);
    let cluster = ("log.retention.ms", "5000", SOURCE_DYNAMIC_DEFAULT_BROKER);
    let mine = describe(&fixture, RESOURCE_BROKER, &me());
    assert_eq!(
        rows_named(&mine, &RETENTION),
        [
            expect(
                "log.retention.ms",
                "5000",
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                &[cluster, static_hours, default_hours]
            ),
            expect("log.retention.minutes", "", SOURCE_DEFAULT, &[]),
            hours_row.clone(),
        ]
    );
    let expected = expect(
        "retention.ms",
        "5000",
        SOURCE_DYNAMIC_DEFAULT_BROKER,
        &[cluster, static_hours, default_hours],
    );
    assert_eq!(("retention.ms".to_owned(), topic_row(&fixture)), expected);
}
