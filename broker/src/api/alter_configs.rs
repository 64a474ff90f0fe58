//! AlterConfigs (v0–2): replaces a topic's overrides wholesale.
//!
//! Also holds the steps IncrementalAlterConfigs shares with it: resolving a config resource to
//! a topic ([`target_topic`]) and validating then storing a new overrides map
//! ([`store_overrides`]).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::{repeated, Refusal};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::BrokerContext;
use crate::log::{LogError, TopicConfig, TopicInfo};

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let _ = header;
    let duplicates = repeated(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let responses = request
        .resources
        .iter()
        .map(|resource| {
            let key = (resource.resource_type, resource.resource_name.as_str());
            let outcome = if duplicates.contains(&key) {
                Err(duplicate_resource())
            } else {
                alter_one(ctx, resource, request.validate_only)
            };
            response_for(resource.resource_type, &resource.resource_name, outcome)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

fn alter_one(
    ctx: &BrokerContext,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let topic = target_topic(ctx, resource.resource_type, resource.resource_name.as_str())?;
    let mut overrides = BTreeMap::new();
    for config in &resource.configs {
        let name = config.name.as_str();
        let Some(value) = &config.value else {
            return Err(Refusal::new(
                ResponseError::InvalidConfig,
                format!("config {name:?} has a null value (omit it to reset it to the default)"),
            ));
        };
        if overrides
            .insert(name.to_owned(), value.as_str().to_owned())
            .is_some()
        {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {name:?} is given more than once"),
            ));
        }
    }
    store_overrides(ctx, &topic.name, overrides, validate_only)
}

/// The refusal for a resource named twice in one request.
pub(super) fn duplicate_resource() -> Refusal {
    Refusal::new(
        ResponseError::InvalidRequest,
        "the resource appears more than once in the request",
    )
}

/// The topic an alter request targets; brokers and other resource types are refused.
pub(super) fn target_topic(
    ctx: &BrokerContext,
    resource_type: i8,
    resource_name: &str,
) -> Result<TopicInfo, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => ctx.logs.topic(resource_name).ok_or_else(|| {
            Refusal::from(LogError::UnknownTopicOrPartition {
                topic: resource_name.to_owned(),
                partition: -1,
            })
        }),
        RESOURCE_BROKER => Err(Refusal::new(
            ResponseError::InvalidRequest,
            "dynamic broker configuration is not supported: set broker defaults with flags \
             or RUNNEL_* environment variables and restart",
        )),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("config resource type {other} is not supported (only topics)"),
        )),
    }
}

/// Validates the whole new overrides map against the broker defaults, then replaces the
/// topic's overrides with it (or, when `validate_only`, stops after validating).
pub(super) fn store_overrides(
    ctx: &BrokerContext,
    topic: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Refusal> {
    TopicConfig::with_overrides(ctx.logs.topic_defaults(), &overrides)?;
    ctx.logs
        .set_topic_overrides(topic, overrides, validate_only)?;
    Ok(())
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
