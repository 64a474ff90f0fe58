//! LeaveGroup (v0–5; batched members from v3): removes members and rebalances the rest.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let batched = header.request_api_version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    match ctx.groups.leave(request.group_id.as_str(), &members) {
        Err(error) => response.error_code = error.code(),
        Ok(results) if batched => {
            response.members = members
                .into_iter()
                .zip(results)
                .map(|((member_id, instance_id), result)| {
                    let mut member = MemberResponse::default();
                    member.member_id = member_id.into();
                    member.group_instance_id = instance_id.map(Into::into);
                    member.error_code = result.err().map_or(0, |e| e.code());
                    member
                })
                .collect();
        }
        // Before v3 the one member's error is the response's.
        Ok(results) => {
            response.error_code = results
                .first()
                .and_then(|r| r.err())
                .map_or(0, |e| e.code())
        }
    }
    response
}
