//! One consumer group's state machine (the classic protocol), free of I/O and of tokio.
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
//!   ▲                 ▲    │ (no member left)                                  │ leader's sync,
//!   └─────────────────┼────┘                                                   ▼ once stored
//!                     └──── join with new metadata, leave, session expiry ── Stable
//! CompletingRebalance also goes back to PreparingRebalance when a member leaves, expires, or
//! has not sent SyncGroup within the rebalance timeout, or when the leader's assignment could
//! not be stored ([`Group::assignment_stored`]).
//! Dead: deleted (DeleteGroups, offsets expired); the coordinator drops it from its map.
//! ```
//!
//! Every call takes `now_ms`; deadlines are plain numbers checked by [`Group::tick`], so tests
//! move time by hand. Calls that must wait (a join while others rejoin, a follower's sync before
//! the leader's) return `Wait`; their answers come out later in [`Effects`], keyed by member id,
//! for the coordinator to deliver. Not thread-safe: the coordinator holds it under a mutex.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::GroupConfig;

/// Kafka's group states; [`GroupState::name`] is what DescribeGroups / ListGroups show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Case-insensitive, as Kafka's ListGroups state filter.
    pub fn parse(name: &str) -> Option<GroupState> {
        GroupState::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One (name, metadata) a member offers, in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProtocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A member of the group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<MemberProtocol>,
    /// The leader's assignment for this member (empty until the leader's SyncGroup).
    pub assignment: Bytes,
    pub(super) awaiting_join: bool,
    pub(super) awaiting_sync: bool,
    pub(super) is_new: bool,
    pub(super) last_heartbeat_ms: i64,
}

impl Member {
    /// The metadata this member offered for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }
    /// Kafka's `shouldKeepAlive`: members parked in a join or sync are not expired (the
    /// rebalance timeout bounds them), except brand-new members that never finish joining.
    pub(super) fn is_expired(&self, now_ms: i64, config: &GroupConfig) -> bool {
        if self.awaiting_join {
            self.is_new
                && now_ms >= self.last_heartbeat_ms + i64::from(config.new_member_join_timeout_ms)
        } else {
            !self.awaiting_sync
                && now_ms >= self.last_heartbeat_ms + i64::from(self.session_timeout_ms)
        }
    }
}

/// A JoinGroup as the state machine sees it (already validated: group id, session timeout).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<MemberProtocol>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and must rejoin with the id.
    pub require_known_member_id: bool,
    /// v9+: a rejoining static leader may be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// One member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(error: ResponseError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_owned(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> SyncResponse {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Answer now, or later through [`Effects`] under the member id given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    Wait { member_id: String },
}

/// What a call caused besides its own answer.
#[derive(Debug, Default)]
pub struct Effects {
    /// Answers for parked JoinGroups; deliver after `persist` (if set) is durable.
    pub joins: Vec<(String, JoinResponse)>,
    /// Answers for parked SyncGroups; deliver after `persist` (if set) is durable.
    pub syncs: Vec<(String, SyncResponse)>,
    /// The group's metadata (generation, members, assignment) changed in a way that must be
    /// written to `__consumer_offsets`.
    pub persist: bool,
    /// The leader's SyncGroup handed in the assignment of this generation: write the group
    /// with it, then report how the write went to [`Group::assignment_stored`]. As in Kafka,
    /// the group turns Stable (and parked SyncGroups get their assignment) only after that.
    pub store_assignment: Option<i32>,
}

/// The rebalance in progress: when joins may complete at the earliest, and at the latest.
#[derive(Debug, Clone, Copy)]
pub(super) struct RebalanceTimer {
    pub(super) started_ms: i64,
    pub(super) earliest_complete_ms: i64,
    pub(super) deadline_ms: i64,
    /// True while the initial delay (rebalance out of Empty) is still being extended.
    pub(super) initial_delay: bool,
    /// A new member joined during the current delay window: when the window ends it is
    /// extended once (Kafka's `newMemberAdded`), however many members joined in it.
    pub(super) new_member_added: bool,
}

/// One group: members, generation, selected protocol, timers. See the module doc.
#[derive(Debug, Clone)]
pub struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    /// When the current state was entered (offset retention of empty groups counts from it).
    pub(super) state_timestamp_ms: i64,
    pub(super) generation_id: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader_id: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    pub(super) static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → when they expire if never used.
    pub(super) pending_members: BTreeMap<String, i64>,
    pub(super) rebalance: Option<RebalanceTimer>,
    /// In CompletingRebalance: members that have not sent SyncGroup by then are removed
    /// (Kafka's pending-sync timeout), so a vanished member cannot stall the group.
    pub(super) sync_deadline_ms: Option<i64>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance: None,
            sync_deadline_ms: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Marks the group deleted; parked calls are answered by the coordinator.
    pub fn mark_dead(&mut self, now_ms: i64) {
        self.transition(GroupState::Dead, now_ms);
    }

    pub(super) fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Kafka's `validateMember`: a static member is checked by instance id (another id with
    /// the same instance id is fenced), a dynamic one by member id.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(ResponseError::UnknownMemberId),
                Some(known) if known != member_id => Err(ResponseError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty type and protocol list;
    /// otherwise the type must match and one offered protocol must be supported by everyone.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[MemberProtocol],
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.is_supported_by_all(&p.name))
    }

    fn is_supported_by_all(&self, protocol: &str) -> bool {
        self.members
            .values()
            .all(|m| m.metadata_for(protocol).is_some())
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member votes for
    /// its most preferred; most votes wins, ties going to the leader's preference order.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let leader = self.leader_id.as_ref().and_then(|id| self.members.get(id));
        let reference = leader.or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = reference
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.is_supported_by_all(name))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name));
            if let Some(index) = choice {
                votes[index] += 1;
            }
        }
        let best = votes.iter().copied().max()?;
        let index = votes.iter().position(|v| *v == best)?;
        candidates.get(index).map(|name| (*name).to_owned())
    }

    /// The answer a member gets for the current generation (leader: with every member).
    pub(super) fn current_join_response(&self, member_id: &str) -> JoinResponse {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: false,
            members: if is_leader {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }
}
