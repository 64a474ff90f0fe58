//! The fetch pipeline: per assigned partition a position (next record to hand out) and a
//! fetch offset (next record to ask for), a buffer of fetched records, and at most one Fetch
//! in flight per broker connection ("lane": `fetch_connections_per_broker` of them, each
//! fetching its share of the partitions). Fetches go out as soon as a partition's buffer is
//! below `prefetch_bytes_max`, so the next records are on their way while the application
//! works through the current ones. A seek bumps the partition's epoch: late responses for the
//! old position are dropped.
//!
//! A response is only split into batches when it arrives (headers: the next fetch offset);
//! CRC checks and record decoding wait until `take` hands the records out. So the next
//! Fetch is on its way — the broker reading and sending it — while this one is decoded,
//! instead of the two taking turns. A batch that fails its CRC then rewinds the partition to
//! that batch (a new epoch: what was fetched past it is dropped) and it is fetched again
//! (staging, decoding and rewinding live in `fetch_decode.rs`).
//!
//! Each lane keeps a KIP-227 fetch session ([`super::fetch_session`]): a request names only
//! the partitions whose fetch offset changed since the last, and the answer only those with
//! something new. A request still stands for all the partitions the lane wanted: each is in
//! flight until the answer, listed in the request or implied by the session. Each partition
//! records the request that took it (an id), so an answer frees them all by freeing its
//! lane, and its reading looks at the partitions it names only.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::mpsc;

use super::fetch_session::{Answer, FetchSession, SharedPartition, Wanted};
use super::{ConsumerConfig, ConsumerRecord, TopicPartition};
use crate::cluster::Cluster;
use crate::error::{codes, Error, Result};
use decode::stage_records;
use leaders::{CachedTopic, LeaderCache};

/// Where a partition reads from, and what it has buffered.
#[derive(Debug, Default)]
pub struct PartitionState {
    /// Next offset to return; `None` until reset from a commit or the reset policy.
    pub position: Option<i64>,
    /// The position went out of range: it is set by the reset policy, never from the
    /// group's commit (Java's AWAIT_RESET), until set.
    awaiting_reset: bool,
    fetch_offset: i64,
    pub paused: bool,
    epoch: u64,
    /// The Fetch that last took this partition (0: none since a seek or rewind). The
    /// partition is in flight while that request's lane waits for its answer; the answer's
    /// data is used only while this still names it (no seek or rewind meanwhile).
    request: u64,
    /// After a fetch error, no fetch for this partition before this instant.
    backoff_until: Option<tokio::time::Instant>,
    /// Failed fetches (or looks without a known leader) in a row, for the doubling backoff.
    failures: u32,
    buffered: VecDeque<ConsumerRecord>,
    /// Fetched, not yet decoded: (the fetch offset the blob was asked for at, its whole
    /// batches). Counted in `buffered_bytes` at their wire size.
    undecoded: VecDeque<(i64, Bytes)>,
    buffered_bytes: usize,
    /// The high watermark the last answered fetch reported (`None`: no answer yet).
    pub high_watermark: Option<i64>,
    /// This partition as its Fetches name it, made once (see [`SharedPartition`]).
    shared: Option<SharedPartition>,
}

/// One lane's Fetch while `send_fetches` gathers it: (broker, lane), its request id, and
/// the lane's session, given the partitions it asks for.
struct LaneFetch {
    lane: (i32, usize),
    request: u64,
    session: FetchSession,
}

struct FetchResult {
    broker: i32,
    lane: usize,
    /// The request's id, as each partition it took records it.
    request: u64,
    /// The lane's session, handed back by the request that had it.
    session: FetchSession,
    response: Result<FetchResponse>,
}

/// How long closing the consumer waits for the Fetches in flight on lanes with an open
/// session (the session comes back with the answer) and for the brokers to take the
/// requests that close the sessions; a session not closed is evicted by the broker in time.
const SESSION_CLOSE_MS: u64 = 1_000;

