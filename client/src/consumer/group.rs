//! Classic group membership for one consumer: FindCoordinator, JoinGroup (with the
//! MEMBER_ID_REQUIRED round trip), the leader's assignment, SyncGroup, a heartbeat task that
//! flags when a rebalance is needed, and LeaveGroup. Subscription and assignment bytes use
//! Kafka's ConsumerProtocol encoding (`member_protocol`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;

use super::assignor::Assignor;
use super::heartbeat::{self, CoordinatorSlot, Heartbeat};
pub use super::member_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use super::{ConsumerConfig, TopicPartition};
use crate::cluster::Cluster;
use crate::conn::Connection;
use crate::error::{codes, Error, Result};
// FindCoordinator's pauses are Kafka's defaults; a join's come from the consumer's config.
use crate::retry::{next_backoff_ms, RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_MS};

/// The outcome of one completed rebalance (what [`GroupMember::join`] returns).
pub struct Joined {
    pub generation_id: i32,
    pub assignor: Assignor,
    pub assignment: Vec<TopicPartition>,
    /// The coordinator no longer knew this member (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION)
    /// and it joined afresh: partitions it kept meanwhile may have had another owner, so
    /// those not assigned again are lost, not revoked (no commit of their positions).
    pub member_reset: bool,
}

/// This consumer's membership in one group; [`Consumer`](crate::Consumer) drives it from
/// `poll`, and applications normally never touch it directly.
///
/// ```no_run
/// use runnel_client::consumer::group::GroupMember;
/// use runnel_client::{Cluster, ConsumerConfig};
/// # async fn example() -> runnel_client::Result<()> {
/// let config = ConsumerConfig::new("127.0.0.1:9092");
/// let cluster = Cluster::connect(config.client.clone()).await?;
/// let mut member = GroupMember::new(cluster, config, "g".into());
/// let joined = member.join(&["orders".into()], &[]).await?;
/// println!("generation {}: {:?}", joined.generation_id, joined.assignment);
/// member.leave().await?;
/// # Ok(()) }
/// ```
pub struct GroupMember {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    /// Shared with the heartbeat task (see [`CoordinatorSlot`]).
    coordinator: CoordinatorSlot,
    rejoin_needed: Arc<AtomicBool>,
    /// Set by the heartbeat when the coordinator no longer knows this member or generation
    /// (it was fenced: e.g. it did not poll within the rebalance timeout).
    membership_lost: Arc<AtomicBool>,
    /// Joins completed so far: a commit's answer about its generation is acted on only
    /// while no later join has replaced it.
    joins: Arc<AtomicU64>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

impl GroupMember {
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig, group_id: String) -> GroupMember {
        GroupMember {
            cluster,
            config,
            group_id,
            member_id: String::new(),
            generation_id: -1,
            coordinator: CoordinatorSlot::default(),
            rejoin_needed: Arc::new(AtomicBool::new(true)),
            membership_lost: Arc::new(AtomicBool::new(false)),
            joins: Arc::new(AtomicU64::new(0)),
            heartbeat: None,
        }
    }

    /// True when the heartbeat saw a rebalance (or we never joined).
    pub fn needs_rejoin(&self) -> bool {
        self.rejoin_needed.load(Ordering::Relaxed)
    }

    pub fn request_rejoin(&self) {
        self.rejoin_needed.store(true, Ordering::Relaxed);
    }

    /// True once after the heartbeat found this member fenced; the membership is forgotten
    /// then (the next join starts afresh) and the caller must treat its partitions as lost:
    /// another member may own them already, so their positions are not committed.
    pub fn take_lost(&mut self) -> bool {
        if !self.membership_lost.swap(false, Ordering::Relaxed) {
            return false;
        }
        self.member_id.clear();
        self.generation_id = -1;
        true
    }

