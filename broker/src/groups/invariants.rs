//! What must hold for a [`Group`] after every call, checked at the end of each transition in
//! debug builds and in the broker's own unit tests also when built `--release` (as CI builds
//! them). A failure is a coordinator bug, never client input.

use super::state::{Group, GroupState};

impl Group {
    pub(super) fn debug_check_invariants(&self) {
        if !cfg!(any(debug_assertions, test)) {
            return;
        }
        let has_members = !self.members.is_empty();
        match self.state {
            GroupState::Empty => assert!(!has_members, "group {}: Empty with members", self.id),
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(
                    has_members,
                    "group {}: {:?} without members",
                    self.id, self.state
                );
                assert!(
                    self.protocol_name.is_some(),
                    "group {}: no protocol",
                    self.id
                );
            }
            GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        match &self.leader_id {
            Some(leader) => assert!(
                self.members.contains_key(leader),
                "group {}: leader gone",
                self.id
            ),
            None => assert!(!has_members, "group {}: members but no leader", self.id),
        }
        for (instance, member_id) in &self.static_members {
            let member = self.members.get(member_id);
            assert!(
                member.is_some_and(|m| m.group_instance_id.as_deref() == Some(instance.as_str())),
                "group {}: static member {instance} points at {member_id}",
                self.id
            );
        }
        for member in self.members.values() {
            assert!(
                !(member.awaiting_join && member.awaiting_sync),
                "member {} parked twice",
                member.member_id
            );
            assert!(
                !member.awaiting_join || self.state == GroupState::PreparingRebalance,
                "member {} awaits a join outside PreparingRebalance",
                member.member_id
            );
            assert!(
                !member.awaiting_sync || self.state == GroupState::CompletingRebalance,
                "member {} awaits a sync outside CompletingRebalance",
                member.member_id
            );
        }
        assert!(
            self.generation_id >= 0,
            "group {}: negative generation",
            self.id
        );
    }
}
