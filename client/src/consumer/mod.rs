//! The consumer: [`Consumer::assign`] or [`Consumer::subscribe`] (classic group protocol,
//! [`group`]), then [`Consumer::poll`] / [`Consumer::recv`] / [`Consumer::stream`] over a
//! prefetching `fetcher` (with a KIP-227 fetch session per broker lane, `fetch_session`);
//! commits live in `commit`. Rebalances, auto-commit and position
//! resets all happen inside `poll`, on the caller's task; heartbeats run in the background,
//! and so does a group join (the coordinator holds JoinGroup until every member has rejoined,
//! up to the rebalance timeout), so `poll` keeps to its timeout meanwhile, as Kafka's
//! consumer does since KIP-266.

pub mod assignor;
mod commit;
mod config;
mod fetch_session;
mod fetcher;
pub mod group;
mod heartbeat;
mod member_protocol;
mod record;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use assignor::Assignor;
pub use config::{ConsumerConfig, OffsetReset};
pub use record::{ConsumerRecord, TopicPartition};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::offsets::{self, EARLIEST, LATEST};
use crate::retry::Retry;
use commit::{api_retry, commit_before_rebalance, delivered_positions, fetch_committed_for_poll};
use fetcher::Fetcher;
use group::{GroupMember, Joined};

/// Told about partitions this consumer stops or starts owning during a rebalance. With
/// auto-commit on, positions are committed before `on_revoked` is called (retriable errors
/// retried for up to `rebalance_timeout_ms`).
///
/// ```
/// use runnel_client::consumer::RebalanceListener;
/// use runnel_client::TopicPartition;
/// struct Log;
/// impl RebalanceListener for Log {
///     fn on_revoked(&mut self, partitions: &[TopicPartition]) { println!("-{partitions:?}"); }
///     fn on_assigned(&mut self, partitions: &[TopicPartition]) { println!("+{partitions:?}"); }
/// }
/// ```
pub trait RebalanceListener: Send {
    fn on_revoked(&mut self, partitions: &[TopicPartition]);
    fn on_assigned(&mut self, partitions: &[TopicPartition]);
    /// Partitions this member was fenced from (the coordinator no longer knew it): another
    /// member may own them already, so nothing was committed for them. Kafka's
    /// `onPartitionsLost`; by default the same as [`on_revoked`](Self::on_revoked).
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_revoked(partitions);
    }
}

/// An async Kafka consumer (one task drives it, as with Kafka's consumers).
///
/// ```no_run
/// use runnel_client::{Consumer, ConsumerConfig};
/// # async fn example() -> runnel_client::Result<()> {
/// let mut config = ConsumerConfig::new("127.0.0.1:9092");
/// config.group_id = Some("billing".into());
/// let mut consumer = Consumer::new(config).await?;
/// consumer.subscribe(&["orders"])?;
/// loop {
///     for record in consumer.poll(std::time::Duration::from_secs(1)).await? {
///         println!("{}-{}@{}", record.topic, record.partition, record.offset);
///     }
///     consumer.commit().await?;
/// }
/// # }
/// ```
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    fetcher: Fetcher,
    /// The group membership; inside [`Joining`]'s task while a join runs.
    group: Option<GroupMember>,
    joining: Option<Joining>,
    subscription: Option<Vec<String>>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// When the next auto-commit is due.
    next_auto_commit: Instant,
    /// The auto-commit in flight (its own task: `poll` does not wait for it).
    auto_commit: Option<AbortOnDrop<Result<()>>>,
    /// Keeps commits made in tasks of their own in order (see [`commit::CommitOrder`]).
    commit_order: commit::CommitOrder,
    /// Records fetched by `poll` and not yet handed out by `recv`.
    pending: VecDeque<ConsumerRecord>,
}

