//! OffsetCommit (v1–8): answers once the offsets are durable in `__consumer_offsets`.
//! v1 (sarama's default before 1.23) carries a commit timestamp per partition instead of a
//! retention time; Runnel ignores it, so such offsets keep the broker's default retention.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, RequestHeader, ResponseKind,
};

use super::{BrokerContext, Completion};
use crate::groups::commits::{CommitEntry, Committer, EntryErrors};
use crate::groups::coordinator::Reply;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: OffsetCommitRequest,
) -> Completion {
    let who = Committer {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        generation_id: request.generation_id_or_member_epoch,
        retention_time_ms: request.retention_time_ms,
    };
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| CommitEntry {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    match ctx
        .groups
        .commit_offsets(request.group_id.as_str(), &who, &entries)
    {
        Reply::Ready(errors) => {
            Completion::ready(ResponseKind::OffsetCommit(to_response(&request, &errors)))
        }
        Reply::Pending(errors) => Completion::pending(async move {
            ResponseKind::OffsetCommit(to_response(&request, &errors.await))
        }),
    }
}

/// The response mirrors the request's topics and partitions, errors in the same order.
fn to_response(request: &OffsetCommitRequest, errors: &EntryErrors) -> OffsetCommitResponse {
    let mut errors = errors.iter();
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut out = OffsetCommitResponseTopic::default();
            out.name = topic.name.clone();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetCommitResponsePartition::default();
                    partition.partition_index = p.partition_index;
                    partition.error_code = errors.next().copied().flatten().map_or(0, |e| e.code());
                    partition
                })
                .collect();
            out
        })
        .collect();
    response
}
