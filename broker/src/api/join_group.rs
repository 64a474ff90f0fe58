//! JoinGroup (v0–9): parks until the group's join phase completes (see `groups::state`).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerContext, Completion};
use crate::groups::coordinator::Reply;
use crate::groups::state::{JoinRequest, JoinResponse, MemberProtocol};

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    client_host: &str,
    request: JoinGroupRequest,
) -> Completion {
    let version = header.request_api_version;
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        client_host: client_host.to_owned(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| MemberProtocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    match ctx.groups.join(request.group_id.as_str(), join) {
        Reply::Ready(answer) => {
            Completion::ready(ResponseKind::JoinGroup(to_response(answer, version)))
        }
        Reply::Pending(answer) => Completion::pending(async move {
            ResponseKind::JoinGroup(to_response(answer.await, version))
        }),
    }
}

fn to_response(answer: JoinResponse, version: i16) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = answer.error.map_or(0, |e| e.code());
    response.generation_id = answer.generation_id;
    response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
    // Before v7 the protocol name is not nullable on the wire.
    response.protocol_name = match answer.protocol_name {
        Some(name) => Some(StrBytes::from_string(name)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    response.leader = StrBytes::from_string(answer.leader_id);
    response.skip_assignment = answer.skip_assignment && version >= 9;
    response.member_id = StrBytes::from_string(answer.member_id);
    response.members = answer
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = StrBytes::from_string(m.member_id);
            member.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}
