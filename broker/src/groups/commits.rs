//! Committed offsets through the coordinator: OffsetCommit, OffsetFetch, OffsetDelete, the
//! retention sweep, and dropping a deleted topic's offsets. Every change is appended to
//! `__consumer_offsets` under the group's lock; a client's request is answered once durable.

use std::collections::BTreeSet;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{decode_budget, Decodable};
use runnel_protocol::frame::DECODED_COLLECTIONS_BYTES_MAX;

use super::coordinator::{storage_error_code, GroupCoordinator, GroupSlot, Reply, SharedSlot};
use super::offsets::{group_record, offset_record, Durable, TopicPartition};
use super::records::{KeyValue, OffsetValue};
use super::state::GroupState;
use super::GroupError;

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Who commits: a member (generation ≥ 0) or a simple client (generation -1, no member id).
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// OffsetCommit v2–v4 `retention_time_ms` (-1, and always at v1: broker default).
    pub retention_time_ms: i64,
}

/// Per-entry outcome, in request order (`None`: committed).
pub type EntryErrors = Vec<Option<ResponseError>>;

/// A group's committed offsets for some topics, `None` where nothing is committed.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

impl GroupCoordinator {
    /// OffsetCommit. Unknown topics/partitions and oversized metadata fail per partition;
    /// membership errors fail every partition. Fetches see a commit once it is appended; if
    /// its fsync then fails, the commit is answered with an error and undone in memory.
    pub fn commit_offsets(
        &self,
        group_id: &str,
        who: &Committer,
        entries: &[CommitEntry],
    ) -> Reply<EntryErrors> {
        let all = |error: ResponseError| Reply::Ready(vec![Some(error); entries.len()]);
        let shared = match self.slot(group_id) {
            Some(slot) => slot,
            // Kafka: no group and a generation means a stale member; without one it is a
            // client managing its own assignment, which gets a group for its offsets.
            None if who.generation_id >= 0 => return all(ResponseError::IllegalGeneration),
            None => match self.slot_or_create(group_id) {
                Ok(slot) => slot,
                Err(error) => return all(error),
            },
        };
        let now_ms = self.clock.now_ms();
        let mut slot = shared.lock();
        let instance_id = who.group_instance_id.as_deref();
        if let Err(error) =
            slot.group
                .validate_commit(&who.member_id, instance_id, who.generation_id, now_ms)
        {
            return all(error);
        }
        let mut errors: EntryErrors = entries.iter().map(|e| self.check_entry(e)).collect();
        let accepted = accepted_values(entries, &errors, who, now_ms);
        let records: Vec<KeyValue> = accepted
            .iter()
            .map(|((t, p), v)| offset_record(group_id, t, *p, Some(v)))
            .collect();
        let durable = match self.store.append(group_id, &records, now_ms) {
            Ok(durable) => durable,
            Err(error) => return all(storage_error_code(&error)),
        };
        let previous: Vec<Option<OffsetValue>> = accepted
            .iter()
            .map(|(tp, value)| slot.offsets.insert(tp.clone(), value.clone()))
            .collect();
        drop(slot);
        Reply::Pending(
            async move {
                if let Err(error) = durable.await {
                    undo_commit(&shared, accepted, previous);
                    let code = storage_error_code(&error);
                    errors
                        .iter_mut()
                        .filter(|e| e.is_none())
                        .for_each(|e| *e = Some(code));
                }
                errors
            }
            .boxed(),
        )
    }

    fn check_entry(&self, entry: &CommitEntry) -> Option<ResponseError> {
        let metadata_bytes = entry.metadata.as_ref().map_or(0, String::len);
        if metadata_bytes > self.config.offset_metadata_max_bytes {
            return Some(ResponseError::OffsetMetadataTooLarge);
        }
        if !self.partition_exists(&entry.topic, entry.partition) {
            return Some(ResponseError::UnknownTopicOrPartition);
        }
        None
    }

