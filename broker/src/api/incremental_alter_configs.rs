//! IncrementalAlterConfigs (v0–1): SET / DELETE / APPEND / SUBTRACT applied to a topic's
//! current overrides, or to a broker resource's dynamic configs (`broker_configs`), then
//! validated and stored as a whole.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};

use super::alter_configs::{outcomes, target_topic};
use super::broker_configs;
use super::create_topics::{repeated, Refusal};
use super::describe_configs::{config_type, key_info, RESOURCE_BROKER};
use super::BrokerContext;

/// Kafka's `AlterConfigOp.OpType`.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let _ = header;
    let outcomes = outcomes(
        &request.resources,
        |r| (r.resource_type, r.resource_name.as_str()),
        |r| alter_one(ctx, r, request.validate_only),
    );
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match outcome {
                Ok(()) => response.with_error_code(0).with_error_message(None),
                Err(refusal) => response
                    .with_error_code(refusal.code)
                    .with_error_message(refusal.message_field()),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter_one(
    ctx: &BrokerContext,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let twice = repeated(resource.configs.iter().map(|config| config.name.as_str()));
    if let Some(name) = twice.first() {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("config {name:?} is altered more than once in one resource"),
        ));
    }
    if resource.resource_type == RESOURCE_BROKER {
        return broker_configs::alter_incremental(ctx, resource, validate_only);
    }
    let topic = target_topic(ctx, resource.resource_type, resource.resource_name.as_str())?;
    // Start from what the user set; defaults are consulted only by APPEND / SUBTRACT. The
    // overrides are read and replaced under storage's metadata lock, so concurrent alters
    // of one topic apply one after the other instead of undoing each other.
    let defaults = ctx.logs.topic_defaults().describe(&BTreeMap::new());
    ctx.logs
        .edit_topic_overrides(&topic.name, validate_only, |current| {
            let mut overrides = current.clone();
            for config in &resource.configs {
                let name = config.name.as_str();
                let current = overrides.get(name).cloned().or_else(|| {
                    defaults
                        .iter()
                        .find(|entry| entry.name == name)
                        .map(|entry| entry.value.clone())
                });
                match apply_op(config, name, current.as_deref())? {
                    Some(value) => overrides.insert(name.to_owned(), value),
                    None => overrides.remove(name),
                };
            }
            Ok(overrides)
        })
}

/// The key's new override after one operation (`None`: no override, back to the default).
/// `current` is the key's effective value before the operation; `key` the topic config it
/// sets (its type decides whether APPEND / SUBTRACT apply).
pub(super) fn apply_op(
    config: &AlterableConfig,
    key: &str,
    current: Option<&str>,
) -> Result<Option<String>, Refusal> {
    let name = config.name.as_str();
    let value = config.value.as_ref().map(|value| value.as_str());
    match config.config_operation {
        OP_DELETE => Ok(None),
        OP_SET => match value {
            Some(value) => Ok(Some(value.to_owned())),
            None => Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("SET of config {name:?} needs a value"),
            )),
        },
        op @ (OP_APPEND | OP_SUBTRACT) => {
            if key_info(key).map(|info| info.config_type) != Some(config_type::LIST) {
                return Err(Refusal::new(
                    ResponseError::InvalidConfig,
                    format!("config {name:?} is not a list: APPEND and SUBTRACT do not apply"),
                ));
            }
            let current = list_items(split_list(current.unwrap_or("")));
            let given = list_items(split_list(value.unwrap_or("")));
            let items: Vec<&str> = if op == OP_APPEND {
                list_items(current.into_iter().chain(given))
            } else {
                let removed: BTreeSet<&str> = given.into_iter().collect();
                current
                    .into_iter()
                    .filter(|item| !removed.contains(item))
                    .collect()
            };
            Ok(Some(items.join(",")))
        }
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("unknown config operation {other} for config {name:?}"),
        )),
    }
}

