//! OffsetDelete (v0): drops a group's offsets for topics it no longer consumes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader, ResponseKind,
};

use super::{BrokerContext, Completion};
use crate::groups::commits::EntryErrors;
use crate::groups::coordinator::Reply;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> Completion {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match ctx
        .groups
        .delete_offsets(request.group_id.as_str(), &partitions)
    {
        Reply::Ready(result) => {
            Completion::ready(ResponseKind::OffsetDelete(to_response(&request, result)))
        }
        Reply::Pending(result) => Completion::pending(async move {
            ResponseKind::OffsetDelete(to_response(&request, result.await))
        }),
    }
}

fn to_response(
    request: &OffsetDeleteRequest,
    result: Result<EntryErrors, ResponseError>,
) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    let errors = match result {
        Ok(errors) => errors,
        Err(error) => {
            response.error_code = error.code();
            return response;
        }
    };
    let mut errors = errors.into_iter();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut out = OffsetDeleteResponseTopic::default();
            out.name = topic.name.clone();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetDeleteResponsePartition::default();
                    partition.partition_index = p.partition_index;
                    partition.error_code = errors.next().flatten().map_or(0, |e| e.code());
                    partition
                })
                .collect();
            out
        })
        .collect();
    response
}
