//! IncrementalAlterConfigs (v0–1): SET / DELETE / APPEND / SUBTRACT applied to a topic's
//! current overrides, then validated and stored as a whole.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};

use super::alter_configs::{duplicate_resource, store_overrides, target_topic};
use super::create_topics::{repeated, Refusal};
use super::describe_configs::{config_type, key_info};
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
    let topic = target_topic(ctx, resource.resource_type, resource.resource_name.as_str())?;
    let twice = repeated(resource.configs.iter().map(|config| config.name.as_str()));
    if let Some(name) = twice.first() {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("config {name:?} is altered more than once in one resource"),
        ));
    }
    // Start from what the user set; defaults are consulted only by APPEND / SUBTRACT.
    let defaults = ctx.logs.topic_defaults().describe(&BTreeMap::new());
    let mut overrides = topic.overrides.clone();
    for config in &resource.configs {
        let name = config.name.as_str();
        let current = overrides.get(name).cloned().or_else(|| {
            defaults
                .iter()
                .find(|entry| entry.name == name)
                .map(|entry| entry.value.clone())
        });
        match apply_op(config, current.as_deref())? {
            Some(value) => overrides.insert(name.to_owned(), value),
            None => overrides.remove(name),
        };
    }
    store_overrides(ctx, &topic.name, overrides, validate_only)
}

/// The key's new override after one operation (`None`: no override, back to the default).
/// `current` is the key's effective value before the operation.
fn apply_op(config: &AlterableConfig, current: Option<&str>) -> Result<Option<String>, Refusal> {
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
            if key_info(name).map(|info| info.config_type) != Some(config_type::LIST) {
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
