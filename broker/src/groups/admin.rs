//! Read-only views and deletion of groups: DescribeGroups, ListGroups, DeleteGroups.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;

use super::coordinator::{storage_error_code, GroupCoordinator, GroupSlot, Reply};
use super::offsets::Durable;
use super::state::{GroupState, Member};

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Subscription for the selected protocol (Stable groups only, else empty).
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it; unknown groups are `Dead` with no error, as Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol; empty unless Stable.
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// Everything known about one group at one instant, for metrics and the HTTP admin API
/// (lag = log end offset − `offsets[i].offset`; the generation counts completed rebalances).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOverview {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub leader_id: String,
    pub members: Vec<MemberDescription>,
    /// (topic, partition, committed offset, commit time in ms), sorted.
    pub offsets: Vec<(String, i32, i64, i64)>,
}

/// A ListGroups row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

impl GroupCoordinator {
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let dead = GroupDescription {
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        };
        let Some(slot) = self.slot(group_id) else {
            return dead;
        };
        let slot = slot.lock();
        let group = &slot.group;
        let stable = group.state() == GroupState::Stable;
        let protocol = if stable {
            group.protocol_name().unwrap_or_default()
        } else {
            ""
        };
        GroupDescription {
            state: group.state(),
            protocol_type: group.protocol_type().unwrap_or_default().to_owned(),
            protocol_name: protocol.to_owned(),
            members: group
                .members()
                .map(|m| member_description(m, protocol, stable))
                .collect(),
        }
    }

    /// A consistent view of every group (each read under its own lock), sorted by id.
    pub fn overview(&self) -> Vec<GroupOverview> {
        let slots: Vec<_> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<GroupOverview> = slots
            .iter()
            .filter_map(|slot| overview_of(&slot.lock()))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// One group's view, `None` if unknown (or Dead): reads that group alone, so asking
    /// about one group neither copies every group nor waits on their locks.
    pub fn group_overview(&self, group_id: &str) -> Option<GroupOverview> {
        let slot = self.slot(group_id)?;
        let slot = slot.lock();
        overview_of(&slot)
    }

    /// Test seam: runs `work` while `group_id`'s lock is held (as during a long call on it).
    #[cfg(test)]
    pub(crate) fn with_group_locked<R>(&self, group_id: &str, work: impl FnOnce() -> R) -> R {
        let slot = self.slot(group_id);
        let _held = slot.as_ref().map(|slot| slot.lock());
        work()
    }

    /// Every group, sorted by id, optionally only those in `states`.
    pub fn list_groups(&self, states: Option<&[GroupState]>) -> Vec<GroupListing> {
        let slots: Vec<_> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<GroupListing> = slots
            .iter()
            .map(|slot| {
                let slot = slot.lock();
                GroupListing {
                    group_id: slot.group.id().to_owned(),
                    protocol_type: slot.group.protocol_type().unwrap_or_default().to_owned(),
                    state: slot.group.state(),
                }
            })
            .filter(|g| g.state != GroupState::Dead && states.is_none_or(|s| s.contains(&g.state)))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups: only Empty groups; their offsets and metadata become tombstones.
    pub fn delete_groups(&self, group_ids: &[String]) -> Reply<Vec<Option<ResponseError>>> {
        let mut results = Vec::with_capacity(group_ids.len());
        let mut pending: Vec<(usize, Durable)> = Vec::new();
        for (index, group_id) in group_ids.iter().enumerate() {
            match self.delete_group(group_id) {
                Ok(durable) => {
                    results.push(None);
                    pending.push((index, durable));
                }
                Err(error) => results.push(Some(error)),
            }
        }
        if pending.is_empty() {
            return Reply::Ready(results);
        }
        Reply::Pending(
            async move {
                for (index, durable) in pending {
                    if let Err(error) = durable.await {
                        results[index] = Some(storage_error_code(&error));
                    }
                }
                results
            }
            .boxed(),
        )
    }

    fn delete_group(&self, group_id: &str) -> Result<Durable, ResponseError> {
        let shared = self.slot(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let now_ms = self.clock.now_ms();
        let mut slot = shared.lock();
        match slot.group.state() {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        let partitions: Vec<_> = slot.offsets.keys().cloned().collect();
        let durable = self
            .write_tombstones(group_id, &partitions, true, now_ms)
            .map_err(|e| storage_error_code(&e))?;
        slot.offsets.clear();
        slot.group.mark_dead(now_ms);
        drop(slot);
        self.forget_group(group_id, &shared);
        Ok(durable)
    }
}

/// One member as DescribeGroups and the admin views show it; its metadata (for the group's
/// `protocol`) and assignment only `with_data` (DescribeGroups gives them in Stable only).
fn member_description(m: &Member, protocol: &str, with_data: bool) -> MemberDescription {
    let data = |bytes: Option<&Bytes>| match with_data {
        true => bytes.cloned().unwrap_or_default(),
        false => Bytes::new(),
    };
    MemberDescription {
        member_id: m.member_id.clone(),
        group_instance_id: m.group_instance_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        metadata: data(m.metadata_for(protocol)),
        assignment: data(Some(&m.assignment)),
    }
}

/// The view of one locked group; `None` for a Dead one (being deleted).
fn overview_of(slot: &GroupSlot) -> Option<GroupOverview> {
    let group = &slot.group;
    if group.state() == GroupState::Dead {
        return None;
    }
    let protocol = group.protocol_name().unwrap_or_default();
    Some(GroupOverview {
        group_id: group.id().to_owned(),
        state: group.state(),
        protocol_type: group.protocol_type().unwrap_or_default().to_owned(),
        protocol_name: protocol.to_owned(),
        generation_id: group.generation_id(),
        leader_id: group.leader_id().unwrap_or_default().to_owned(),
        members: group
            .members()
            .map(|m| member_description(m, protocol, true))
            .collect(),
        offsets: slot
            .offsets
            .iter()
            .map(|((t, p), v)| (t.clone(), *p, v.offset, v.commit_timestamp_ms))
            .collect(),
    })
}
