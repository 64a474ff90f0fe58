//! CreateTopics (v2–7): creates topics in the storage engine, one result per requested topic.
//!
//! This file also holds the two small pieces every admin handler shares: [`Refusal`] (why one
//! item of a request was refused) and [`repeated`] (names given twice in one request).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

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
                create_one(ctx, topic, request.validate_only)
            };
            let result = CreatableTopicResult::default().with_name(name);
            match outcome {
                Ok(info) => created(result, &info, with_configs),
                Err(refusal) => refused(result, &refusal),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Checks one topic's request and hands it to storage.
fn create_one(
    ctx: &BrokerContext,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<TopicInfo, Refusal> {
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
    Ok(ctx
        .logs
        .create_topic(topic.name.0.as_str(), partitions, overrides, validate_only)?)
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
                    .with_config_source(config_source(&entry))
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