pub struct Fetcher {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    results_tx: mpsc::Sender<FetchResult>,
    results_rx: mpsc::Receiver<FetchResult>,
    /// (broker, lane) pairs with a Fetch in flight, and that Fetch's id. Few (brokers ×
    /// `fetch_connections_per_broker`): searched in place.
    busy_lanes: Vec<((i32, usize), u64)>,
    /// The id of the next Fetch (0 is no request's).
    next_request: u64,
    /// The fetch session of each idle lane; a busy lane's is inside its request.
    sessions: HashMap<(i32, usize), FetchSession>,
    /// Lanes whose session was open (had an id) when last handed back.
    open_lanes: HashSet<(i32, usize)>,
    next_epoch: u64,
    /// `take` starts after this partition (the last one it took records from), so one
    /// partition with a deep buffer cannot fill every poll while the rest wait.
    take_after: Option<TopicPartition>,
    /// Every partition with records buffered or staged (and, until `take` next passes,
    /// some that ran dry, were seeked or were unassigned): `take` visits these only. It
    /// walked the whole assignment per poll, most of 1 000 tailed partitions with nothing
    /// buffered (as Java's `FetchBuffer` holds only the completed fetches). Entered when a
    /// response stages records, left when `take` finds the partition empty.
    with_data: BTreeSet<SharedPartition>,
    leaders: LeaderCache,
    /// Some partition may lack a position (set on assign and out-of-range answers, cleared
    /// by a `needing_position` that finds none): `poll` asks every time, and walking the
    /// whole assignment for it is only needed after such a change.
    maybe_unpositioned: bool,
    /// Some partition may want a Fetch it has not been sent: set where one can start
    /// wanting (an assignment, a seek or resume, an answer or failure releasing its
    /// partitions, a `take` that brings a buffer below `prefetch_bytes_max`), cleared by a
    /// `send_fetches` walk that leaves none waiting but on a busy lane (whose answer sets it
    /// again). A walk of the whole assignment on every poll, most polls finding every
    /// partition in flight, was a tailing consumer's largest single cost; Java's fetcher
    /// also only asks its `fetchablePartitions` when a poll can send.
    may_fetch: bool,
}

impl Fetcher {
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Fetcher {
        // One result per broker lane at most is outstanding, so this never fills for long.
        let (results_tx, results_rx) = mpsc::channel(64);
        Fetcher {
            cluster,
            config,
            partitions: BTreeMap::new(),
            results_tx,
            results_rx,
            busy_lanes: Vec::new(),
            next_request: 1,
            sessions: HashMap::new(),
            open_lanes: HashSet::new(),
            next_epoch: 1,
            take_after: None,
            with_data: BTreeSet::new(),
            leaders: LeaderCache::default(),
            maybe_unpositioned: false,
            may_fetch: false,
        }
    }

    /// Replaces the assignment; kept partitions keep their position and buffer.
    pub fn assign(&mut self, partitions: &[TopicPartition]) {
        let wanted: HashSet<&TopicPartition> = partitions.iter().collect();
        self.partitions.retain(|tp, _| wanted.contains(tp));
        self.with_data.retain(|tp| wanted.contains(&**tp));
        for tp in partitions {
            self.partitions.entry(tp.clone()).or_default();
        }
        self.maybe_unpositioned = true;
        self.may_fetch = true;
    }