impl Consumer {
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(config.client.clone()).await?;
        let group = config
            .group_id
            .clone()
            .map(|id| GroupMember::new(cluster.clone(), config.clone(), id));
        let next_auto_commit =
            Instant::now() + Duration::from_millis(config.auto_commit_interval_ms);
        Ok(Consumer {
            fetcher: Fetcher::new(cluster.clone(), config.clone()),
            cluster,
            config,
            group,
            joining: None,
            subscription: None,
            listener: None,
            next_auto_commit,
            auto_commit: None,
            commit_order: commit::CommitOrder::default(),
            pending: VecDeque::new(),
        })
    }

    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Joins the group (needs `group_id`) for `topics`; the assignment arrives in `poll`.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        match &self.group {
            Some(group) => group.request_rejoin(),
            // A join in progress rejoins when it ends if the subscription changed meanwhile.
            None if self.joining.is_some() => {}
            None => return Err(Error::Config("subscribe needs a group_id".to_owned())),
        }
        self.subscription = Some(topics.iter().map(|t| (*t).to_owned()).collect());
        Ok(())
    }

    /// Reads exactly these partitions, without group membership (commits still go to
    /// `group_id` if set).
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.subscription.is_some() {
            return Err(Error::State("already subscribed".to_owned()));
        }
        self.fetcher.assign(partitions);
        Ok(())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.fetcher.partitions.keys().cloned().collect()
    }

    /// The next offset `poll` returns for `tp` (None until known): a record `recv` holds
    /// back counts as not yet returned.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        let position = self.fetcher.partitions.get(tp)?.position?;
        let held_back = self
            .pending
            .iter()
            .find(|r| *r.topic == *tp.topic && r.partition == tp.partition);
        Some(held_back.map_or(position, |r| r.offset))
    }

    /// How far `tp`'s position is behind the partition's end as of the last fetch answered
    /// for it (Java's `currentLag`, KIP-695): that answer's high watermark minus
    /// [`position`](Self::position). `None` before the first answer or while the position
    /// is not known. No request: it moves as fetches are answered.
    pub fn current_lag(&self, tp: &TopicPartition) -> Option<i64> {
        let high_watermark = self.fetcher.partitions.get(tp)?.high_watermark?;
        let position = self.position(tp)?;
        Some(high_watermark.saturating_sub(position).max(0))
    }

    /// Records from assigned, unpaused partitions; waits up to `timeout` for some.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.pending.is_empty() {
            return Ok(self.pending.drain(..).collect());
        }
        loop {
            self.maybe_rebalance(deadline).await?;
            if self.joining.is_some() && self.fetcher.partitions.is_empty() {
                // Still joining at the deadline, with nothing to read meanwhile.
                return Ok(Vec::new());
            }
            self.ensure_positions(deadline).await?;
            self.maybe_auto_commit().await?;
            let reset = self.fetcher.stage_arrived();
            if !reset.is_empty() {
                self.reset_positions(&reset, deadline).await?;
            }
            self.fetcher.send_fetches();
            let records = self.fetcher.take(self.config.max_poll_records);
            if !records.is_empty() {
                return Ok(records);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Short slices so rebalances and auto-commits are not starved by an idle topic.
            let slice = deadline.min(now + Duration::from_millis(200));
            let reset = self.fetcher.wait_for_data(slice).await;
            if !reset.is_empty() {
                self.reset_positions(&reset, deadline).await?;
            }
        }
    }

    /// The next record, waiting as long as it takes.
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Ok(record);
            }
            let records = self.poll(Duration::from_secs(1)).await?;
            self.pending.extend(records);
        }
    }

    /// An async stream of records (ends only on error).
    pub fn stream(&mut self) -> impl futures::Stream<Item = Result<ConsumerRecord>> + '_ {
        futures::stream::unfold(self, |consumer| async move {
            let next = consumer.recv().await;
            Some((next, consumer))
        })
    }

    /// Starts a join when the group asks for one, and takes in a finished one. With no
    /// partitions kept through the join (eager assignors) this waits for it until `deadline`;
    /// otherwise the kept partitions go on being read and the join is only checked.
    async fn maybe_rebalance(&mut self, deadline: tokio::time::Instant) -> Result<()> {
        if self.joining.is_none() {
            self.start_join().await?;
        }
        let Some(joining) = &mut self.joining else {
            return Ok(());
        };
        let wait_until = match self.fetcher.partitions.is_empty() {
            true => deadline,
            false => tokio::time::Instant::now(),
        };
        // `timeout_at` polls the join before it looks at the clock: a finished join is
        // taken in even at a past deadline.
        let Ok(ended) = tokio::time::timeout_at(wait_until, &mut joining.task.0).await else {
            return Ok(());
        };
        let Some(joining) = self.joining.take() else {
            return Ok(());
        };
        self.take_in(joining, ended).await
    }

    /// Hands the membership to a join task if the group asks for a rejoin; with an eager
    /// assignor the owned partitions are committed and revoked first.
    async fn start_join(&mut self) -> Result<()> {
        let rejoin = matches!(
            (&self.group, &self.subscription),
            (Some(group), Some(_)) if group.needs_rejoin()
        );
        if !rejoin {
            return Ok(());
        }
        // Its answer must not land in the generation being left (nor after this commit).
        self.settle_commits().await;
        let (Some(group), Some(topics)) = (&mut self.group, &self.subscription) else {
            return Ok(());
        };
        if group.take_lost() {
            let lost = self.fetcher.partitions.keys().cloned().collect::<Vec<_>>();
            if !lost.is_empty() {
                if let Some(listener) = &mut self.listener {
                    listener.on_lost(&lost);
                }
                self.fetcher.assign(&[]);
                self.pending.clear();
            }
        }
        let cooperative = self.config.assignors.iter().all(|a| a.is_cooperative());
        let owned = self.fetcher.partitions.keys().cloned().collect::<Vec<_>>();
        if !cooperative && !owned.is_empty() {
            if self.config.auto_commit {
                let positions = delivered_positions(&self.fetcher, &self.pending);
                commit_before_rebalance(group, &self.config, positions).await;
            }
            if let Some(listener) = &mut self.listener {
                listener.on_revoked(&owned);
            }
            self.fetcher.assign(&[]);
            // Their next owner reads them from the commit: handing them out here too
            // would deliver them twice.
            self.pending.clear();
        }
        let kept = self.fetcher.partitions.keys().cloned().collect::<Vec<_>>();
        let Some(mut group) = self.group.take() else {
            return Ok(());
        };
        let (topics, task_kept) = (topics.clone(), kept.clone());
        let task = tokio::spawn(async move {
            let joined = group.join(&topics, &task_kept).await;
            (group, joined)
        });
        self.joining = Some(Joining {
            task: AbortOnDrop(task),
            topics: self.subscription.clone().unwrap_or_default(),
            kept,
        });
        Ok(())
    }

    /// Waits for the join in progress, if any, to end and takes it in.
    async fn finish_join(&mut self) -> Result<()> {
        let Some(mut joining) = self.joining.take() else {
            return Ok(());
        };
        let ended = (&mut joining.task.0).await;
        self.take_in(joining, ended).await
    }

    /// Takes back the membership from an ended join and applies its assignment (revoking
    /// what moved, with a commit first under auto-commit).
    async fn take_in(
        &mut self,
        joining: Joining,
        ended: std::result::Result<(GroupMember, Result<Joined>), tokio::task::JoinError>,
    ) -> Result<()> {
        let (group, joined) =
            ended.map_err(|e| Error::State(format!("the group join task failed: {e}")))?;
        let group = self.group.insert(group);
        if self.subscription.as_ref() != Some(&joining.topics) {
            group.request_rejoin();
        }
        let joined: Joined = joined?;
        let mut kept = joining.kept;
        if joined.member_reset && !kept.is_empty() {
            // Fenced during the join: what we kept may have had another owner meanwhile, so
            // all of it is lost (no commit) and positions come from the group again.
            if let Some(listener) = &mut self.listener {
                listener.on_lost(&kept);
            }
            self.fetcher.assign(&[]);
            self.pending.clear();
            kept.clear();
        }
        let revoked: Vec<_> = kept
            .iter()
            .filter(|tp| !joined.assignment.contains(tp))
            .cloned()
            .collect();
        let added: Vec<_> = joined
            .assignment
            .iter()
            .filter(|tp| !kept.contains(tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.auto_commit {
                let positions = delivered_positions(&self.fetcher, &self.pending);
                commit_before_rebalance(group, &self.config, positions).await;
            }
            if let Some(listener) = &mut self.listener {
                listener.on_revoked(&revoked);
            }
            // Cooperative: give the revoked partitions up, then rejoin so they move.
            group.request_rejoin();
        }
        self.fetcher.assign(&joined.assignment);
        let assigned = &self.fetcher.partitions;
        self.pending
            .retain(|r| assigned.contains_key(&TopicPartition::new(&r.topic, r.partition)));
        if let Some(listener) = &mut self.listener {
            listener.on_assigned(&added);
        }
        Ok(())
    }

    /// Sets unknown positions from committed offsets, else from the reset policy. A
    /// retriable error fetching the committed offsets is retried until the poll's
    /// `deadline`; past it the positions stay unknown until the next poll. While a join
    /// runs (partitions kept through a cooperative rejoin) they stay unknown too: the
    /// membership the fetch needs is the join's, and waiting for the join would outlast
    /// the poll; the first poll that takes the join in sets them.
    async fn ensure_positions(&mut self, deadline: tokio::time::Instant) -> Result<()> {
        let (missing, mut rest) = self.fetcher.needing_position();
        if (missing.is_empty() && rest.is_empty()) || self.joining.is_some() {
            return Ok(());
        }
        let mut committed = BTreeMap::new();
        if let (Some(group), false) = (&mut self.group, missing.is_empty()) {
            let fetched = fetch_committed_for_poll(group, &self.config, &missing, deadline);
            match fetched.await? {
                Some(fetched) => committed = fetched,
                None => return self.reset_positions(&rest, deadline).await,
            }
        }
        for tp in missing {
            match committed.get(&tp) {
                Some(offset) => self.fetcher.seek(&tp, *offset)?,
                None => rest.push(tp),
            }
        }
        self.reset_positions(&rest, deadline).await
    }

    /// Sets `partitions`' positions by the reset policy, as Java's `resetPositionsIfNeeded`:
    /// retriable ListOffsets errors (a leader moved or missing, a lost connection) are
    /// retried until the poll's `deadline`, the leaders' metadata asked for again; past it
    /// the positions stay unknown until the next poll. Only a final error is returned.
    async fn reset_positions(
        &mut self,
        partitions: &[TopicPartition],
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let timestamp = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST,
            OffsetReset::Latest => LATEST,
            OffsetReset::None => {
                return Err(Error::State(format!(
                    "no offset for {partitions:?} and reset is none"
                )))
            }
        };
        let (backoff_ms, backoff_max_ms) = (
            self.config.retry_backoff_ms,
            self.config.retry_backoff_max_ms,
        );
        let mut retry = Retry::until(deadline, backoff_ms, backoff_max_ms);
        let listed =
            match offsets::list_offsets_retrying(&self.cluster, partitions, timestamp, &mut retry)
                .await
            {
                Ok(listed) => listed,
                Err(Error::ApiTimeout { last_error, .. }) => {
                    tracing::debug!(error = %last_error, "no reset offsets within the poll's time");
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
        for (tp, offset) in listed {
            self.fetcher.seek(&tp, offset)?;
        }
        Ok(())
    }

    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.pending
            .retain(|r| *r.topic != *tp.topic || r.partition != tp.partition);
        self.fetcher.seek(tp, offset)
    }

    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, EARLIEST).await
    }

    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, LATEST).await
    }

    /// Seeks to the first offset whose timestamp is at or after `timestamp_ms` (the end
    /// when there is none).
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp_ms: i64,
    ) -> Result<()> {
        // One time bound for both lookups, as Java's `offsetsForTimes` has.
        let mut retry = api_retry(&self.config);
        let found =
            offsets::list_offsets_retrying(&self.cluster, partitions, timestamp_ms, &mut retry)
                .await?;
        let end =
            offsets::list_offsets_retrying(&self.cluster, partitions, LATEST, &mut retry).await?;
        for tp in partitions {
            let offset = found
                .get(tp)
                .copied()
                .filter(|o| *o >= 0)
                .or_else(|| end.get(tp).copied());
            self.seek(tp, offset.unwrap_or(0))?;
        }
        Ok(())
    }

    /// Seeks `partitions` to the offsets ListOffsets gives for `timestamp`; retriable errors
    /// are retried until `default_api_timeout_ms`, as Java's `beginningOffsets`/`endOffsets`.
    async fn seek_to(&mut self, partitions: &[TopicPartition], timestamp: i64) -> Result<()> {
        let mut retry = api_retry(&self.config);
        let listed =
            offsets::list_offsets_retrying(&self.cluster, partitions, timestamp, &mut retry)
                .await?;
        for (tp, offset) in listed {
            self.seek(&tp, offset)?;
        }
        Ok(())
    }

    /// Stops returning (and fetching) records of `partitions` until resumed.
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(state) = self.fetcher.partitions.get_mut(tp) {
                state.paused = true;
            }
        }
        let paused: Vec<TopicPartition> = partitions.to_vec();
        let (kept, held): (VecDeque<_>, VecDeque<_>) = self.pending.drain(..).partition(|r| {
            !paused
                .iter()
                .any(|tp| *tp.topic == *r.topic && tp.partition == r.partition)
        });
        self.pending = kept;
        let mut rewound = std::collections::HashSet::new();
        for record in held {
            let tp = TopicPartition::new(&record.topic, record.partition);
            if !rewound.insert(tp.clone()) {
                continue; // the first held record of a partition is where it resumes
            }
            let _ = self.fetcher.seek(&tp, record.offset);
            if let Some(state) = self.fetcher.partitions.get_mut(&tp) {
                state.paused = true;
            }
        }
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.fetcher.resume(tp);
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }
}

/// The group membership (call once any join in progress has ended); `what` names the
/// operation for the error when there is no `group_id`.
fn member<'a>(group: &'a mut Option<GroupMember>, what: &str) -> Result<&'a mut GroupMember> {
    group
        .as_mut()
        .ok_or_else(|| Error::Config(format!("{what} needs a group_id")))
}

/// A group join running as its own task, with the membership inside it.
struct Joining {
    task: AbortOnDrop<(GroupMember, Result<Joined>)>,
    /// The subscription it joins with.
    topics: Vec<String>,
    /// The partitions kept (and read) through it.
    kept: Vec<TopicPartition>,
}

/// A task that is cancelled when its owner goes away first (a consumer dropped mid-join).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[path = "poll_tests.rs"]
mod tests;
