//! The group coordinator: every group of this broker, the parked JoinGroup/SyncGroup answers,
//! and the timer task.
//!
//! Thread-safety: the groups map is one mutex held only to find or insert a group; each group
//! sits in its own mutex (`GroupSlot`) taken for the whole of one call (state change, log
//! append to page cache, memory update), never while holding the map lock. Parked answers are
//! tokio oneshots; a group-metadata write is fsynced on a spawned task before the parked
//! SyncGroups it unblocks are answered, and the leader's SyncGroup makes its group Stable
//! only once the assignment is durable. Timers are one task waking every `timer_tick_ms`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::membership::SyncRequest;
use super::offsets::{group_record, OffsetsStore, TopicPartition};
use super::records::OffsetValue;
use super::state::{Effects, Group, GroupState, JoinRequest, JoinResponse, Outcome, SyncResponse};
use super::{Clock, GroupConfig, GroupError};
use crate::log::{LogError, LogManager};

/// An answer now, or a future resolving to it.
pub enum Reply<T> {
    Ready(T),
    Pending(BoxFuture<'static, T>),
}

impl<T: Send + 'static> Reply<T> {
    /// Waits for the answer (tests and simple callers).
    pub async fn wait(self) -> T {
        match self {
            Reply::Ready(value) => value,
            Reply::Pending(future) => future.await,
        }
    }
}

/// One group with its committed offsets and its parked calls.
pub(super) struct GroupSlot {
    pub(super) group: Group,
    pub(super) offsets: BTreeMap<TopicPartition, OffsetValue>,
    join_waiters: HashMap<String, oneshot::Sender<JoinResponse>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResponse>>,
}

impl GroupSlot {
    pub(super) fn new(group: Group) -> GroupSlot {
        GroupSlot {
            group,
            offsets: BTreeMap::new(),
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
        }
    }
}

pub(super) type SharedSlot = Arc<Mutex<GroupSlot>>;

/// See the module doc.
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) logs: Arc<LogManager>,
    pub(super) store: OffsetsStore,
    pub(super) groups: Mutex<HashMap<String, SharedSlot>>,
}

/// The Kafka error a client sees when `__consumer_offsets` cannot be written. Like Kafka's
/// coordinator, storage trouble reads as "coordinator unavailable" (retriable: the client
/// rediscovers and retries) and an oversized write as INVALID_COMMIT_OFFSET_SIZE.
pub fn storage_error_code(error: &GroupError) -> ResponseError {
    match error {
        GroupError::Batch(_)
        | GroupError::Storage(LogError::InvalidBatch(_) | LogError::InvalidConfig(_)) => {
            ResponseError::InvalidCommitOffsetSize
        }
        GroupError::Storage(_) | GroupError::CorruptRecord { .. } => {
            ResponseError::CoordinatorNotAvailable
        }
    }
}

/// The Kafka error for a failed write of a group's metadata (the leader's SyncGroup). As for
/// offsets, except that an oversized record is UNKNOWN_SERVER_ERROR, as in Kafka's
/// `GroupMetadataManager.storeGroup` (INVALID_COMMIT_OFFSET_SIZE is about commits).
pub fn group_write_error_code(error: &GroupError) -> ResponseError {
    match storage_error_code(error) {
        ResponseError::InvalidCommitOffsetSize => ResponseError::UnknownServerError,
        code => code,
    }
}

