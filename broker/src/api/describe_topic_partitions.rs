//! DescribeTopicPartitions (v0, KIP-966): what `kafka-topics.sh --describe` (Kafka 3.8+) and
//! `AdminClient.describeTopics` ask instead of Metadata when a broker offers it. Topics and
//! partitions read as Metadata gives them (the same code: [`super::metadata`]), paged:
//!
//! - topics sorted by name; an empty list means every topic Metadata lists for "all topics";
//! - at most `min(response_partition_limit, 2000)` partitions (Kafka's
//!   `max.request.partition.size.limit` default); when the limit cuts a topic, `next_cursor`
//!   names the first partition left out, and when it is used up exactly before the next
//!   topic, that topic's partition 0 (as Kafka, which does not check that topic exists);
//! - a `cursor` starts at its topic and partition, leaving out topics named before it; named
//!   topics must then include the cursor's, else every named topic is INVALID_REQUEST;
//! - a named topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//!   for an illegal name), left out when listing all topics.
//!
//! Without an authorizer Kafka reports every topic operation as allowed; eligible leader
//! replicas (KIP-966's ELR) are empty lists, as from Kafka with ELR off; nothing is offline.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{
    is_internal, listed_topics, partition_leadership, validate_topic_name, PartitionLeadership,
    TOPIC_AUTHORIZED_OPERATIONS,
};
use super::BrokerContext;
use crate::log::TopicInfo;

/// Most partitions one response holds (Kafka's `max.request.partition.size.limit` default).
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(name, _)| name.as_str());
    let all_topics = request.topics.is_empty();
    let names: BTreeSet<String> = if all_topics {
        listed_topics(ctx).into_iter().map(|t| t.name).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    let names: BTreeSet<String> = names
        .into_iter()
        .filter(|name| name.as_str() >= cursor_topic)
        .collect();
    if !all_topics && cursor.is_some() && !names.contains(cursor_topic) {
        return refused(&request, ResponseError::InvalidRequest);
    }
    let start_of = |name: &str| match &cursor {
        Some((topic, partition)) if topic == name => *partition,
        _ => 0,
    };
    let limit = request
        .response_partition_limit
        .min(PARTITIONS_PER_RESPONSE_MAX);
    let mut remaining = limit;
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in &names {
        if remaining == 0 {
            // The previous topics took every partition allowed: the next page starts here.
            response.next_cursor = Some(cursor_at(name, 0));
            break;
        }
        if remaining < 0 {
            continue;
        }
        let Some(info) = ctx.logs.topic(name) else {
            if !all_topics {
                response.topics.push(missing_topic(name));
            }
            continue;
        };
        let (entry, next_partition) = topic_page(ctx, &info, start_of(name), remaining);
        remaining -= i32::try_from(entry.partitions.len()).unwrap_or(i32::MAX);
        response.topics.push(entry);
        if let Some(next) = next_partition {
            response.next_cursor = Some(cursor_at(name, next));
            break;
        }
    }
    debug_assert!(
        response
            .topics
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>()
            <= { usize::try_from(limit.max(0)).unwrap_or(0) }
    );
    response
}

/// `info`'s partitions from `start` on, at most `room` of them, and the first one left out.
fn topic_page(
    ctx: &BrokerContext,
    info: &TopicInfo,
    start: i32,
    room: i32,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    debug_assert!(room > 0, "{room}");
    let count = info.partitions.max(0);
    let upper = count.min(start.saturating_add(room));
    let next = (upper < count).then_some(upper);
    // A negative start names no partition: those indexes are skipped, as Kafka does.
    let partitions = (start.max(0)..upper)
        .map(|index| partition_entry(index, partition_leadership(ctx)))
        .collect();
    let entry = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&info.name)))
        .with_topic_id(info.id)
        .with_is_internal(is_internal(&info.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS);
    (entry, next)
}

fn partition_entry(
    index: i32,
    leadership: PartitionLeadership,
) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(leadership.leader_id)
        .with_leader_epoch(leadership.leader_epoch)
        .with_replica_nodes(leadership.replica_nodes)
        .with_isr_nodes(leadership.isr_nodes)
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(Vec::new())
}

/// A named topic that does not exist (its id the zero id).
fn missing_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let error = if validate_topic_name(name).is_ok() {
        ResponseError::UnknownTopicOrPartition
    } else {
        ResponseError::InvalidTopicException
    };
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(topic_name(name)))
        .with_is_internal(is_internal(name))
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS)
}

/// The whole request refused: every named topic carries `error`, as Kafka's error response.
fn refused(
    request: &DescribeTopicPartitionsRequest,
    error: ResponseError,
) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(error.code())
                .with_name(Some(t.name.clone()))
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

#[cfg(test)]
#[path = "describe_topic_partitions_tests.rs"]
mod tests;
