//! Heartbeat (v0–4): keeps a member's session alive; REBALANCE_IN_PROGRESS asks it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let result = ctx.groups.heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    let mut response = HeartbeatResponse::default();
    response.error_code = result.err().map_or(0, |e| e.code());
    response
}
