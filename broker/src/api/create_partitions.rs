//! CreatePartitions (v0–3): grows topics to a larger partition count (never shrinks).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::create_topics::{repeated, Refusal};
use super::BrokerContext;
use crate::log::LogError;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let _ = header;
    let duplicates = repeated(request.topics.iter().map(|topic| topic.name.0.as_str()));
    let results = request
        .topics
        .iter()
        .map(|topic| {
            let outcome = if duplicates.contains(topic.name.0.as_str()) {
                Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    "the topic appears more than once in the request",
                ))
            } else {
                grow(ctx, topic, request.validate_only)
            };
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            match outcome {
                Ok(()) => result.with_error_code(0).with_error_message(None),
                Err(refusal) => result
                    .with_error_code(refusal.code)
                    .with_error_message(refusal.message_field()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn grow(
    ctx: &BrokerContext,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Refusal> {
    let name = topic.name.0.as_str();
    if topic
        .assignments
        .as_ref()
        .is_some_and(|assignments| !assignments.is_empty())
    {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "manual replica assignments are not supported: give only the new count",
        ));
    }
    let info = ctx
        .logs
        .topic(name)
        .ok_or_else(|| LogError::UnknownTopicOrPartition {
            topic: name.to_owned(),
            partition: -1,
        })?;
    if topic.count <= info.partitions {
        return Err(Refusal::new(
            ResponseError::InvalidPartitions,
            format!(
                "topic {name:?} has {} partitions; the new count {} must be larger",
                info.partitions, topic.count
            ),
        ));
    }
    ctx.logs
        .create_partitions(name, topic.count, validate_only)?;
    Ok(())
}