    pub(super) fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.logs
            .topic(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition))
    }

    /// OffsetFetch: the requested partitions (`None`: every committed one) of one group.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> FetchedOffsets {
        let Some(slot) = self.slot(group_id) else {
            let none =
                |(t, ps): &(String, Vec<i32>)| (t.clone(), ps.iter().map(|p| (*p, None)).collect());
            return topics
                .map(|ts| ts.iter().map(none).collect())
                .unwrap_or_default();
        };
        let slot = slot.lock();
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .iter()
                        .map(|p| (*p, slot.offsets.get(&(topic.clone(), *p)).cloned()))
                        .collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut out: FetchedOffsets = Vec::new();
                for ((topic, partition), value) in &slot.offsets {
                    match out.last_mut() {
                        Some((last, partitions)) if last == topic => {
                            partitions.push((*partition, Some(value.clone())))
                        }
                        _ => out.push((topic.clone(), vec![(*partition, Some(value.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// OffsetDelete: removes offsets of partitions the group no longer consumes. The outer
    /// error is group-wide; inner ones are per partition, in request order.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Reply<Result<EntryErrors, ResponseError>> {
        let Some(slot) = self.slot(group_id) else {
            return Reply::Ready(Err(ResponseError::GroupIdNotFound));
        };
        let now_ms = self.clock.now_ms();
        let mut slot = slot.lock();
        // As Kafka: only a non-empty group of another protocol type is refused as a whole; a
        // consumer group whose subscriptions cannot be read (`None`) counts as subscribed to
        // every topic.
        let subscribed = match slot.group.state() {
            GroupState::Dead => return Reply::Ready(Err(ResponseError::GroupIdNotFound)),
            GroupState::Empty => Some(BTreeSet::new()),
            _ if slot.group.protocol_type() != Some("consumer") => {
                return Reply::Ready(Err(ResponseError::NonEmptyGroup))
            }
            _ => subscribed_topics(&slot),
        };
        let mut errors = EntryErrors::new();
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            let error = if self.logs.topic(topic).is_none() {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if subscribed.as_ref().is_none_or(|s| s.contains(topic)) {
                Some(ResponseError::GroupSubscribedToTopic)
            } else {
                if slot.offsets.contains_key(&(topic.clone(), *partition)) {
                    records.push(offset_record(group_id, topic, *partition, None));
                }
                None
            };
            errors.push(error);
        }
        let durable = match self.store.append(group_id, &records, now_ms) {
            Ok(durable) => durable,
            Err(error) => return Reply::Ready(Err(storage_error_code(&error))),
        };
        for ((topic, partition), error) in partitions.iter().zip(&errors) {
            if error.is_none() {
                slot.offsets.remove(&(topic.clone(), *partition));
            }
        }
        drop(slot);
        Reply::Pending(
            async move {
                durable
                    .await
                    .map(|()| errors)
                    .map_err(|e| storage_error_code(&e))
            }
            .boxed(),
        )
    }

    /// Retention sweep (`offsets.retention.minutes`), as Kafka's: offsets of Empty groups
    /// expire after the retention, counted from when the group became empty (consumer groups)
    /// or from the commit (simple groups, no protocol type); in a Stable "consumer" group,
    /// offsets of topics no member subscribes to expire counted from their commit. An explicit
    /// expire time wins. Empty groups left without offsets are removed. Returns how many
    /// offsets expired.
    pub fn expire_offsets(&self) -> usize {
        let now_ms = self.clock.now_ms();
        let retention_ms = self.config.offsets_retention_ms;
        let mut expired_total = 0;
        let slots: Vec<_> = self.groups.lock().values().cloned().collect();
        for shared in slots {
            let mut slot = shared.lock();
            let Some(expired) = expired_offsets(&slot, now_ms, retention_ms) else {
                continue;
            };
            let group_id = slot.group.id().to_owned();
            let remove_group =
                slot.group.state() == GroupState::Empty && expired.len() == slot.offsets.len();
            if expired.is_empty() && !remove_group {
                continue;
            }
            // Tombstones need not be awaited: losing one only means expiring again later.
            if let Err(error) = self.write_tombstones(&group_id, &expired, remove_group, now_ms) {
                tracing::warn!(group = %group_id, %error, "writing expired offsets failed");
                continue;
            }
            expired_total += expired.len();
            for tp in &expired {
                slot.offsets.remove(tp);
            }
            if remove_group {
                slot.group.mark_dead(now_ms);
                drop(slot);
                self.forget_group(&group_id, &shared);
            }
        }
        expired_total
    }
}

/// The offsets of one group past their retention (Kafka's `offsetExpirationCondition`), or
/// `None` when the group's state keeps every offset (rebalancing, or a Stable group whose
/// subscriptions cannot be read).
fn expired_offsets(
    slot: &GroupSlot,
    now_ms: i64,
    retention_ms: i64,
) -> Option<Vec<TopicPartition>> {
    let group = &slot.group;
    // From when each offset's retention counts, and the topics whose offsets are kept.
    let (empty_since_ms, subscribed) = match group.state() {
        GroupState::Empty => (
            group.protocol_type().map(|_| group.state_timestamp_ms()),
            None,
        ),
        GroupState::Stable if !slot.offsets.is_empty() => (None, Some(subscribed_topics(slot)?)),
        _ => return None,
    };
    let expired = slot
        .offsets
        .iter()
        .filter(|((topic, _), _)| !subscribed.as_ref().is_some_and(|s| s.contains(topic)))
        .filter(|(_, v)| {
            let deadline_ms = v.expire_timestamp_ms.unwrap_or_else(|| {
                empty_since_ms
                    .unwrap_or(v.commit_timestamp_ms)
                    .saturating_add(retention_ms)
            });
            now_ms >= deadline_ms
        })
        .map(|(tp, _)| tp.clone())
        .collect();
    Some(expired)
}

impl GroupCoordinator {
    /// A topic was deleted: every group forgets its offsets for the topic, in memory at once
    /// and in `__consumer_offsets` by tombstones, as Kafka's `onPartitionsDeleted` does, so a
    /// topic recreated under the same name is not read from the old topic's offsets. An Empty
    /// group left without offsets is removed, as the retention sweep would. Returns how many
    /// offsets were removed and a [`Durable`] for every tombstone written: DeleteTopics
    /// answers only after it, as OffsetCommit does, or a crash right after the answer could
    /// bring the old offsets back onto a topic recreated under the name. If writing fails,
    /// the offsets are still dropped from memory (where OffsetFetch reads them) and the
    /// [`Durable`] reports the first error.
    pub fn remove_offsets_of_deleted_topic(&self, topic: &str) -> (usize, Durable) {
        let now_ms = self.clock.now_ms();
        let mut removed_total = 0;
        let mut writes: Vec<Durable> = Vec::new();
        for shared in self.all_slots() {
            let mut slot = shared.lock();
            let removed: Vec<TopicPartition> = slot
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            if removed.is_empty() || slot.group.state() == GroupState::Dead {
                continue;
            }
            let group_id = slot.group.id().to_owned();
            let remove_group =
                slot.group.state() == GroupState::Empty && removed.len() == slot.offsets.len();
            match self.write_tombstones(&group_id, &removed, remove_group, now_ms) {
                Ok(durable) => writes.push(durable),
                Err(error) => {
                    let group = group_id.as_str();
                    tracing::warn!(group, topic, %error, "writing offset tombstones failed");
                    writes.push(async move { Err(error) }.boxed());
                }
            }
            removed_total += removed.len();
            for tp in &removed {
                slot.offsets.remove(tp);
            }
            if remove_group {
                slot.group.mark_dead(now_ms);
                drop(slot);
                self.forget_group(&group_id, &shared);
            }
        }
        let durable = async move {
            // Every write is waited for, so the answer comes after all of them settle.
            let results = futures::future::join_all(writes).await;
            results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
        };
        (removed_total, durable.boxed())
    }

    /// Tombstones for `partitions` of the group and, when `delete_group`, for the group's
    /// metadata last, split into as many batches as the size bound needs: a group with more
    /// offsets than one batch holds must still be deletable and expirable.
    pub(super) fn write_tombstones(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
        delete_group: bool,
        now_ms: i64,
    ) -> Result<Durable, GroupError> {
        let mut records: Vec<KeyValue> = partitions
            .iter()
            .map(|(topic, partition)| offset_record(group_id, topic, *partition, None))
            .collect();
        if delete_group {
            records.push(group_record(group_id, None));
        }
        self.store.append_in_batches(group_id, &records, now_ms)
    }
}

/// Topics the members of a "consumer" group subscribe to (from their subscription metadata
/// for the selected protocol); `None` when that cannot be known (other protocol types).
fn subscribed_topics(slot: &GroupSlot) -> Option<BTreeSet<String>> {
    let group = &slot.group;
    if group.protocol_type() != Some("consumer") {
        return None;
    }
    let protocol = group.protocol_name()?;
    let mut topics = BTreeSet::new();
    for member in group.members() {
        let mut metadata = member.metadata_for(protocol)?.clone();
        let version = i16::from_be_bytes([*metadata.first()?, *metadata.get(1)?]);
        let _ = bytes::Buf::get_i16(&mut metadata);
        // Client-written bytes: decoded within the same collections budget as a request.
        let subscription = decode_budget::with_limit(DECODED_COLLECTIONS_BYTES_MAX, || {
            ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3))
        })
        .ok()?;
        topics.extend(subscription.topics.iter().map(|t| t.to_string()));
    }
    Some(topics)
}

/// The values to store for the entries that passed their checks.
fn accepted_values(
    entries: &[CommitEntry],
    errors: &EntryErrors,
    who: &Committer,
    now_ms: i64,
) -> Vec<(TopicPartition, OffsetValue)> {
    let expire_timestamp_ms =
        (who.retention_time_ms >= 0).then(|| now_ms.saturating_add(who.retention_time_ms));
    entries
        .iter()
        .zip(errors)
        .filter(|(_, error)| error.is_none())
        .map(|(e, _)| {
            let value = OffsetValue {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata: e.metadata.clone().unwrap_or_default(),
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms,
            };
            ((e.topic.clone(), e.partition), value)
        })
        .collect()
}

/// A commit whose fsync failed: put back what it replaced, unless a later commit has already
/// replaced it in turn. Undone newest first, so a partition committed twice in one request
/// gets its original value back.
fn undo_commit(
    shared: &SharedSlot,
    written: Vec<(TopicPartition, OffsetValue)>,
    previous: Vec<Option<OffsetValue>>,
) {
    debug_assert_eq!(written.len(), previous.len());
    let mut slot = shared.lock();
    for ((tp, ours), before) in written.into_iter().zip(previous).rev() {
        if slot.offsets.get(&tp) != Some(&ours) {
            continue;
        }
        match before {
            Some(value) => slot.offsets.insert(tp, value),
            None => slot.offsets.remove(&tp),
        };
    }
}