    /// Moves a partition's position; drops its buffer and any fetch in flight for it.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let state = self
            .partitions
            .get_mut(tp)
            .ok_or_else(|| Error::State(format!("{tp} is not assigned")))?;
        state.position = Some(offset);
        state.awaiting_reset = false;
        state.fetch_offset = offset;
        state.epoch = epoch;
        state.request = 0;
        state.buffered.clear();
        state.undecoded.clear();
        state.buffered_bytes = 0;
        self.may_fetch = true;
        Ok(())
    }

    /// Lets `tp` be fetched and its records taken again (after a pause).
    pub fn resume(&mut self, tp: &TopicPartition) {
        if let Some(state) = self.partitions.get_mut(tp) {
            state.paused = false;
            self.may_fetch = true;
        }
    }

    /// Partitions whose position must be set from a commit or, without one, the reset
    /// policy; and those (out of range) whose position the reset policy must set.
    pub fn needing_position(&mut self) -> (Vec<TopicPartition>, Vec<TopicPartition>) {
        let mut from_commit = Vec::new();
        let mut by_policy = Vec::new();
        if !self.maybe_unpositioned {
            return (from_commit, by_policy);
        }
        for (tp, state) in self.partitions.iter().filter(|(_, s)| s.position.is_none()) {
            match state.awaiting_reset {
                false => from_commit.push(tp.clone()),
                true => by_policy.push(tp.clone()),
            }
        }
        self.maybe_unpositioned = !(from_commit.is_empty() && by_policy.is_empty());
        (from_commit, by_policy)
    }

    /// Sends a Fetch on every idle lane of a broker that leads a partition wanting data.
    /// Leaders come from cached metadata only, as Java's fetcher: a partition without a
    /// known leader is skipped (its metadata asked for in the background, then a backoff
    /// before it is looked at again), so one missing topic or leader neither blocks `poll`
    /// nor stops the other partitions being fetched.
    pub fn send_fetches(&mut self) {
        if !self.may_fetch {
            return;
        }
        // Cleared unless a partition waits for something other than a busy lane's answer.
        self.may_fetch = false;
        // Lanes are few (brokers × `fetch_connections_per_broker`) and partitions many: a
        // short list searched in place, not a hash of the lane per partition.
        let mut by_lane: Vec<LaneFetch> = Vec::new();
        let now = tokio::time::Instant::now();
        let lanes = self.config.fetch_connections_per_broker.max(1);
        // Looked up once per topic: partitions come sorted by topic.
        let mut topic: Option<CachedTopic> = None;
        self.leaders.refresh(&self.cluster);
        for (index, (tp, state)) in self.partitions.iter_mut().enumerate() {
            let wants = state.position.is_some()
                && !state.paused
                && state.buffered_bytes < self.config.prefetch_bytes_max
                && !in_flight(&self.busy_lanes, state);
            if !wants {
                continue;
            }
            if state.backoff_until.is_some_and(|until| until > now) {
                // Looked at again by the next poll's walk (backoffs are rare and short).
                self.may_fetch = true;
                continue;
            }
            if topic.as_ref().is_none_or(|cached| cached.name != tp.topic) {
                topic = Some(self.leaders.topic(&self.cluster, &tp.topic));
            }
            let cached = topic.as_ref().map(|cached| cached.leader(tp.partition));
            let Some((leader, topic_id)) = cached.flatten() else {
                tracing::debug!(%tp, "no known leader; skipped until metadata names one");
                self.cluster.request_refresh(&tp.topic);
                state.back_off(&self.config);
                self.may_fetch = true;
                continue;
            };
            // Lanes by place in the assignment, so any set of partitions spreads evenly.
            let lane = (leader, index % lanes);
            if self.busy_lanes.iter().any(|(busy, _)| *busy == lane) {
                continue;
            }
            let want = Wanted {
                topic_id,
                fetch_offset: state.fetch_offset,
                max_bytes: self.config.partition_fetch_bytes_max,
            };
            let shared = state.shared.get_or_insert_with(|| Arc::new(tp.clone()));
            let index = match by_lane.iter().position(|fetch| fetch.lane == lane) {
                Some(index) => index,
                None => {
                    // An idle lane's session is in `sessions` (or it has none yet).
                    let mut session = self.sessions.remove(&lane).unwrap_or_default();
                    session.begin();
                    by_lane.push(LaneFetch {
                        lane,
                        request: self.next_request,
                        session,
                    });
                    self.next_request += 1;
                    by_lane.len() - 1
                }
            };
            // Every partition taken here goes out below: marked now, not looked up again.
            state.request = by_lane[index].request;
            // Given in the map's order: sorted, as the session needs.
            by_lane[index].session.want(shared, want);
        }
        for LaneFetch {
            lane: (broker, lane),
            request,
            session,
        } in by_lane
        {
            self.spawn_fetch(broker, lane, request, session);
        }
    }

    /// Sends one lane's Fetch in a task of its own, the lane's session with it (given the
    /// partitions it asks for): the session plans the request once the connection says
    /// which version it speaks.
    fn spawn_fetch(&mut self, broker: i32, lane: usize, request: u64, mut session: FetchSession) {
        debug_assert!(self.busy_lanes.iter().all(|(l, _)| *l != (broker, lane)));
        self.busy_lanes.push(((broker, lane), request));
        let (max_wait_ms, max_bytes) = (self.config.fetch_wait_ms_max, self.config.fetch_bytes_max);
        let cluster = self.cluster.clone();
        let results = self.results_tx.clone();
        tokio::spawn(async move {
            let response = async {
                let conn = cluster.broker_lane(broker, lane).await?;
                let plan = session.plan(conn.version_of::<FetchRequest>()?);
                let request = plan.request(max_wait_ms, max_bytes);
                conn.send_at(&request, plan.version).await
            }
            .await;
            let _ = results
                .send(FetchResult {
                    broker,
                    lane,
                    request,
                    session,
                    response,
                })
                .await;
        });
    }

    /// `tp` is assigned and in a Fetch whose answer has not been read.
    #[cfg(test)]
    fn in_flight(&self, tp: &TopicPartition) -> bool {
        let state = self.partitions.get(tp);
        state.is_some_and(|state| in_flight(&self.busy_lanes, state))
    }

    /// Closes the open fetch sessions (a FINAL fetch each, as Java's fetcher does on close),
    /// first taking back those inside Fetches in flight; all within [`SESSION_CLOSE_MS`].
    pub async fn close_sessions(&mut self) {
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_millis(SESSION_CLOSE_MS);
        // Bounded by the deadline: each pass takes an answer or waits until then.
        while self
            .busy_lanes
            .iter()
            .any(|(l, _)| self.open_lanes.contains(l))
            && tokio::time::Instant::now() < deadline
        {
            self.wait_for_data(deadline).await;
        }
        let closing: Vec<_> = self
            .sessions
            .drain()
            .filter_map(|(lane, mut session)| session.close().map(|request| (lane, request)))
            .collect();
        let sends = closing.into_iter().map(|((broker, lane), request)| {
            let cluster = self.cluster.clone();
            async move {
                let conn = cluster.broker_lane(broker, lane).await?;
                conn.send(&request).await
            }
        });
        let all = futures::future::join_all(sends);
        if tokio::time::timeout_at(deadline, all).await.is_err() {
            tracing::debug!("fetch sessions not all closed in time; the broker evicts them");
        }
    }

    /// Waits (until `deadline`) for one fetch response and buffers its records. Returns
    /// the partitions that need an offset reset (OFFSET_OUT_OF_RANGE).
    pub async fn wait_for_data(&mut self, deadline: tokio::time::Instant) -> Vec<TopicPartition> {
        match tokio::time::timeout_at(deadline, self.results_rx.recv()).await {
            Ok(Some(result)) => self.receive(result),
            _ => Vec::new(),
        }
    }

    /// Buffers the responses that have arrived, without waiting, so their brokers can be
    /// sent the next Fetch while records are still buffered: a response that arrived while
    /// the application worked through the previous one does not wait for the buffer to run
    /// dry. Returns the partitions that need an offset reset.
    pub fn stage_arrived(&mut self) -> Vec<TopicPartition> {
        let mut reset = Vec::new();
        while let Ok(result) = self.results_rx.try_recv() {
            reset.extend(self.receive(result));
        }
        reset
    }

    /// Buffers one fetch response's records; returns the partitions to reset. Freeing the
    /// lane frees every partition the request took; only those the answer names are
    /// looked at (a tailing lane's answer names a few of its hundreds).
    fn receive(&mut self, result: FetchResult) -> Vec<TopicPartition> {
        let FetchResult {
            broker,
            lane,
            request,
            mut session,
            response,
        } = result;
        let busy_before = self.busy_lanes.len();
        self.busy_lanes.retain(|(_, busy)| *busy != request);
        debug_assert_eq!(
            self.busy_lanes.len() + 1,
            busy_before,
            "one lane per request"
        );
        // Its partitions are free to be fetched again, whatever the answer says.
        self.may_fetch = true;
        let answer = response.map(|response| session.read_response(response));
        if answer.is_err() {
            session.fail();
        }
        match session.is_open() {
            true => self.open_lanes.insert((broker, lane)),
            false => self.open_lanes.remove(&(broker, lane)),
        };
        self.sessions.insert((broker, lane), session);
        let data = match answer {
            Ok(Answer::Data(data)) => data,
            Ok(Answer::Rejected { code, after_full }) => {
                self.rejected(request, code, after_full);
                return Vec::new();
            }
            Err(e) => {
                tracing::debug!(broker, error = %e, "fetch failed");
                self.release(request, true, e.invalidates_metadata());
                return Vec::new();
            }
        };
        let mut reset = Vec::new();
        // Bounded by the answer: each answered partition is looked up once.
        for (tp, partition) in data {
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue; // reassigned meanwhile
            };
            if state.request != request {
                continue; // seeked or rewound meanwhile, or not asked for by this request
            }
            match partition.error_code {
                0 => {
                    state.failures = 0;
                    state.high_watermark = Some(partition.high_watermark);
                    if let Some(records) = partition.records {
                        stage_records(state, records);
                        if !state.undecoded.is_empty() {
                            let shared = state.shared.get_or_insert_with(|| Arc::new(tp.clone()));
                            self.with_data.insert(shared.clone());
                        }
                    }
                }
                codes::OFFSET_OUT_OF_RANGE => {
                    state.position = None;
                    state.awaiting_reset = true;
                    self.maybe_unpositioned = true;
                    reset.push(tp);
                }
                code => {
                    tracing::debug!(%tp, code, "fetch error; backing off");
                    state.back_off(&self.config);
                    // Only a stale leader or topic (an unknown or changed topic id too)
                    // asks for metadata, as Java's fetcher; the cached leader is used
                    // meanwhile.
                    if broker_error(code).invalidates_metadata() {
                        self.cluster.request_refresh(&tp.topic);
                    }
                }
            }
        }
        reset
    }

    /// A Fetch whose answer was not used: a top-level error (the session was lost, or the
    /// broker refused the whole request), or an answer naming what was not asked for. Its
    /// partitions are fetched again in full: at once when only the session was wrong (the
    /// application sees nothing of it), after a backoff otherwise.
    fn rejected(&mut self, request: u64, code: i16, after_full: bool) {
        let session_lost = matches!(
            code,
            0 | codes::FETCH_SESSION_ID_NOT_FOUND
                | codes::INVALID_FETCH_SESSION_EPOCH
                | codes::FETCH_SESSION_TOPIC_ID_ERROR
        );
        tracing::debug!(
            code,
            after_full,
            "fetch answer not used; the next fetch is full"
        );
        let failed = after_full || !session_lost;
        self.release(request, failed, broker_error(code).invalidates_metadata());
    }

    /// After a request failed (`failed`: its partitions back off) or its topics' metadata
    /// went stale (`stale`: asked for again). Freeing its lane freed its partitions; this
    /// walk of the assignment, for the partitions the request took, is for failures only.
    fn release(&mut self, request: u64, failed: bool, stale: bool) {
        if !(failed || stale) {
            return;
        }
        let mut refreshed: Option<&str> = None;
        let took = self
            .partitions
            .iter_mut()
            .filter(|(_, s)| s.request == request);
        for (tp, state) in took {
            if failed {
                state.back_off(&self.config);
            }
            // Once per topic: partitions come sorted by topic.
            if stale && refreshed != Some(tp.topic.as_str()) {
                self.cluster.request_refresh(&tp.topic);
                refreshed = Some(tp.topic.as_str());
            }
        }
    }
}