    /// The coordinator connection, found with FindCoordinator on first use; a lookup is
    /// retried for up to `default_api_timeout_ms`, the bound of the calls that need it
    /// (commit, committed offsets, leave), as Java's.
    pub async fn coordinator(&mut self) -> Result<Arc<Connection>> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.default_api_timeout_ms);
        self.coordinator_until(deadline).await
    }

    /// [`coordinator`](Self::coordinator), looking it up until `deadline` at most.
    pub(super) async fn coordinator_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Connection>> {
        self.coordinator_lookup().until(deadline).await
    }

    /// What looks the coordinator up into this member's slot, for a task of its own (an
    /// async commit's, which must not wait for a lookup before it returns).
    pub(super) fn coordinator_lookup(&self) -> CoordinatorLookup {
        CoordinatorLookup {
            cluster: self.cluster.clone(),
            group_id: self.group_id.clone(),
            slot: self.coordinator.clone(),
        }
    }

    /// A handle a commit reports back through, also from a task of its own.
    pub(crate) fn handle(&self) -> MembershipHandle {
        MembershipHandle {
            coordinator: self.coordinator.clone(),
            rejoin_needed: self.rejoin_needed.clone(),
            membership_lost: self.membership_lost.clone(),
            joins_seen: self.joins.load(Ordering::Relaxed),
            joins: self.joins.clone(),
        }
    }

    fn group(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.group_id.clone()))
    }

    /// Joins (or rejoins) the group subscribed to `topics`, owning `owned`, and returns the
    /// new assignment; restarts the heartbeat task for the new generation.
    ///
    /// Retries are bounded by time, not a count: a coordinator still loading a big
    /// `__consumer_offsets` after a restart answers COORDINATOR_LOAD_IN_PROGRESS for as long
    /// as that takes. As Java's `joinGroupIfNeeded`: MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,
    /// ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS are retried at once (the answer says
    /// what to send next); other retriable errors after `retry_backoff_ms`, doubling up to
    /// `retry_backoff_max_ms`; anything else ends the join. Java bounds those retries only
    /// by the timer of the call driving the join (each `poll` resumes it for its timeout);
    /// here the join runs as a task of its own across polls, and calls that wait for it
    /// (commit, close) are bounded in Java by `default.api.timeout.ms` — so that is the
    /// bound here: past `default_api_timeout_ms` the last error is reported (and the next
    /// `poll` starts a new join).
    pub async fn join(&mut self, topics: &[String], owned: &[TopicPartition]) -> Result<Joined> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let metadata = encode_subscription(topics, owned, self.generation_id);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.default_api_timeout_ms);
        let mut member_reset = false;
        let mut pause_ms = 0;
        // Bounded by the deadline: a pass that does not end the loop either sleeps at least
        // `retry_backoff_ms` or had an answer telling it what to send next.
        loop {
            let error = match self.join_once(&metadata, deadline).await {
                Ok(mut joined) => {
                    joined.member_reset = member_reset;
                    self.rejoin_needed.store(false, Ordering::Relaxed);
                    // A loss flagged meanwhile (a commit before the join) was the old
                    // generation's; this one is not lost.
                    self.membership_lost.store(false, Ordering::Relaxed);
                    self.joins.fetch_add(1, Ordering::Relaxed);
                    self.start_heartbeat().await?;
                    return Ok(joined);
                }
                Err(error) => error,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(error);
            }
            match error.code() {
                Some(codes::MEMBER_ID_REQUIRED) | Some(codes::REBALANCE_IN_PROGRESS) => continue,
                Some(codes::UNKNOWN_MEMBER_ID) | Some(codes::ILLEGAL_GENERATION) => {
                    self.member_id.clear();
                    self.generation_id = -1;
                    member_reset = true;
                    continue;
                }
                // Still the coordinator, just not ready: ask it again.
                Some(codes::COORDINATOR_LOAD_IN_PROGRESS) => {}
                // Moved or gone: find it again.
                Some(codes::NOT_COORDINATOR) | Some(codes::COORDINATOR_NOT_AVAILABLE) => {
                    heartbeat::set(&self.coordinator, None);
                }
                _ if error.is_retriable() => heartbeat::set(&self.coordinator, None),
                _ => return Err(error),
            }
            tracing::debug!(group = %self.group_id, %error, "join failed; retrying");
            pause_ms = next_backoff_ms(
                pause_ms,
                self.config.retry_backoff_ms.max(1),
                self.config.retry_backoff_max_ms,
            );
            tokio::time::sleep_until((now + Duration::from_millis(pause_ms)).min(deadline)).await;
        }
    }

    /// One JoinGroup and SyncGroup round; the coordinator is looked up until `deadline`
    /// (the join's) at most.
    async fn join_once(
        &mut self,
        metadata: &Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<Joined> {
        let coordinator = self.coordinator_until(deadline).await?;
        let protocols = self
            .config
            .assignors
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        let request = JoinGroupRequest::default()
            .with_group_id(self.group())
            .with_session_timeout_ms(self.config.session_timeout_ms)
            .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(protocols);
        // The coordinator holds JoinGroup until every member has joined (Java's bound).
        let join_timeout_ms = u64::try_from(self.config.rebalance_timeout_ms).unwrap_or(0) + 5_000;
        let response = coordinator.send_long(&request, join_timeout_ms).await?;
        if response.error_code == codes::MEMBER_ID_REQUIRED {
            self.member_id = response.member_id.to_string();
        }
        Error::check(response.error_code, || {
            format!("join group {}", self.group_id)
        })?;
        self.member_id = response.member_id.to_string();
        self.generation_id = response.generation_id;
        let protocol = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let assignor = Assignor::from_name(&protocol)
            .ok_or_else(|| Error::Protocol(format!("group chose unknown assignor {protocol:?}")))?;
        let assignments = if response.leader == response.member_id {
            self.lead(assignor, &response.members).await?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(self.group())
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(assignor.name())))
            .with_assignments(assignments);
        let synced = coordinator.send(&sync).await?;
        Error::check(synced.error_code, || {
            format!("sync group {}", self.group_id)
        })?;
        Ok(Joined {
            generation_id: self.generation_id,
            assignor,
            assignment: decode_assignment(synced.assignment)?,
            member_reset: false,
        })
    }

    /// As leader: decode every member's subscription, run the assignor, encode the result.
    async fn lead(
        &self,
        assignor: Assignor,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions = Vec::with_capacity(members.len());
        for member in members {
            let mut subscription = decode_subscription(member.metadata.clone())?;
            subscription.member_id = member.member_id.to_string();
            subscriptions.push(subscription);
        }
        let topics: BTreeSet<String> = subscriptions
            .iter()
            .flat_map(|s| s.topics.iter().cloned())
            .collect();
        let topic_list: Vec<String> = topics.iter().cloned().collect();
        self.cluster.refresh(Some(&topic_list)).await?;
        let counts: HashMap<String, i32> = topics
            .into_iter()
            .filter_map(|t| {
                let info = self.cluster.cached_topic(&t)?;
                Some((t, i32::try_from(info.partitions.len()).unwrap_or(0)))
            })
            .collect();
        let assignment = assignor.assign(&subscriptions, &counts);
        Ok(assignment
            .into_iter()
            .map(|(member, partitions)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&partitions))
            })
            .collect())
    }

    /// Starts the heartbeat task of the generation just joined (see [`Heartbeat`]).
    async fn start_heartbeat(&mut self) -> Result<()> {
        // Looked up now if a lookup is due, so a join that cannot reach its coordinator
        // says so rather than leaving it to the task.
        self.coordinator().await?;
        let request = HeartbeatRequest::default()
            .with_group_id(self.group())
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let heartbeat = Heartbeat {
            cluster: self.cluster.clone(),
            group_id: self.group_id.clone(),
            request,
            coordinator: self.coordinator.clone(),
            interval_ms: self.config.heartbeat_interval_ms,
            session_timeout_ms: u64::try_from(self.config.session_timeout_ms).unwrap_or(0),
            retry_backoff_ms: self.config.retry_backoff_ms,
            rejoin_needed: self.rejoin_needed.clone(),
            membership_lost: self.membership_lost.clone(),
        };
        self.heartbeat = Some(tokio::spawn(heartbeat.run()));
        Ok(())
    }

    /// Leaves the group (best effort: the session timeout removes us anyway).
    pub async fn leave(&mut self) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        if self.member_id.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator().await?;
        let member_id = StrBytes::from_string(self.member_id.clone());
        let group = self.group();
        let response = coordinator
            .send_with(|version| {
                let request = LeaveGroupRequest::default().with_group_id(group);
                if version >= 3 {
                    request.with_members(vec![MemberIdentity::default().with_member_id(member_id)])
                } else {
                    request.with_member_id(member_id)
                }
            })
            .await?;
        self.member_id.clear();
        self.generation_id = -1;
        Error::check(response.error_code, || {
            format!("leave group {}", self.group_id)
        })
    }
}

