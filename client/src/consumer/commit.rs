//! Commits and committed offsets: [`Consumer::commit`] and its kin, auto-commit, the commit
//! in `close`, and the positions a commit may say were consumed.
//!
//! As Java's `ConsumerCoordinator`, a failed OffsetCommit or OffsetFetch is read for what it
//! says about the coordinator: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, REQUEST_TIMED_OUT
//! or a lost (or timed-out) connection forget it, so the next request looks it up again.
//! Synchronous calls (`commit`, `commit_offsets`, `committed`, the commit in `close`) retry
//! retriable errors after `retry_backoff_ms`, doubling up to `retry_backoff_max_ms`, until
//! `default_api_timeout_ms`, then fail with [`Error::ApiTimeout`] naming the last error.
//! `poll`'s fetch of committed offsets retries them within the poll's time, then returns no
//! records rather than an error (Java's `refreshCommittedOffsetsIfNeeded`).
//! The commits before a rebalance (auto-commit) retry them as well, until
//! `rebalance_timeout_ms` (Java's `onJoinPrepare`); async commits and auto-commits try once,
//! in tasks of their own (`poll` does not wait for an auto-commit), landing in the order
//! they were made and before any later synchronous commit or rejoin ([`CommitOrder`]).
//! A commit from a generation the coordinator no longer knows (UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, FENCED_INSTANCE_ID) fails as [`Error::CommitFailed`] and the next
//! `poll` rejoins afresh, its partitions lost; REBALANCE_IN_PROGRESS fails it as
//! [`Error::RebalanceInProgress`] and the next `poll` rejoins.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::task::JoinError;

use super::fetcher::Fetcher;
use super::group::{GroupMember, MembershipHandle};
use super::{member, ConsumerConfig, ConsumerRecord, TopicPartition};
use super::{AbortOnDrop, Consumer};
use crate::conn::Connection;
use crate::error::{codes, Error, Result};
use crate::offsets;
use crate::retry::Retry;

