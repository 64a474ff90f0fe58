//! AlterConfigs (v0–2): replaces a topic's overrides, or a broker resource's dynamic
//! configs (`broker_configs`), wholesale.
//!
//! Also holds the steps IncrementalAlterConfigs shares with it: each resource's outcome in
//! request order (`outcomes`) and resolving a config resource to a topic (`target_topic`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::broker_configs;
use super::create_topics::{overrides_map, repeated, Refusal};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::BrokerContext;
use crate::log::TopicInfo;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
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
        .map(|(r, outcome)| response_for(r.resource_type, &r.resource_name, outcome))
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Each resource's outcome, in request order: a resource named twice in the request is
/// refused each time, every other one goes through `alter`.
pub(super) fn outcomes<R>(
    resources: &[R],
    key: impl Fn(&R) -> (i8, &str),
    mut alter: impl FnMut(&R) -> Result<(), Refusal>,
) -> Vec<Result<(), Refusal>> {
    let duplicates = repeated(resources.iter().map(&key));
    resources
        .iter()
        .map(|resource| match duplicates.contains(&key(resource)) {
            true => Err(duplicate_resource()),
            false => alter(resource),
        })
        .collect()
}

fn alter_one(
    ctx: &BrokerContext,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let configs: Vec<(&str, Option<&str>)> = (resource.configs.iter())
        .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())))
        .collect();
    if resource.resource_type == RESOURCE_BROKER {
        if let Some(name) = repeated(configs.iter().map(|(name, _)| *name)).first() {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {name:?} is given more than once"),
            ));
        }
        let name = resource.resource_name.as_str();
        return broker_configs::alter_whole(ctx, name, &configs, validate_only);
    }
    let topic = target_topic(ctx, resource.resource_type, resource.resource_name.as_str())?;
    let overrides = overrides_map(
        configs,
        ResponseError::InvalidRequest,
        " (omit it to reset it to the default)",
    )?;
    // Storage validates the whole map against the broker defaults before storing it.
    Ok(ctx
        .logs
        .set_topic_overrides(&topic.name, overrides, validate_only)?)
}

/// The refusal for a resource named twice in one request.
fn duplicate_resource() -> Refusal {
    Refusal::new(
        ResponseError::InvalidRequest,
        "the resource appears more than once in the request",
    )
}

/// The topic an alter request targets; other resource types are refused (brokers are
/// handled before, in `broker_configs`).
pub(super) fn target_topic(
    ctx: &BrokerContext,
    resource_type: i8,
    resource_name: &str,
) -> Result<TopicInfo, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => ctx
            .logs
            .topic(resource_name)
            .ok_or_else(|| Refusal::unknown_topic(resource_name)),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("config resource type {other} is not supported (only topics and brokers)"),
        )),
    }
}

fn response_for(
    resource_type: i8,
    resource_name: &StrBytes,
    outcome: Result<(), Refusal>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name.clone());
    match outcome {
        Ok(()) => response.with_error_code(0).with_error_message(None),
        Err(refusal) => response
            .with_error_code(refusal.code)
            .with_error_message(refusal.message_field()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::AlterConfigsRequest;
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header, Fixture, NODE_ID};
    use super::*;

    fn resource(
        resource_type: i8,
        name: &str,
        configs: &[(&'static str, Option<&'static str>)],
    ) -> AlterConfigsResource {
        let configs = configs
            .iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(value.map(StrBytes::from_static_str))
            })
            .collect();
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configs(configs)
    }

    fn alter(
        fixture: &Fixture,
        validate_only: bool,
        resources: Vec<AlterConfigsResource>,
    ) -> Vec<i16> {
        let request = AlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only);
        let response = handle(&fixture.ctx, &header(2), request);
        response.responses.iter().map(|r| r.error_code).collect()
    }

    fn with_overrides(fixture: &Fixture, name: &str, overrides: &[(&str, &str)]) {
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

    fn overrides(fixture: &Fixture, name: &str) -> Vec<(String, String)> {
        fixture
            .ctx
            .logs
            .topic(name)
            .unwrap()
            .overrides
            .into_iter()
            .collect()
    }

    #[test]
    fn replaces_all_overrides() {
        let fixture = broker();
        with_overrides(
            &fixture,
            "t",
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        );
        let codes = alter(
            &fixture,
            false,
            vec![resource(
                RESOURCE_TOPIC,
                "t",
                &[("segment.ms", Some("60000"))],
            )],
        );
        assert_eq!(codes, vec![0]);
        assert_eq!(
            overrides(&fixture, "t"),
            vec![("segment.ms".to_owned(), "60000".to_owned())]
        );
        assert_eq!(
            fixture.ctx.logs.topic("t").unwrap().config.segment_ms,
            60_000
        );
    }

    #[test]
    fn validate_only_and_invalid_values_change_nothing() {
        let fixture = broker();
        with_overrides(&fixture, "t", &[("retention.ms", "1000")]);
        let before = overrides(&fixture, "t");
        let dry = resource(RESOURCE_TOPIC, "t", &[("retention.ms", Some("5000"))]);
        assert_eq!(alter(&fixture, true, vec![dry]), vec![0]);
        let half_bad = resource(
            RESOURCE_TOPIC,
            "t",
            &[("retention.ms", Some("5000")), ("segment.ms", Some("x"))],
        );
        assert_eq!(
            alter(&fixture, false, vec![half_bad]),
            vec![ResponseError::InvalidConfig.code()]
        );
        assert_eq!(overrides(&fixture, "t"), before);
    }

    #[test]
    fn refusals_per_resource() {
        let fixture = broker();
        with_overrides(&fixture, "t", &[]);
        with_overrides(&fixture, "t2", &[]);
        let broker_id = NODE_ID.to_string();
        let codes = alter(
            &fixture,
            false,
            vec![
                resource(RESOURCE_TOPIC, "missing", &[("retention.ms", Some("1"))]),
                resource(
                    RESOURCE_BROKER,
                    &broker_id,
                    &[("num.partitions", Some("1"))],
                ),
                resource(1, "x", &[]),
                resource(RESOURCE_TOPIC, "t", &[("no.such.key", Some("1"))]),
                resource(RESOURCE_TOPIC, "t2", &[("retention.ms", None)]),
            ],
        );
        let invalid_request = ResponseError::InvalidRequest.code();
        let invalid_config = ResponseError::InvalidConfig.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            vec![
                unknown,
                invalid_request,
                invalid_request,
                invalid_config,
                invalid_config
            ]
        );
    }

    #[test]
    fn duplicate_resources_and_keys_are_invalid_requests() {
        let fixture = broker();
        with_overrides(&fixture, "t", &[]);
        with_overrides(&fixture, "u", &[]);
        let codes = alter(
            &fixture,
            false,
            vec![
                resource(RESOURCE_TOPIC, "t", &[("retention.ms", Some("1"))]),
                resource(RESOURCE_TOPIC, "t", &[("retention.ms", Some("2"))]),
                resource(
                    RESOURCE_TOPIC,
                    "u",
                    &[("retention.ms", Some("1")), ("retention.ms", Some("2"))],
                ),
            ],
        );
        assert_eq!(codes, vec![ResponseError::InvalidRequest.code(); 3]);
        assert!(overrides(&fixture, "t").is_empty());
    }
}