/// What a commit or committed-offsets fetch may change in the membership it was made for,
/// without holding the member (an async commit runs on a task of its own).
#[derive(Clone)]
pub(crate) struct MembershipHandle {
    coordinator: CoordinatorSlot,
    rejoin_needed: Arc<AtomicBool>,
    membership_lost: Arc<AtomicBool>,
    joins: Arc<AtomicU64>,
    /// `joins` when the handle was made: its generation is current while they are equal.
    joins_seen: u64,
}

impl MembershipHandle {
    /// Forgets the coordinator connection: the next request (a commit, a join, a
    /// heartbeat) looks the coordinator up again, as Java's `markCoordinatorUnknown`.
    pub fn coordinator_unknown(&self) {
        heartbeat::set(&self.coordinator, None);
    }

    /// The coordinator no longer knows the handle's generation (UNKNOWN_MEMBER_ID,
    /// ILLEGAL_GENERATION, FENCED_INSTANCE_ID on a commit): the next `poll` rejoins afresh
    /// and its partitions are lost, as after such a heartbeat — unless a later join has
    /// replaced that generation already.
    pub fn generation_ended(&self) {
        if self.generation_current() {
            self.membership_lost.store(true, Ordering::Relaxed);
            self.rejoin_needed.store(true, Ordering::Relaxed);
        }
    }