#[path = "fetch_leaders.rs"]
mod leaders;

#[path = "fetch_decode.rs"]
mod decode;

/// `state` was taken by a Fetch whose answer has not been read (`busy_lanes`: the
/// fetcher's).
fn in_flight(busy_lanes: &[((i32, usize), u64)], state: &PartitionState) -> bool {
    state.request != 0
        && busy_lanes
            .iter()
            .any(|(_, request)| *request == state.request)
}

/// A broker's error code as an [`Error`], to ask how to treat it.
fn broker_error(code: i16) -> Error {
    Error::Broker {
        code,
        context: String::new(),
    }
}

impl PartitionState {
    /// No fetch of this partition for a while after a failure: `retry_backoff_ms`, doubled
    /// per failure in a row up to `retry_backoff_max_ms` (Java's retry.backoff.ms and
    /// retry.backoff.max.ms, KIP-580). A fixed 100 ms had a partition of a topic that stays
    /// missing ask for its metadata 5–10 times a second for as long as it was assigned.
    fn back_off(&mut self, config: &ConsumerConfig) {
        let doubled_ms = config
            .retry_backoff_ms
            .saturating_mul(1u64 << self.failures.min(20));
        let pause_ms = doubled_ms.min(config.retry_backoff_max_ms.max(config.retry_backoff_ms));
        self.backoff_until =
            Some(tokio::time::Instant::now() + std::time::Duration::from_millis(pause_ms));
        self.failures = self.failures.saturating_add(1);
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fetcher_session_tests.rs"]
mod session_tests;

#[cfg(test)]
#[path = "fetch_decode_props.rs"]
mod decode_props;
