//! DescribeGroups (v0–5): state, protocol and members; unknown groups read as Dead.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// READ, DELETE and DESCRIBE (ACL operation codes 3, 6, 8): all a group supports; there are
/// no ACLs yet, so every caller may do all of them.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let report_operations =
        header.request_api_version >= 3 && request.include_authorized_operations;
    let mut response = DescribeGroupsResponse::default();
    response.groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let description = ctx.groups.describe_group(group_id.as_str());
            let mut group = DescribedGroup::default();
            group.group_id = group_id;
            group.group_state = StrBytes::from_static_str(description.state.name());
            group.protocol_type = StrBytes::from_string(description.protocol_type);
            group.protocol_data = StrBytes::from_string(description.protocol_name);
            if report_operations {
                group.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
            }
            group.members = description
                .members
                .into_iter()
                .map(|m| {
                    let mut member = DescribedGroupMember::default();
                    member.member_id = StrBytes::from_string(m.member_id);
                    member.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
                    member.client_id = StrBytes::from_string(m.client_id);
                    member.client_host = StrBytes::from_string(m.client_host);
                    member.member_metadata = m.metadata;
                    member.member_assignment = m.assignment;
                    member
                })
                .collect();
            group
        })
        .collect();
    response
}