/// The non-empty, trimmed items of a comma-separated list value.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// `items` in order without repeats (a set, not a scan, so a huge list stays linear-ish).
fn list_items<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    items.filter(|item| seen.insert(*item)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use proptest::prelude::*;

    use super::super::create_topics::fixture::{broker, header, Fixture, NODE_ID};
    use super::super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
    use super::*;

    use super::super::create_topics::fixture::{incremental_resource as resource, Op};

    fn alter(
        fixture: &Fixture,
        validate_only: bool,
        resources: Vec<AlterConfigsResource>,
    ) -> Vec<i16> {
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only);
        let response = handle(&fixture.ctx, &header(1), request);
        assert!(response
            .responses
            .iter()
            .all(|r| (r.error_code == 0) == r.error_message.is_none()));
        response.responses.iter().map(|r| r.error_code).collect()
    }

    fn topic_with(fixture: &Fixture, name: &str, overrides: &[(&str, &str)]) {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fixture
            .ctx
            .logs
            .create_topic(name, 1, overrides, false)
            .unwrap();
    }

    fn override_of(fixture: &Fixture, topic: &str, key: &str) -> Option<String> {
        fixture
            .ctx
            .logs
            .topic(topic)
            .unwrap()
            .overrides
            .get(key)
            .cloned()
    }

    #[test]
    fn set_and_delete_touch_only_their_keys() {
        let fixture = broker();
        topic_with(
            &fixture,
            "t",
            &[("retention.ms", "1000"), ("segment.ms", "60000")],
        );
        let ops = [
            ("retention.ms", OP_SET, Some("2000")),
            ("segment.ms", OP_DELETE, None),
        ];
        assert_eq!(
            alter(&fixture, false, vec![resource(RESOURCE_TOPIC, "t", &ops)]),
            vec![0]
        );
        assert_eq!(
            override_of(&fixture, "t", "retention.ms").as_deref(),
            Some("2000")
        );
        assert_eq!(override_of(&fixture, "t", "segment.ms"), None);
        let info = fixture.ctx.logs.topic("t").unwrap();
        assert_eq!(info.overrides.len(), 1);
        assert_eq!(info.config.retention_ms, 2000);
    }

    #[test]
    fn append_and_subtract_edit_list_values() {
        let fixture = broker();
        topic_with(&fixture, "t", &[]);
        let append = [("cleanup.policy", OP_APPEND, Some("compact"))];
        assert_eq!(
            alter(
                &fixture,
                false,
                vec![resource(RESOURCE_TOPIC, "t", &append)]
            ),
            vec![0]
        );
        // The default `delete` is the starting list.
        assert_eq!(
            override_of(&fixture, "t", "cleanup.policy").as_deref(),
            Some("delete,compact")
        );
        let again = [("cleanup.policy", OP_APPEND, Some("compact"))];
        assert_eq!(
            alter(&fixture, false, vec![resource(RESOURCE_TOPIC, "t", &again)]),
            vec![0]
        );
        assert_eq!(
            override_of(&fixture, "t", "cleanup.policy").as_deref(),
            Some("delete,compact")
        );
        let subtract = [("cleanup.policy", OP_SUBTRACT, Some("delete"))];
        assert_eq!(
            alter(
                &fixture,
                false,
                vec![resource(RESOURCE_TOPIC, "t", &subtract)]
            ),
            vec![0]
        );
        assert_eq!(
            override_of(&fixture, "t", "cleanup.policy").as_deref(),
            Some("compact")
        );
        let policy = fixture.ctx.logs.topic("t").unwrap().config.cleanup_policy;
        assert!(policy.compact && !policy.delete);
    }

    #[test]
    fn validate_only_changes_nothing() {
        let fixture = broker();
        topic_with(&fixture, "t", &[("retention.ms", "1000")]);
        let ops = [("retention.ms", OP_SET, Some("2000"))];
        assert_eq!(
            alter(&fixture, true, vec![resource(RESOURCE_TOPIC, "t", &ops)]),
            vec![0]
        );
        assert_eq!(
            override_of(&fixture, "t", "retention.ms").as_deref(),
            Some("1000")
        );
    }

    #[test]
    fn refusals_per_resource_leave_state_alone() {
        let fixture = broker();
        for name in ["a", "b", "c", "d", "e", "f"] {
            topic_with(&fixture, name, &[("retention.ms", "1000")]);
        }
        let broker_id = NODE_ID.to_string();
        let codes = alter(
            &fixture,
            false,
            vec![
                resource(
                    RESOURCE_TOPIC,
                    "missing",
                    &[("retention.ms", OP_SET, Some("1"))],
                ),
                resource(
                    RESOURCE_BROKER,
                    &broker_id,
                    &[("num.partitions", OP_SET, Some("1"))],
                ),
                resource(
                    RESOURCE_TOPIC,
                    "a",
                    &[("retention.ms", OP_APPEND, Some("1"))],
                ),
                resource(RESOURCE_TOPIC, "b", &[("retention.ms", 9, Some("1"))]),
                resource(RESOURCE_TOPIC, "c", &[("retention.ms", OP_SET, None)]),
                resource(
                    RESOURCE_TOPIC,
                    "d",
                    &[
                        ("retention.ms", OP_SET, Some("2")),
                        ("segment.ms", OP_SET, Some("x")),
                    ],
                ),
                resource(
                    RESOURCE_TOPIC,
                    "e",
                    &[
                        ("retention.ms", OP_SET, Some("2")),
                        ("retention.ms", OP_DELETE, None),
                    ],
                ),
                resource(RESOURCE_TOPIC, "f", &[("no.such.key", OP_SET, Some("2"))]),
            ],
        );
        let request = ResponseError::InvalidRequest.code();
        let config = ResponseError::InvalidConfig.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            vec![unknown, request, config, request, request, config, request, config]
        );
        for name in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(
                override_of(&fixture, name, "retention.ms").as_deref(),
                Some("1000")
            );
        }
    }

    #[test]
    fn list_items_drop_blanks_and_repeats() {
        let items = list_items(split_list(" delete, ,compact,delete,"));
        assert_eq!(items, vec!["delete", "compact"]);
    }

    fn any_op() -> impl Strategy<Value = Op> {
        let key = prop_oneof![
            Just("retention.ms"),
            Just("cleanup.policy"),
            Just("segment.ms"),
            Just("bogus")
        ];
        let value = prop_oneof![
            Just(None),
            Just(Some("compact")),
            Just(Some("delete,compact")),
            Just(Some("1000")),
            Just(Some("-7")),
            Just(Some("")),
            Just(Some("x,,y")),
        ];
        (key, -1i8..5, value)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the operations, a refused resource leaves the overrides as they were and
        /// an accepted one leaves a valid config behind.
        #[test]
        fn refused_changes_leave_no_trace(
            ops in proptest::collection::vec(any_op(), 0..5),
            validate_only in any::<bool>(),
        ) {
            let fixture = broker();
            topic_with(&fixture, "t", &[("retention.ms", "1000")]);
            let before = fixture.ctx.logs.topic("t").unwrap().overrides;
            let codes = alter(&fixture, validate_only, vec![resource(RESOURCE_TOPIC, "t", &ops)]);
            prop_assert_eq!(codes.len(), 1);
            let after = fixture.ctx.logs.topic("t").unwrap();
            if codes[0] != 0 || validate_only {
                prop_assert_eq!(&after.overrides, &before);
            }
            let defaults = fixture.ctx.logs.topic_defaults();
            prop_assert!(crate::log::TopicConfig::with_overrides(&defaults, &after.overrides).is_ok());
        }
    }
}
