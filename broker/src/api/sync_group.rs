//! SyncGroup (v0–5): the leader hands in the assignment; everyone parks until it is durable.

use kafka_protocol::messages::{RequestHeader, ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerContext, Completion};
use crate::groups::coordinator::Reply;
use crate::groups::membership::SyncRequest;
use crate::groups::state::SyncResponse;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> Completion {
    let version = header.request_api_version;
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol_name: request.protocol_name.map(|n| n.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match ctx.groups.sync(request.group_id.as_str(), sync) {
        Reply::Ready(answer) => {
            Completion::ready(ResponseKind::SyncGroup(to_response(answer, version)))
        }
        Reply::Pending(answer) => Completion::pending(async move {
            ResponseKind::SyncGroup(to_response(answer.await, version))
        }),
    }
}

fn to_response(answer: SyncResponse, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = answer.error.map_or(0, |e| e.code());
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
        response.protocol_name = answer.protocol_name.map(StrBytes::from_string);
    }
    response.assignment = answer.assignment;
    response
}
