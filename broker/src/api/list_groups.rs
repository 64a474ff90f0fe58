//! ListGroups (v0–4; state filter from v4).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;
use crate::groups::state::GroupState;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    // Unknown state names match nothing (Kafka's parse is case-insensitive).
    let states: Option<Vec<GroupState>> =
        (header.request_api_version >= 4 && !request.states_filter.is_empty()).then(|| {
            request
                .states_filter
                .iter()
                .filter_map(|s| GroupState::parse(s.as_str()))
                .collect()
        });
    let mut response = ListGroupsResponse::default();
    response.groups = ctx
        .groups
        .list_groups(states.as_deref())
        .into_iter()
        .map(|g| {
            let mut listed = ListedGroup::default();
            listed.group_id = GroupId(StrBytes::from_string(g.group_id));
            listed.protocol_type = StrBytes::from_string(g.protocol_type);
            listed.group_state = StrBytes::from_static_str(g.state.name());
            listed
        })
        .collect();
    response
}
