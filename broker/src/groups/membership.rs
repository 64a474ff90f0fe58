//! The client-facing transitions of [`Group`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and
//! the membership check of OffsetCommit. Pure like the rest of the state machine: `now_ms` in,
//! answers and [`Effects`] out. The error choices follow Kafka's classic GroupCoordinator.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::state::{
    Effects, Group, GroupState, JoinRequest, JoinResponse, Member, Outcome, SyncResponse,
};
use super::GroupConfig;

/// A SyncGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, member id → bytes (ignored from followers).
    pub assignments: BTreeMap<String, Bytes>,
}

impl Group {
    /// JoinGroup. `fresh_member_id` is used when the member needs a new id.
    pub fn join(
        &mut self,
        request: JoinRequest,
        fresh_member_id: String,
        now_ms: i64,
        config: &GroupConfig,
    ) -> (Outcome<JoinResponse>, Effects) {
        let mut effects = Effects::default();
        let member_id = request.member_id.clone();
        if self.state == GroupState::Dead {
            return (
                error_join(ResponseError::CoordinatorNotAvailable, &member_id),
                effects,
            );
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return (
                error_join(ResponseError::InconsistentGroupProtocol, &member_id),
                effects,
            );
        }
        let outcome = if member_id.is_empty() {
            self.join_new_member(request, fresh_member_id, now_ms, config, &mut effects)
        } else if self.pending_members.remove(&member_id).is_some() {
            self.add_member_and_rebalance(request, member_id, now_ms, config, &mut effects)
        } else {
            self.join_current_member(request, now_ms, config, &mut effects)
        };
        self.try_complete_join(now_ms, config, &mut effects);
        self.debug_check_invariants();
        (outcome, effects)
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        new_member_id: String,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Outcome<JoinResponse> {
        if self.members.len() + self.pending_members.len() >= config.group_members_max {
            return error_join(ResponseError::GroupMaxSizeReached, "");
        }
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_member_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(
                    request,
                    &old_member_id,
                    new_member_id,
                    now_ms,
                    config,
                    effects,
                );
            }
            return self.add_member_and_rebalance(request, new_member_id, now_ms, config, effects);
        }
        if request.require_known_member_id {
            // The id is only reserved; the member enters the group when it rejoins with it.
            let expires_ms = now_ms + i64::from(request.session_timeout_ms);
            self.pending_members
                .insert(new_member_id.clone(), expires_ms);
            return error_join(ResponseError::MemberIdRequired, &new_member_id);
        }
        self.add_member_and_rebalance(request, new_member_id, now_ms, config, effects)
    }

    fn join_current_member(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Outcome<JoinResponse> {
        let member_id = request.member_id.clone();
        if let Err(error) = self.validate_member(&member_id, request.group_instance_id.as_deref()) {
            return error_join(error, &member_id);
        }
        let Some(member) = self.members.get(&member_id) else {
            return error_join(ResponseError::UnknownMemberId, &member_id);
        };
        let unchanged = member.matches_request(&request);
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                Outcome::Done(self.current_join_response(&member_id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Outcome::Done(self.current_join_response(&member_id))
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => {
                self.update_member_and_rebalance(request, now_ms, config, effects)
            }
            GroupState::Empty | GroupState::Dead => {
                error_join(ResponseError::UnknownMemberId, &member_id)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        member_id: String,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Outcome<JoinResponse> {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocol_type: request.protocol_type,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            last_heartbeat_ms: now_ms,
        };
        self.members.insert(member_id.clone(), member);
        if self.state == GroupState::PreparingRebalance {
            self.note_new_member_in_initial_delay();
        } else {
            self.maybe_prepare_rebalance(now_ms, config, effects);
        }
        Outcome::Wait { member_id }
    }

    fn update_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Outcome<JoinResponse> {
        let member_id = request.member_id.clone();
        if let Some(member) = self.members.get_mut(&member_id) {
            member.protocols = request.protocols;
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            member.client_id = request.client_id;
            member.client_host = request.client_host;
            member.awaiting_join = true;
            member.last_heartbeat_ms = now_ms;
        }
        self.maybe_prepare_rebalance(now_ms, config, effects);
        Outcome::Wait { member_id }
    }

    /// A static member came back with a new member id: the old id is fenced and its place
    /// taken over, without a rebalance when the group is Stable and nothing changed.
    fn replace_static_member(
        &mut self,
        request: JoinRequest,
        old_member_id: &str,
        new_member_id: String,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Outcome<JoinResponse> {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return self.add_member_and_rebalance(request, new_member_id, now_ms, config, effects);
        };
        if std::mem::take(&mut member.awaiting_join) {
            let answer = JoinResponse::error(ResponseError::FencedInstanceId, old_member_id);
            effects.joins.push((old_member_id.to_owned(), answer));
        }
        if std::mem::take(&mut member.awaiting_sync) {
            effects.syncs.push((
                old_member_id.to_owned(),
                SyncResponse::error(ResponseError::FencedInstanceId),
            ));
        }
        let old_leader_id = self.leader_id.clone().unwrap_or_default();
        let was_leader = old_leader_id == old_member_id;
        if was_leader {
            self.leader_id = Some(new_member_id.clone());
        }
        let unchanged = member.matches_request(&request);
        member.member_id = new_member_id.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.protocols = request.protocols;
        member.last_heartbeat_ms = now_ms;
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.clone());
        }
        self.members.insert(new_member_id.clone(), member);
        let protocol_kept = self.select_protocol() == self.protocol_name;
        if self.state == GroupState::Stable && unchanged && protocol_kept {
            effects.persist = true;
            let skip = was_leader && request.supports_skip_assignment;
            let mut answer = self.current_join_response(&new_member_id);
            // A non-skipping leader must not reassign a Stable group (its SyncGroup would not
            // be broadcast), so it is told the old leader id and acts as a follower.
            answer.leader_id = if skip {
                new_member_id.clone()
            } else {
                old_leader_id
            };
            answer.skip_assignment = skip;
            if !skip {
                answer.members.clear();
            }
            // Answered once the group naming the new id is durable (Kafka stores it first):
            // after a crash the old id would come back and fence this member.
            effects.joins.push((new_member_id.clone(), answer));
            return Outcome::Wait {
                member_id: new_member_id,
            };
        }
        if let Some(member) = self.members.get_mut(&new_member_id) {
            member.awaiting_join = true;
        }
        self.maybe_prepare_rebalance(now_ms, config, effects);
        Outcome::Wait {
            member_id: new_member_id,
        }
    }

    /// SyncGroup: the leader's call hands in the assignment, which the coordinator writes
    /// before the group turns Stable ([`Effects::store_assignment`]).
    pub fn sync(&mut self, request: SyncRequest, now_ms: i64) -> (Outcome<SyncResponse>, Effects) {
        let mut effects = Effects::default();
        let done = |error| {
            (
                Outcome::Done(SyncResponse::error(error)),
                Effects::default(),
            )
        };
        if self.state == GroupState::Dead {
            return done(ResponseError::CoordinatorNotAvailable);
        }
        if let Err(error) =
            self.validate_member(&request.member_id, request.group_instance_id.as_deref())
        {
            return done(error);
        }
        if request.generation_id != self.generation_id {
            return done(ResponseError::IllegalGeneration);
        }
        let type_differs =
            request.protocol_type.is_some() && request.protocol_type != self.protocol_type;
        let name_differs =
            request.protocol_name.is_some() && request.protocol_name != self.protocol_name;
        if type_differs || name_differs {
            return done(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => done(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => done(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                self.heartbeat_member(&request.member_id, now_ms);
                (Outcome::Done(self.sync_answer(&request.member_id)), effects)
            }
            GroupState::CompletingRebalance => {
                let member_id = request.member_id.clone();
                if let Some(member) = self.members.get_mut(&member_id) {
                    member.awaiting_sync = true;
                    member.last_heartbeat_ms = now_ms;
                }
                if self.leader_id.as_deref() == Some(member_id.as_str()) {
                    self.set_assignment(request.assignments);
                    effects.store_assignment = Some(self.generation_id);
                }
                (Outcome::Wait { member_id }, effects)
            }
        }
    }

    /// The leader's assignment, held in the members while the group with it is written
    /// (DescribeGroups shows assignments of Stable groups only).
    fn set_assignment(&mut self, mut assignments: BTreeMap<String, Bytes>) {
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
        }
    }

    /// The write of the group with the leader's assignment for `generation_id` finished
    /// (Kafka's doSyncGroup store callback). If the group has moved on since (a rebalance,
    /// which answered the parked SyncGroups already), nothing changes. Stored: the group is
    /// Stable and every parked SyncGroup gets its assignment. Failed: every parked SyncGroup
    /// gets `error`, the assignment is dropped and the group rebalances, so no member works
    /// from an assignment a coordinator restart would not know.
    pub fn assignment_stored(
        &mut self,
        generation_id: i32,
        stored: Result<(), ResponseError>,
        now_ms: i64,
        config: &GroupConfig,
    ) -> Effects {
        let mut effects = Effects::default();
        if self.state != GroupState::CompletingRebalance || self.generation_id != generation_id {
            return effects;
        }
        match stored {
            Ok(()) => {
                self.transition(GroupState::Stable, now_ms);
                self.sync_deadline_ms = None;
                let waiting: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_sync)
                    .map(|m| m.member_id.clone())
                    .collect();
                for member_id in waiting {
                    if let Some(member) = self.members.get_mut(&member_id) {
                        member.awaiting_sync = false;
                    }
                    let answer = self.sync_answer(&member_id);
                    effects.syncs.push((member_id, answer));
                }
            }
            Err(error) => {
                for member in self.members.values_mut() {
                    member.assignment = Bytes::new();
                    if std::mem::take(&mut member.awaiting_sync) {
                        let answer = SyncResponse::error(error);
                        effects.syncs.push((member.member_id.clone(), answer));
                    }
                }
                self.prepare_rebalance(now_ms, config, &mut effects);
            }
        }
        self.debug_check_invariants();
        effects
    }

    fn sync_answer(&self, member_id: &str) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    fn heartbeat_member(&mut self, member_id: &str, now_ms: i64) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat_ms = now_ms;
        }
    }

    /// Heartbeat: keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.heartbeat_member(member_id, now_ms);
                Ok(())
            }
            GroupState::PreparingRebalance => {
                self.heartbeat_member(member_id, now_ms);
                Err(ResponseError::RebalanceInProgress)
            }
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id alone when the member id is
    /// empty).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(instance) if member_id.is_empty() => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?,
            _ if self.pending_members.remove(member_id).is_some() => {
                self.try_complete_join(now_ms, config, effects);
                return Ok(());
            }
            _ => {
                self.validate_member(member_id, instance_id)?;
                member_id.to_owned()
            }
        };
        self.remove_member_and_rebalance(&target, now_ms, config, effects);
        self.debug_check_invariants();
        Ok(())
    }

    /// May this caller commit offsets now? Kafka's rules: any commit with a negative
    /// generation to an Empty group (an admin, a client managing its own partitions, or one
    /// that has left and still sends its old member id); otherwise a member only with the
    /// current generation and not while the assignment is being distributed. A member's
    /// commit counts as a heartbeat.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
            if self.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            self.heartbeat_member(member_id, now_ms);
            return Ok(());
        }
        // A generation-less commit without a member id, to a group with members.
        Err(ResponseError::UnknownMemberId)
    }
}

impl Member {
    fn matches_request(&self, request: &JoinRequest) -> bool {
        self.protocols == request.protocols
    }
}

fn error_join(error: ResponseError, member_id: &str) -> Outcome<JoinResponse> {
    Outcome::Done(JoinResponse::error(error, member_id))
}
