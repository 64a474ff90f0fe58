//! OffsetFetch (v1–8; several groups per request from v8). Partitions without a committed
//! offset answer -1 with no error, as Kafka does; `topics = null` (v2+) means "all".

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;
use crate::groups::commits::FetchedOffsets;
use crate::groups::records::OffsetValue;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if header.request_api_version >= 8 {
        response.groups = request
            .groups
            .iter()
            .map(|group| {
                let topics = group.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect::<Vec<_>>()
                });
                let fetched = ctx
                    .groups
                    .fetch_offsets(group.group_id.as_str(), topics.as_deref());
                let mut out = OffsetFetchResponseGroup::default();
                out.group_id = group.group_id.clone();
                out.topics = fetched
                    .into_iter()
                    .map(|(name, partitions)| topic_v8(name, partitions))
                    .collect();
                out
            })
            .collect();
        return response;
    }
    let topics = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect::<Vec<_>>()
    });
    let fetched: FetchedOffsets = ctx
        .groups
        .fetch_offsets(request.group_id.as_str(), topics.as_deref());
    response.topics = fetched
        .into_iter()
        .map(|(name, partitions)| topic_v1(name, partitions))
        .collect();
    response
}

/// (offset, leader epoch, metadata) with Kafka's "nothing committed" values.
fn fields(value: Option<OffsetValue>) -> (i64, i32, StrBytes) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, StrBytes::from_string(v.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

fn topic_v1(name: String, partitions: Vec<(i32, Option<OffsetValue>)>) -> OffsetFetchResponseTopic {
    let mut topic = OffsetFetchResponseTopic::default();
    topic.name = TopicName(StrBytes::from_string(name));
    topic.partitions = partitions
        .into_iter()
        .map(|(index, value)| {
            let (offset, epoch, metadata) = fields(value);
            let mut p = OffsetFetchResponsePartition::default();
            p.partition_index = index;
            p.committed_offset = offset;
            p.committed_leader_epoch = epoch;
            p.metadata = Some(metadata);
            p
        })
        .collect();
    topic
}

fn topic_v8(
    name: String,
    partitions: Vec<(i32, Option<OffsetValue>)>,
) -> OffsetFetchResponseTopics {
    let mut topic = OffsetFetchResponseTopics::default();
    topic.name = TopicName(StrBytes::from_string(name));
    topic.partitions = partitions
        .into_iter()
        .map(|(index, value)| {
            let (offset, epoch, metadata) = fields(value);
            let mut p = OffsetFetchResponsePartitions::default();
            p.partition_index = index;
            p.committed_offset = offset;
            p.committed_leader_epoch = epoch;
            p.metadata = Some(metadata);
            p
        })
        .collect();
    topic
}