    /// The group is rebalancing (REBALANCE_IN_PROGRESS on a commit): the next `poll`
    /// rejoins, keeping the membership.
    pub fn rebalancing(&self) {
        if self.generation_current() {
            self.rejoin_needed.store(true, Ordering::Relaxed);
        }
    }

    fn generation_current(&self) -> bool {
        self.joins.load(Ordering::Relaxed) == self.joins_seen
    }
}

/// A group's coordinator connection as its member knows it (shared through the slot).
pub(super) struct CoordinatorLookup {
    cluster: Arc<Cluster>,
    group_id: String,
    slot: CoordinatorSlot,
}

impl CoordinatorLookup {
    /// The known coordinator, else one found with FindCoordinator until `deadline` at most.
    pub(super) async fn until(&self, deadline: tokio::time::Instant) -> Result<Arc<Connection>> {
        if let Some(conn) = heartbeat::current(&self.slot) {
            return Ok(conn);
        }
        let conn = find_coordinator(&self.cluster, &self.group_id, deadline).await?;
        heartbeat::set(&self.slot, Some(conn.clone()));
        Ok(conn)
    }
}

/// FindCoordinator for a group, then a coordinator connection to it; retriable failures
/// (coordinator loading, lost connection) are retried until `deadline`.
///
/// Bounded by time, not a count, and by the caller's bound (as Java's
/// `ensureCoordinatorReady(timer)`): a join's deadline, or `default_api_timeout_ms` for a
/// commit or an admin call. A coordinator still loading its group's offsets, or a broker
/// restarting, is waited out for as long as the caller would wait, and no longer.
pub async fn find_coordinator(
    cluster: &Cluster,
    group_id: &str,
    deadline: tokio::time::Instant,
) -> Result<Arc<Connection>> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group_id.to_owned()))
        .with_key_type(0);
    let mut pause_ms: u64 = 0;
    // Each pass sleeps at least RETRY_BACKOFF_MS or ends: bounded by the deadline.
    loop {
        let error = match cluster.send_any(&request).await {
            Ok(response) => match Error::check(response.error_code, || {
                format!("find coordinator {group_id}")
            }) {
                Ok(()) => {
                    let addr = format!("{}:{}", response.host.as_str(), response.port);
                    return cluster.coordinator_connection(&addr).await;
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let now = tokio::time::Instant::now();
        if !(error.is_retriable() || matches!(error, Error::NoBrokers(_))) || now >= deadline {
            return Err(error);
        }
        pause_ms = next_backoff_ms(pause_ms, RETRY_BACKOFF_MS, RETRY_BACKOFF_MAX_MS);
        tokio::time::sleep_until((now + Duration::from_millis(pause_ms)).min(deadline)).await;
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod coordinator_tests;
