//! Commits and committed offsets: [`Consumer::commit`] and its kin, auto-commit, the commit
//! in `close`, and the positions a commit may say were consumed.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::fetcher::Fetcher;
use super::group::GroupMember;
use super::Consumer;
use super::{member, ConsumerRecord, TopicPartition};
use crate::error::Result;
use crate::offsets;

impl Consumer {
    pub(super) async fn maybe_auto_commit(&mut self) -> Result<()> {
        let due = self.last_commit.elapsed()
            >= Duration::from_millis(self.config.auto_commit_interval_ms);
        if self.config.auto_commit && due && self.group.is_some() {
            self.last_commit = Instant::now();
            if let Err(e) = self.commit().await {
                tracing::debug!(error = %e, "auto-commit failed");
            }
        }
        Ok(())
    }

    /// Commits, for every assigned partition, the offset after the last record handed to
    /// the application, and waits for the result.
    pub async fn commit(&mut self) -> Result<()> {
        self.finish_join().await?;
        let positions = delivered_positions(&self.fetcher, &self.pending);
        commit_positions(member(&mut self.group, "commit")?, positions).await
    }

    /// Commits explicit offsets (the next offset to read for each partition).
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.finish_join().await?;
        let subscribed = self.subscription.is_some();
        let group = member(&mut self.group, "commit")?;
        let coordinator = group.coordinator().await?;
        let generation = if subscribed { group.generation_id } else { -1 };
        let member = if subscribed {
            group.member_id.clone()
        } else {
            String::new()
        };
        offsets::commit(&coordinator, &group.group_id, generation, &member, offsets).await
    }

    /// Starts a commit of the delivered positions (as [`Consumer::commit`]) in the
    /// background; the handle yields its result.
    pub async fn commit_async(&mut self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        self.finish_join().await?;
        let group = member(&mut self.group, "commit")?;
        let coordinator = group.coordinator().await?;
        let (group_id, generation, member) = (
            group.group_id.clone(),
            group.generation_id,
            group.member_id.clone(),
        );
        let positions = delivered_positions(&self.fetcher, &self.pending);
        Ok(tokio::spawn(async move {
            offsets::commit(&coordinator, &group_id, generation, &member, &positions).await
        }))
    }

    /// The committed offsets of this consumer's group for `partitions`.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.finish_join().await?;
        let group = member(&mut self.group, "committed")?;
        let coordinator = group.coordinator().await?;
        offsets::committed(&coordinator, &group.group_id, Some(partitions)).await
    }

    /// Commits (with auto-commit on) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        self.finish_join().await?;
        if let Some(group) = &mut self.group {
            if self.config.auto_commit && self.subscription.is_some() {
                let positions = delivered_positions(&self.fetcher, &self.pending);
                commit_positions(group, positions).await.ok();
            }
            if self.subscription.is_some() {
                group.leave().await?;
            }
        }
        Ok(())
    }
}

/// Per assigned partition, the offset after the last record handed to the application —
/// what a commit may say was consumed. The fetcher's position has already moved past the
/// records `recv` holds in `pending`, so a partition with pending records is at its first
/// pending one: committing the fetcher's position would skip them after a restart.
pub(super) fn delivered_positions(
    fetcher: &Fetcher,
    pending: &VecDeque<ConsumerRecord>,
) -> BTreeMap<TopicPartition, i64> {
    let mut positions: BTreeMap<TopicPartition, i64> = fetcher
        .partitions
        .iter()
        .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
        .collect();
    // `pending` is in offset order per partition: the first record of each one wins.
    let mut held_back = std::collections::HashSet::new();
    for record in pending {
        let tp = TopicPartition::new(&record.topic, record.partition);
        if let Some(position) = positions.get_mut(&tp) {
            if held_back.insert(tp) {
                debug_assert!(record.offset <= *position, "pending past the position");
                *position = record.offset;
            }
        }
    }
    positions
}

pub(super) async fn commit_positions(
    group: &mut GroupMember,
    positions: BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    let coordinator = group.coordinator().await?;
    offsets::commit(
        &coordinator,
        &group.group_id,
        group.generation_id,
        &group.member_id,
        &positions,
    )
    .await
}
