//! A group's metadata record: what [`Group`] writes to `__consumer_offsets` after a rebalance
//! and how it is rebuilt on start (members come back Stable with fresh session deadlines, so
//! consumers that keep heartbeating carry on across a broker restart).

use std::collections::BTreeMap;

use super::records::{GroupMetadataValue, MemberMetadataValue};
use super::state::{Group, GroupState, Member, MemberProtocol};

impl Group {
    /// The group as a metadata record value.
    pub fn to_metadata(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(protocol).cloned().unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last metadata record, as of `now_ms`.
    pub fn from_metadata(id: &str, value: &GroupMetadataValue, now_ms: i64) -> Group {
        let mut group = Group::new(id, value.state_timestamp_ms);
        group.generation_id = value.generation_id;
        group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        group.protocol_name = value.protocol_name.clone();
        let protocol = value.protocol_name.clone().unwrap_or_default();
        let mut members = BTreeMap::new();
        for m in &value.members {
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocol_type: value.protocol_type.clone(),
                    protocols: vec![MemberProtocol {
                        name: protocol.clone(),
                        metadata: m.subscription.clone(),
                    }],
                    assignment: m.assignment.clone(),
                    awaiting_join: false,
                    awaiting_sync: false,
                    is_new: false,
                    last_heartbeat_ms: now_ms,
                },
            );
        }
        group.leader_id = value
            .leader_id
            .clone()
            .filter(|id| members.contains_key(id));
        group.members = members;
        if !group.members.is_empty() {
            group.leader_id = group
                .leader_id
                .or_else(|| group.members.keys().next().cloned());
            group.transition(GroupState::Stable, now_ms);
        }
        group
    }
}