impl GroupCoordinator {
    /// Replays `__consumer_offsets` (creating it on first start) and rebuilds every group.
    pub fn open(
        logs: Arc<LogManager>,
        config: GroupConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<GroupCoordinator>, GroupError> {
        let (store, loaded) = OffsetsStore::open(logs.clone(), &config)?;
        let now_ms = clock.now_ms();
        let mut groups = HashMap::with_capacity(loaded.len());
        for (id, loaded_group) in loaded {
            let group = match &loaded_group.metadata {
                Some(metadata) => Group::from_metadata(&id, metadata, now_ms),
                None => Group::new(&id, now_ms),
            };
            let mut slot = GroupSlot::new(group);
            slot.offsets = loaded_group.offsets;
            groups.insert(id, Arc::new(Mutex::new(slot)));
        }
        tracing::info!(
            groups = groups.len(),
            "group coordinator loaded {}",
            super::OFFSETS_TOPIC
        );
        let coordinator = Arc::new(GroupCoordinator {
            config,
            clock,
            logs,
            store,
            groups: Mutex::new(groups),
        });
        coordinator.remove_offsets_of_missing_topics()?;
        Ok(coordinator)
    }

    /// Offsets of topics the log manager (opened first, every topic replayed) does not have
    /// are dropped and tombstoned, as DeleteTopics would have: a crash after a deletion's
    /// metadata record but before its tombstones were durable would otherwise bring them back
    /// onto a topic re-created under the name. Waits until the tombstones are durable.
    /// Commits name only existing topics, so nothing else is touched.
    fn remove_offsets_of_missing_topics(&self) -> Result<(), GroupError> {
        let missing: std::collections::BTreeSet<String> = self
            .all_slots()
            .iter()
            .flat_map(|slot| {
                let slot = slot.lock();
                let topics = slot.offsets.keys().map(|(topic, _)| topic.clone());
                topics.collect::<Vec<_>>()
            })
            .filter(|topic| self.logs.topic(topic).is_none())
            .collect();
        for topic in &missing {
            let (removed, durable) = self.remove_offsets_of_deleted_topic(topic);
            // The fsync flusher runs on its own threads: no runtime is needed to wait.
            futures::executor::block_on(durable)?;
            tracing::info!(
                topic,
                removed,
                "dropped committed offsets of a deleted topic"
            );
        }
        Ok(())
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Starts the timer task (session/rebalance timeouts every `timer_tick_ms`, offset
    /// retention every `offsets_retention_check_interval_ms`). It ends when the coordinator is
    /// dropped. Needs a tokio runtime.
    pub fn start_timers(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<GroupCoordinator> = Arc::downgrade(self);
        let tick_ms = self.config.timer_tick_ms.max(1);
        let retention_every_ticks =
            (self.config.offsets_retention_check_interval_ms / tick_ms).max(1);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u64 = 0;
            loop {
                interval.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                coordinator.tick();
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(retention_every_ticks) {
                    coordinator.expire_offsets();
                }
            }
        })
    }

    pub(super) fn slot(&self, group_id: &str) -> Option<SharedSlot> {
        self.groups.lock().get(group_id).cloned()
    }

    /// The group, created Empty if new. Past `groups_max` groups no new one is made: the
    /// caller answers COORDINATOR_NOT_AVAILABLE (retriable; the retention sweep frees room).
    pub(super) fn slot_or_create(&self, group_id: &str) -> Result<SharedSlot, ResponseError> {
        let now_ms = self.clock.now_ms();
        let mut groups = self.groups.lock();
        if let Some(slot) = groups.get(group_id) {
            return Ok(slot.clone());
        }
        if groups.len() >= self.config.groups_max {
            tracing::warn!(groups_max = self.config.groups_max, "group limit reached");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let slot = Arc::new(Mutex::new(GroupSlot::new(Group::new(group_id, now_ms))));
        groups.insert(group_id.to_owned(), slot.clone());
        Ok(slot)
    }

    pub(super) fn all_slots(&self) -> Vec<SharedSlot> {
        self.groups.lock().values().cloned().collect()
    }

    /// Drops a group marked Dead from the map, unless a new group of the same id has taken
    /// its place since its lock was released.
    pub(super) fn forget_group(&self, group_id: &str, dead: &SharedSlot) {
        let mut groups = self.groups.lock();
        if groups.get(group_id).is_some_and(|s| Arc::ptr_eq(s, dead)) {
            groups.remove(group_id);
        }
    }

    /// Runs every group's timers now (the timer task calls this each tick).
    pub fn tick(&self) {
        let now_ms = self.clock.now_ms();
        for slot in self.all_slots() {
            let mut slot = slot.lock();
            let effects = slot.group.tick(now_ms, &self.config);
            self.deliver(&mut slot, effects, now_ms);
        }
    }

    /// JoinGroup. Group ids and session timeouts are checked before any group is created.
    pub fn join(&self, group_id: &str, request: JoinRequest) -> Reply<JoinResponse> {
        let member_id = request.member_id.clone();
        let fail = |error| Reply::Ready(JoinResponse::error(error, &member_id));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let timeout = request.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms
            || timeout > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let slot = match self.slot(group_id) {
            Some(slot) => slot,
            None if !member_id.is_empty() => return fail(ResponseError::UnknownMemberId),
            None => match self.slot_or_create(group_id) {
                Ok(slot) => slot,
                Err(error) => return fail(error),
            },
        };
        let fresh_member_id = format!(
            "{}-{}",
            member_id_prefix(&request.client_id),
            uuid::Uuid::new_v4()
        );
        let now_ms = self.clock.now_ms();
        let mut slot = slot.lock();
        let (outcome, effects) = slot
            .group
            .join(request, fresh_member_id, now_ms, &self.config);
        let reply = match outcome {
            Outcome::Done(answer) => Reply::Ready(answer),
            Outcome::Wait { member_id } => {
                let (tx, rx) = oneshot::channel();
                slot.join_waiters.insert(member_id.clone(), tx);
                Reply::Pending(
                    async move {
                        rx.await.unwrap_or_else(|_| {
                            JoinResponse::error(ResponseError::UnknownMemberId, &member_id)
                        })
                    }
                    .boxed(),
                )
            }
        };
        self.deliver(&mut slot, effects, now_ms);
        reply
    }

    /// SyncGroup.
    pub fn sync(&self, group_id: &str, request: SyncRequest) -> Reply<SyncResponse> {
        if group_id.is_empty() {
            return Reply::Ready(SyncResponse::error(ResponseError::InvalidGroupId));
        }
        let Some(shared) = self.slot(group_id) else {
            return Reply::Ready(SyncResponse::error(ResponseError::UnknownMemberId));
        };
        let now_ms = self.clock.now_ms();
        let mut slot = shared.lock();
        let (outcome, mut effects) = slot.group.sync(request, now_ms);
        let store_assignment = effects.store_assignment.take();
        slot.group.debug_check_invariants();
        let reply = match outcome {
            Outcome::Done(answer) => Reply::Ready(answer),
            Outcome::Wait { member_id } => {
                let (tx, rx) = oneshot::channel();
                slot.sync_waiters.insert(member_id, tx);
                Reply::Pending(
                    async move {
                        rx.await.unwrap_or_else(|_| {
                            SyncResponse::error(ResponseError::RebalanceInProgress)
                        })
                    }
                    .boxed(),
                )
            }
        };
        self.deliver(&mut slot, effects, now_ms);
        if let Some(generation_id) = store_assignment {
            self.store_assignment(&shared, &mut slot, generation_id, now_ms);
        }
        reply
    }

    /// Writes the group with the leader's assignment and, once that is durable or has failed,
    /// tells the group ([`Group::assignment_stored`]) and answers the parked SyncGroups.
    fn store_assignment(
        &self,
        shared: &SharedSlot,
        slot: &mut GroupSlot,
        generation_id: i32,
        now_ms: i64,
    ) {
        let group_id = slot.group.id().to_owned();
        let record = group_record(&group_id, Some(&slot.group.to_metadata()));
        let durable = match self.store.append(&group_id, &[record], now_ms) {
            Ok(durable) => durable,
            Err(error) => {
                tracing::warn!(group = %group_id, %error, "writing the group's assignment failed");
                let stored = Err(group_write_error_code(&error));
                let effects =
                    slot.group
                        .assignment_stored(generation_id, stored, now_ms, &self.config);
                answer_parked(slot, effects.joins, effects.syncs);
                return;
            }
        };
        let (shared, clock, config) = (shared.clone(), self.clock.clone(), self.config.clone());
        tokio::spawn(async move {
            let stored = durable.await.map_err(|error| {
                tracing::warn!(group = %group_id, %error, "writing the group's assignment failed");
                group_write_error_code(&error)
            });
            let mut slot = shared.lock();
            let effects =
                slot.group
                    .assignment_stored(generation_id, stored, clock.now_ms(), &config);
            debug_assert!(!effects.persist && effects.store_assignment.is_none());
            answer_parked(&mut slot, effects.joins, effects.syncs);
        });
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = self.slot(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let now_ms = self.clock.now_ms();
        let result = slot
            .lock()
            .group
            .heartbeat(member_id, instance_id, generation_id, now_ms);
        result
    }

    /// LeaveGroup for each (member id, instance id); the outer error is group-wide.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let Some(slot) = self.slot(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Err(ResponseError::UnknownMemberId))
                .collect());
        };
        let now_ms = self.clock.now_ms();
        let mut slot = slot.lock();
        if slot.group.state() == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut effects = Effects::default();
        let results = members
            .iter()
            .map(|(member_id, instance)| {
                slot.group.leave(
                    member_id,
                    instance.as_deref(),
                    now_ms,
                    &self.config,
                    &mut effects,
                )
            })
            .collect();
        self.deliver(&mut slot, effects, now_ms);
        Ok(results)
    }