impl Consumer {
    /// Starts a commit of the delivered positions once the interval has passed, in a task
    /// of its own, as Java's asynchronous auto-commit: `poll` does not wait for the
    /// coordinator lookup nor the answer. One at a time; tried once, the next is due an
    /// interval later, or `retry_backoff_ms` after a retriable failure.
    pub(super) async fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.config.auto_commit || self.group.is_none() {
            return Ok(());
        }
        if let Some(running) = &mut self.auto_commit {
            if !running.0.is_finished() {
                return Ok(());
            }
            if let Some(ended) = (&mut running.0).now_or_never() {
                self.auto_commit = None;
                self.auto_commit_ended(ended);
            }
        }
        let now = Instant::now();
        if now < self.next_auto_commit {
            return Ok(());
        }
        self.next_auto_commit = now + Duration::from_millis(self.config.auto_commit_interval_ms);
        self.finish_join().await?;
        let positions = delivered_positions(&self.fetcher, &self.pending);
        let in_generation = self.subscription.is_some();
        let Some(group) = &self.group else {
            return Ok(());
        };
        if positions.is_empty() {
            return Ok(());
        }
        let lookup = group.coordinator_lookup();
        // A coordinator not found by the time the next commit is due is not waited for.
        let lookup_ms = self
            .config
            .default_api_timeout_ms
            .min(self.config.auto_commit_interval_ms);
        let target = CommitTarget::of(group, in_generation);
        let ticket = self.commit_order.ticket();
        self.auto_commit = Some(AbortOnDrop(tokio::spawn(async move {
            let coordinator = lookup
                .until(tokio::time::Instant::now() + Duration::from_millis(lookup_ms))
                .await?;
            ticket.turn().await;
            target.commit(&coordinator, &positions).await
        })));
        Ok(())
    }

    /// Waits for the commits in tasks of their own (auto-commit, `commit_async`) to land,
    /// for up to `default_api_timeout_ms`: a commit after them must land after them, or
    /// older positions would overwrite newer ones.
    pub(super) async fn settle_commits(&mut self) {
        if let Some(mut running) = self.auto_commit.take() {
            let ended = (&mut running.0).await;
            self.auto_commit_ended(ended);
        }
        let bound = Duration::from_millis(self.config.default_api_timeout_ms);
        if tokio::time::timeout(bound, self.commit_order.all_landed())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_ms = self.config.default_api_timeout_ms,
                "async commits still in flight; committing anyway"
            );
        }
    }

    fn auto_commit_ended(&mut self, ended: std::result::Result<Result<()>, JoinError>) {
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "auto-commit failed");
                if error.is_retriable() {
                    let backoff = Duration::from_millis(self.config.retry_backoff_ms);
                    self.next_auto_commit = self.next_auto_commit.min(Instant::now() + backoff);
                }
            }
            Err(error) => tracing::warn!(%error, "the auto-commit task failed"),
        }
    }

    /// Commits, for every assigned partition, the offset after the last record handed to
    /// the application, and waits for the result (retried as the module doc says).
    pub async fn commit(&mut self) -> Result<()> {
        self.finish_join().await?;
        self.settle_commits().await;
        let positions = delivered_positions(&self.fetcher, &self.pending);
        self.commit_offsets(&positions).await
    }

    /// Commits explicit offsets (the next offset to read for each partition), retried as
    /// the module doc says.
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.finish_join().await?;
        self.settle_commits().await;
        let in_generation = self.subscription.is_some();
        let group = member(&mut self.group, "commit")?;
        commit_sync(group, in_generation, offsets, &mut api_retry(&self.config)).await
    }

    /// Starts a commit of the delivered positions (as [`Consumer::commit`]) in the
    /// background, tried once; the handle yields its result. An unknown coordinator is
    /// looked up (for up to `default_api_timeout_ms`) in the background too: as Java's
    /// `commitAsync`, this does not wait for the coordinator.
    pub async fn commit_async(&mut self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        self.finish_join().await?;
        let in_generation = self.subscription.is_some();
        let group = member(&mut self.group, "commit")?;
        let lookup = group.coordinator_lookup();
        let lookup_ms = Duration::from_millis(self.config.default_api_timeout_ms);
        let target = CommitTarget::of(group, in_generation);
        let positions = delivered_positions(&self.fetcher, &self.pending);
        let ticket = self.commit_order.ticket();
        Ok(tokio::spawn(async move {
            let coordinator = lookup
                .until(tokio::time::Instant::now() + lookup_ms)
                .await?;
            ticket.turn().await;
            target.commit(&coordinator, &positions).await
        }))
    }

    /// The committed offsets of this consumer's group for `partitions`, retried as the
    /// module doc says.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.finish_join().await?;
        let group = member(&mut self.group, "committed")?;
        fetch_committed(group, partitions, &mut api_retry(&self.config)).await
    }

    /// Commits (with auto-commit on, retried as the module doc says; a failure is logged,
    /// as Java's), leaves the group and closes the fetch sessions.
    pub async fn close(mut self) -> Result<()> {
        self.finish_join().await?;
        self.settle_commits().await;
        self.fetcher.close_sessions().await;
        if let Some(group) = &mut self.group {
            if self.config.auto_commit && self.subscription.is_some() {
                let positions = delivered_positions(&self.fetcher, &self.pending);
                let mut retry = api_retry(&self.config);
                if let Err(e) = commit_sync(group, true, &positions, &mut retry).await {
                    tracing::warn!(error = %e, "commit on close failed");
                }
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

/// The commit of the owned partitions' positions before a rebalance gives them up
/// (auto-commit), as Java's `onJoinPrepare`: retriable errors are retried until
/// `rebalance_timeout_ms` (a member that takes longer to rejoin is dropped from the group
/// anyway); a failure is logged and the rebalance goes on.
pub(super) async fn commit_before_rebalance(
    group: &mut GroupMember,
    config: &ConsumerConfig,
    positions: BTreeMap<TopicPartition, i64>,
) {
    let timeout_ms = u64::try_from(config.rebalance_timeout_ms).unwrap_or(0);
    let mut retry = Retry::within(
        timeout_ms,
        config.retry_backoff_ms,
        config.retry_backoff_max_ms,
    );
    match commit_sync(group, true, &positions, &mut retry).await {
        Ok(()) => {}
        // Bounded by the rebalance timeout, not `default_api_timeout_ms` as the error says.
        Err(Error::ApiTimeout { last_error, .. }) => {
            tracing::warn!(error = %last_error, timeout_ms, "no commit before the rebalance within rebalance_timeout_ms");
        }
        Err(error) => tracing::warn!(%error, "commit before the rebalance failed"),
    }
}

/// A synchronous commit of `offsets`: retriable errors are retried as `retry` allows (until
/// `default_api_timeout_ms` for Java's `commitSync`).
async fn commit_sync(
    group: &mut GroupMember,
    in_generation: bool,
    offsets: &BTreeMap<TopicPartition, i64>,
    retry: &mut Retry,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    loop {
        let error = match group.coordinator_until(retry.deadline).await {
            Ok(coordinator) => {
                let target = CommitTarget::of(group, in_generation);
                match target.commit(&coordinator, offsets).await {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        let retriable = error.is_retriable();
        let what = || format!("committing offsets of group {}", group.group_id);
        retry.after(error, retriable, what).await?;
    }
}

/// The committed offsets `poll` starts from, as Java's `refreshCommittedOffsetsIfNeeded`:
/// retriable errors are retried within the poll's time, up to `deadline`; `None` when it
/// runs out (the positions stay unknown, the poll returns no records, the next one asks
/// again). Only a final error is returned.
pub(super) async fn fetch_committed_for_poll(
    group: &mut GroupMember,
    config: &ConsumerConfig,
    partitions: &[TopicPartition],
    deadline: tokio::time::Instant,
) -> Result<Option<BTreeMap<TopicPartition, i64>>> {
    let mut retry = Retry::until(
        deadline,
        config.retry_backoff_ms,
        config.retry_backoff_max_ms,
    );
    match fetch_committed(group, partitions, &mut retry).await {
        Ok(committed) => Ok(Some(committed)),
        Err(Error::ApiTimeout { last_error, .. }) => {
            tracing::debug!(error = %last_error, "no committed offsets within the poll's time");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The committed offsets of `partitions`, retriable errors retried as `retry` allows.
async fn fetch_committed(
    group: &mut GroupMember,
    partitions: &[TopicPartition],
    retry: &mut Retry,
) -> Result<BTreeMap<TopicPartition, i64>> {
    loop {
        let error = match fetch_committed_until(group, partitions, retry.deadline).await {
            Ok(committed) => return Ok(committed),
            Err(error) => error,
        };
        // An unknown partition is final here, as in Java's offset fetch.
        let retriable =
            error.is_retriable() && error.code() != Some(codes::UNKNOWN_TOPIC_OR_PARTITION);
        let what = || format!("fetching committed offsets of group {}", group.group_id);
        retry.after(error, retriable, what).await?;
    }
}

/// One OffsetFetch for `partitions`, its coordinator looked up until `deadline` at most;
/// what an error says about the coordinator is acted on.
async fn fetch_committed_until(
    group: &mut GroupMember,
    partitions: &[TopicPartition],
    deadline: tokio::time::Instant,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let coordinator = group.coordinator_until(deadline).await?;
    let fetched = offsets::committed(&coordinator, &group.group_id, Some(partitions)).await;
    fetched.map_err(|error| on_error(&group.handle(), error))
}

/// Keeps commits made in tasks of their own in the order they were made, as Java's (whose
/// coordinator requests go out in order on one connection): each takes a [`Ticket`] and
/// sends only once the one before it has landed (answered, failed or been dropped), and a
/// synchronous commit first waits for all of them ([`Consumer::settle_commits`]). Without
/// it a `commit_async` followed by `commit` could send second, its older positions
/// overwriting the newer ones.
#[derive(Default)]
pub(super) struct CommitOrder {
    issued: u64,
    landings: Arc<Landings>,
}

/// Which tickets have landed: all up to `landed`, and those in `early` (landed while an
/// earlier one was still out; a commit whose coordinator lookup failed never takes its turn).
#[derive(Default)]
struct Landings {
    landed: tokio::sync::watch::Sender<u64>,
    early: Mutex<BTreeSet<u64>>,
}

impl CommitOrder {
    fn ticket(&mut self) -> Ticket {
        self.issued += 1;
        Ticket {
            number: self.issued,
            landings: self.landings.clone(),
        }
    }

    /// Every ticket issued has landed.
    async fn all_landed(&self) {
        self.landings.wait_for(self.issued).await;
    }
}

impl Landings {
    /// Waits until every ticket up to `number` has landed.
    async fn wait_for(&self, number: u64) {
        let mut landed = self.landed.subscribe();
        // The sender lives in `self`: the wait ends only by the condition.
        let _ = landed.wait_for(|n| *n >= number).await;
    }
}

/// One commit's place in the [`CommitOrder`]; it lands when dropped.
struct Ticket {
    number: u64,
    landings: Arc<Landings>,
}

impl Ticket {
    /// Waits until every earlier ticket has landed.
    async fn turn(&self) {
        self.landings.wait_for(self.number - 1).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut early = self
            .landings
            .early
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        early.insert(self.number);
        let mut landed = *self.landings.landed.borrow();
        while early.remove(&(landed + 1)) {
            landed += 1;
        }
        self.landings.landed.send_replace(landed);
    }
}

/// Who a commit is made as: the group, and the generation and member within it (-1 and ""
/// outside one: assign mode), with the membership to tell what its answer meant.
struct CommitTarget {
    group_id: String,
    generation_id: i32,
    member_id: String,
    membership: MembershipHandle,
}

impl CommitTarget {
    fn of(group: &GroupMember, in_generation: bool) -> CommitTarget {
        let (generation_id, member_id) = match in_generation {
            true => (group.generation_id, group.member_id.clone()),
            false => (-1, String::new()),
        };
        CommitTarget {
            group_id: group.group_id.clone(),
            generation_id,
            member_id,
            membership: group.handle(),
        }
    }

    /// One OffsetCommit of `offsets` to `coordinator`.
    async fn commit(
        &self,
        coordinator: &Arc<Connection>,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let committed = offsets::commit(
            coordinator,
            &self.group_id,
            self.generation_id,
            &self.member_id,
            offsets,
        )
        .await;
        committed.map_err(|error| self.on_error(error))
    }

    /// What a failed commit means for the membership, as Java's: a generation the
    /// coordinator no longer knows ends it (the commit fails as [`Error::CommitFailed`]), a
    /// rebalance asks for a rejoin ([`Error::RebalanceInProgress`]); the next `poll` rejoins.
    /// Coordinator errors as [`on_error`].
    fn on_error(&self, error: Error) -> Error {
        let group = self.group_id.clone();
        match error.code() {
            Some(
                code @ (codes::UNKNOWN_MEMBER_ID
                | codes::ILLEGAL_GENERATION
                | codes::FENCED_INSTANCE_ID),
            ) => {
                self.membership.generation_ended();
                Error::CommitFailed { group, code }
            }
            Some(codes::REBALANCE_IN_PROGRESS) => {
                self.membership.rebalancing();
                Error::RebalanceInProgress { group }
            }
            _ => on_error(&self.membership, error),
        }
    }
}

/// Acts on what a failed OffsetCommit or OffsetFetch says about the coordinator (see the
/// module doc); returns the error for the caller.
fn on_error(membership: &MembershipHandle, error: Error) -> Error {
    let coordinator_gone = match &error {
        Error::Io { .. } | Error::Disconnected { .. } | Error::Timeout { .. } => true,
        Error::Broker { code, .. } => matches!(
            *code,
            codes::NOT_COORDINATOR | codes::COORDINATOR_NOT_AVAILABLE | codes::REQUEST_TIMED_OUT
        ),
        _ => false,
    };
    if coordinator_gone {
        membership.coordinator_unknown();
    }
    error
}

/// Retries bounded by `default_api_timeout_ms`, with the consumer's backoff.
pub(super) fn api_retry(config: &ConsumerConfig) -> Retry {
    let timeout_ms = config.default_api_timeout_ms;
    Retry::within(
        timeout_ms,
        config.retry_backoff_ms,
        config.retry_backoff_max_ms,
    )
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