    /// Answers parked calls now, or, when the group record must be written, once it is
    /// durable (with the write's error if it fails).
    pub(super) fn deliver(&self, slot: &mut GroupSlot, effects: Effects, now_ms: i64) {
        debug_assert!(
            effects.store_assignment.is_none(),
            "only SyncGroup hands in an assignment, and it writes it itself"
        );
        if !effects.persist {
            answer_parked(slot, effects.joins, effects.syncs);
            return;
        }
        let joins: Vec<(oneshot::Sender<JoinResponse>, JoinResponse)> = effects
            .joins
            .into_iter()
            .filter_map(|(member_id, answer)| {
                slot.join_waiters.remove(&member_id).map(|tx| (tx, answer))
            })
            .collect();
        let syncs: Vec<(oneshot::Sender<SyncResponse>, SyncResponse)> = effects
            .syncs
            .into_iter()
            .filter_map(|(member_id, answer)| {
                slot.sync_waiters.remove(&member_id).map(|tx| (tx, answer))
            })
            .collect();
        let group_id = slot.group.id().to_owned();
        let record = group_record(&group_id, Some(&slot.group.to_metadata()));
        match self.store.append(&group_id, &[record], now_ms) {
            Ok(durable) if !joins.is_empty() || !syncs.is_empty() => {
                tokio::spawn(async move {
                    let written = durable.await.map_err(|e| group_write_error_code(&e));
                    answer_after_write(written, joins, syncs);
                });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(group = %group_id, %error, "writing group metadata failed");
                answer_after_write(Err(group_write_error_code(&error)), joins, syncs);
            }
        }
    }
}

/// Answers calls held for a group write: their answers if it is durable, its error if not.
fn answer_after_write(
    written: Result<(), ResponseError>,
    joins: Vec<(oneshot::Sender<JoinResponse>, JoinResponse)>,
    syncs: Vec<(oneshot::Sender<SyncResponse>, SyncResponse)>,
) {
    for (tx, answer) in joins {
        let answer = match written {
            Ok(()) => answer,
            Err(error) => JoinResponse::error(error, &answer.member_id),
        };
        let _ = tx.send(answer);
    }
    for (tx, answer) in syncs {
        let answer = match written {
            Ok(()) => answer,
            Err(error) => SyncResponse::error(error),
        };
        let _ = tx.send(answer);
    }
}

/// Answers parked JoinGroups and SyncGroups now; an answer whose caller has gone is dropped.
fn answer_parked(
    slot: &mut GroupSlot,
    joins: Vec<(String, JoinResponse)>,
    syncs: Vec<(String, SyncResponse)>,
) {
    for (member_id, answer) in joins {
        if let Some(tx) = slot.join_waiters.remove(&member_id) {
            let _ = tx.send(answer);
        }
    }
    for (member_id, answer) in syncs {
        if let Some(tx) = slot.sync_waiters.remove(&member_id) {
            let _ = tx.send(answer);
        }
    }
}

/// Kafka names members `<client id>-<uuid>`; the client id part is capped so member ids stay
/// small whatever the client sends.
fn member_id_prefix(client_id: &str) -> &str {
    const PREFIX_BYTES_MAX: usize = 128;
    let mut end = client_id.len().min(PREFIX_BYTES_MAX);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    &client_id[..end]
}
