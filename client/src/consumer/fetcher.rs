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
//! that batch (a new epoch: what was fetched past it is dropped) and it is fetched again.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use runnel_protocol::batch::BatchSplitter;
use tokio::sync::mpsc;

use super::{ConsumerConfig, ConsumerRecord, TopicPartition};
use crate::cluster::{topic_name, Cluster};
use crate::error::{codes, Error, Result};

/// Where a partition reads from, and what it has buffered.
#[derive(Debug, Default)]
pub struct PartitionState {
    /// Next offset to return; `None` until reset from a commit or the reset policy.
    pub position: Option<i64>,
    fetch_offset: i64,
    pub paused: bool,
    epoch: u64,
    in_flight: bool,
    /// After a fetch error, no fetch for this partition before this instant.
    backoff_until: Option<tokio::time::Instant>,
    buffered: VecDeque<ConsumerRecord>,
    /// Fetched, not yet decoded: (the fetch offset the blob was asked for at, its whole
    /// batches). Counted in `buffered_bytes` at their wire size.
    undecoded: VecDeque<(i64, Bytes)>,
    buffered_bytes: usize,
    pub high_watermark: i64,
}

/// What one Fetch asked for: (partition, epoch, fetch offset) as sent.
type Sent = Vec<(TopicPartition, u64, i64)>;

struct FetchResult {
    broker: i32,
    lane: usize,
    sent: Sent,
    response: Result<FetchResponse>,
}

pub struct Fetcher {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    results_tx: mpsc::Sender<FetchResult>,
    results_rx: mpsc::Receiver<FetchResult>,
    /// (broker, lane) pairs with a Fetch in flight.
    busy_lanes: HashSet<(i32, usize)>,
    next_epoch: u64,
    /// `take` starts after this partition (the last one it took records from), so one
    /// partition with a deep buffer cannot fill every poll while the rest wait.
    take_after: Option<TopicPartition>,
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
            busy_lanes: HashSet::new(),
            next_epoch: 1,
            take_after: None,
        }
    }

    /// Replaces the assignment; kept partitions keep their position and buffer.
    pub fn assign(&mut self, partitions: &[TopicPartition]) {
        let wanted: HashSet<&TopicPartition> = partitions.iter().collect();
        self.partitions.retain(|tp, _| wanted.contains(tp));
        for tp in partitions {
            self.partitions.entry(tp.clone()).or_default();
        }
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
        state.fetch_offset = offset;
        state.epoch = epoch;
        state.in_flight = false;
        state.buffered.clear();
        state.undecoded.clear();
        state.buffered_bytes = 0;
        Ok(())
    }

    /// Partitions whose position must be set (from a commit or the reset policy).
    pub fn needing_position(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Sends a Fetch on every idle lane of a broker that leads a partition wanting data.
    pub async fn send_fetches(&mut self) -> Result<()> {
        let mut by_lane: HashMap<(i32, usize), Sent> = HashMap::new();
        let now = tokio::time::Instant::now();
        let lanes = self.config.fetch_connections_per_broker.max(1);
        for (index, (tp, state)) in self.partitions.iter().enumerate() {
            let wants = state.position.is_some()
                && !state.paused
                && !state.in_flight
                && state.backoff_until.is_none_or(|until| until <= now)
                && state.buffered_bytes < self.config.prefetch_bytes_max;
            if !wants {
                continue;
            }
            let leader = self.cluster.leader(&tp.topic, tp.partition).await?;
            // Lanes by place in the assignment, so any set of partitions spreads evenly.
            let lane = (leader, index % lanes);
            if self.busy_lanes.contains(&lane) {
                continue;
            }
            by_lane
                .entry(lane)
                .or_default()
                .push((tp.clone(), state.epoch, state.fetch_offset));
        }
        for ((broker, lane), sent) in by_lane {
            for (tp, _, _) in &sent {
                if let Some(state) = self.partitions.get_mut(tp) {
                    state.in_flight = true;
                }
            }
            self.busy_lanes.insert((broker, lane));
            let request = self.request(&sent);
            let cluster = self.cluster.clone();
            let results = self.results_tx.clone();
            tokio::spawn(async move {
                let response = match cluster.broker_lane(broker, lane).await {
                    Ok(conn) => conn.send(&request).await,
                    Err(e) => Err(e),
                };
                let _ = results
                    .send(FetchResult {
                        broker,
                        lane,
                        sent,
                        response,
                    })
                    .await;
            });
        }
        Ok(())
    }

    fn request(&self, sent: &[(TopicPartition, u64, i64)]) -> FetchRequest {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, _, offset) in sent {
            topics.entry(&tp.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(self.config.partition_fetch_bytes_max),
            );
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.config.fetch_wait_ms_max)
            .with_min_bytes(1)
            .with_max_bytes(self.config.fetch_bytes_max)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        FetchTopic::default()
                            .with_topic(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
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

    /// Buffers one fetch response's records; returns the partitions to reset.
    fn receive(&mut self, result: FetchResult) -> Vec<TopicPartition> {
        self.busy_lanes.remove(&(result.broker, result.lane));
        let mut reset = Vec::new();
        let response = match result.response {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(broker = result.broker, error = %e, "fetch failed");
                if e.invalidates_metadata() {
                    for (tp, _, _) in &result.sent {
                        self.cluster.request_refresh(&tp.topic);
                    }
                }
                self.release(&result.sent, true);
                return reset;
            }
        };
        let mut data: HashMap<TopicPartition, (i16, i64, Option<Bytes>)> = HashMap::new();
        for topic in response.responses {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.as_str(), p.partition_index);
                data.insert(tp, (p.error_code, p.high_watermark, p.records));
            }
        }
        for (tp, epoch, offset) in result.sent {
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if state.epoch != epoch || state.fetch_offset != offset {
                continue; // seeked or reassigned meanwhile
            }
            state.in_flight = false;
            let Some((code, high_watermark, records)) = data.remove(&tp) else {
                continue;
            };
            match code {
                0 => {
                    state.high_watermark = high_watermark;
                    if let Some(records) = records {
                        stage_records(state, records);
                    }
                }
                codes::OFFSET_OUT_OF_RANGE => {
                    state.position = None;
                    reset.push(tp);
                }
                _ => {
                    tracing::debug!(%tp, code, "fetch error; backing off");
                    state.backoff_until = Some(backoff());
                    let error = Error::Broker {
                        code,
                        context: String::new(),
                    };
                    // Only a stale leader or topic asks for metadata (as Java's fetcher);
                    // the cached leader is used meanwhile.
                    if error.invalidates_metadata() {
                        self.cluster.request_refresh(&tp.topic);
                    }
                }
            }
        }
        reset
    }

    fn release(&mut self, sent: &[(TopicPartition, u64, i64)], failed: bool) {
        for (tp, epoch, _) in sent {
            if let Some(state) = self.partitions.get_mut(tp).filter(|s| s.epoch == *epoch) {
                state.in_flight = false;
                if failed {
                    state.backoff_until = Some(backoff());
                }
            }
        }
    }

    /// Up to `max` buffered records of unpaused partitions, advancing their positions;
    /// fetched data is decoded here, as it is needed. Partitions are visited round-robin,
    /// from the one after the last that gave records (as Kafka's fetcher moves a drained
    /// partition to the end of its order), so later partitions are not starved.
    pub fn take(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let record_bytes_max = self.config.record_bytes_max;
        let start = self.take_after.take();
        let mut last_taken = None;
        // Two passes over the ring: after the start, then up to and including it.
        for pass in 0..2 {
            let range = match (&start, pass) {
                (Some(tp), 0) => (Bound::Excluded(tp.clone()), Bound::Unbounded),
                (Some(tp), _) => (Bound::Unbounded, Bound::Included(tp.clone())),
                (None, 0) => (Bound::Unbounded, Bound::Unbounded),
                (None, _) => break,
            };
            for (tp, state) in self.partitions.range_mut(range) {
                if out.len() >= max {
                    break;
                }
                let before = out.len();
                take_partition(
                    tp,
                    state,
                    &mut out,
                    max,
                    record_bytes_max,
                    &mut self.next_epoch,
                );
                if out.len() > before {
                    last_taken = Some(tp.clone());
                }
            }
        }
        self.take_after = last_taken.or(start);
        out
    }
}

/// Moves `tp`'s buffered records into `out` until it holds `max`, decoding as needed;
/// `next_epoch` is drawn from when a corrupt batch rewinds the partition.
fn take_partition(
    tp: &TopicPartition,
    state: &mut PartitionState,
    out: &mut Vec<ConsumerRecord>,
    max: usize,
    record_bytes_max: usize,
    next_epoch: &mut u64,
) {
    if state.paused {
        return;
    }
    while out.len() < max {
        if state.buffered.is_empty() {
            match decode_next(tp, state, record_bytes_max) {
                Decoded::Records => continue,
                Decoded::Nothing => break,
                Decoded::Corrupt { refetch_from } => {
                    rewind(state, refetch_from, *next_epoch);
                    *next_epoch += 1;
                    break;
                }
            }
        }
        let Some(record) = state.buffered.pop_front() else {
            break;
        };
        state.buffered_bytes = state.buffered_bytes.saturating_sub(record.size_bytes());
        state.position = Some(record.offset + 1);
        out.push(record);
    }
}

/// Pause after a failed fetch, so a broken partition does not spin the poll loop.
const FETCH_BACKOFF_MS: u64 = 100;

fn backoff() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_millis(FETCH_BACKOFF_MS)
}

/// Queues a fetched records blob for decoding and moves the fetch offset past its whole
/// batches, reading only their headers (a partial batch at the end is normal; it is asked
/// for again).
fn stage_records(state: &mut PartitionState, records: Bytes) {
    let (mut whole_bytes, mut next) = (0usize, state.fetch_offset);
    for batch in BatchSplitter::new(records.clone()) {
        let Ok(batch) = batch else { break };
        whole_bytes += batch.size_bytes();
        next = next.max(batch.next_offset());
    }
    if whole_bytes == 0 {
        return;
    }
    state
        .undecoded
        .push_back((state.fetch_offset, records.slice(..whole_bytes)));
    state.buffered_bytes += whole_bytes;
    state.fetch_offset = next;
}

/// What [`decode_next`] did.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// A blob was decoded (its records, if any, are buffered).
    Records,
    /// Nothing was waiting.
    Nothing,
    /// A batch failed its CRC or could not be decoded; what precedes it is buffered.
    Corrupt { refetch_from: i64 },
}

/// Decodes the oldest undecoded blob into the partition's records, skipping records before
/// the offset it was fetched at (a compressed batch can start earlier) and control batches.
fn decode_next(tp: &TopicPartition, state: &mut PartitionState, max: usize) -> Decoded {
    let Some((fetched_at, blob)) = state.undecoded.pop_front() else {
        return Decoded::Nothing;
    };
    state.buffered_bytes = state.buffered_bytes.saturating_sub(blob.len());
    // One shared name for every record of this blob, not a copy per record.
    let topic: Arc<str> = Arc::from(tp.topic.as_str());
    // Staging kept whole batches only: every split succeeds.
    for batch in BatchSplitter::new(blob).flatten() {
        let refetch_from = batch.base_offset().max(fetched_at);
        if batch.verify_crc().is_err() {
            tracing::warn!(%tp, offset = batch.base_offset(), "CRC mismatch; refetching");
            return Decoded::Corrupt { refetch_from };
        }
        if batch.is_control() || batch.next_offset() <= fetched_at {
            continue;
        }
        let Ok(iter) = runnel_protocol::records::records(&batch, max) else {
            tracing::warn!(%tp, offset = batch.base_offset(), "undecodable batch");
            return Decoded::Corrupt { refetch_from };
        };
        let mut decoded = Vec::new();
        for record in iter {
            let Ok(record) = record else {
                return Decoded::Corrupt { refetch_from };
            };
            if record.offset >= fetched_at {
                decoded.push(ConsumerRecord::from_wire(&topic, tp.partition, record));
            }
        }
        for record in decoded {
            state.buffered_bytes += record.size_bytes();
            state.buffered.push_back(record);
        }
    }
    Decoded::Records
}

/// After a corrupt batch: drop everything fetched past it (a fetch in flight too, by the
/// new `epoch`) and ask for it again, after a backoff.
fn rewind(state: &mut PartitionState, refetch_from: i64, epoch: u64) {
    state.undecoded.clear();
    state.buffered_bytes = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    state.fetch_offset = refetch_from;
    state.epoch = epoch;
    state.in_flight = false;
    state.backoff_until = Some(backoff());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};

    use super::*;

    /// A batch of `count` records at `base_offset`, values `v<offset>`.
    fn batch(base_offset: i64, count: i64) -> Vec<u8> {
        let fields = BatchFields {
            base_offset,
            ..BatchFields::default()
        };
        let mut builder = BatchBuilder::new(fields, 1 << 20);
        for offset in base_offset..base_offset + count {
            let value = format!("v{offset}");
            let record = NewRecord {
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
            };
            builder.push(&record).unwrap();
        }
        builder.finish().unwrap().to_vec()
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    fn offsets(state: &PartitionState) -> Vec<i64> {
        state.buffered.iter().map(|r| r.offset).collect()
    }

    /// A fetch response from broker 0 carrying `records` for partition t-0, sent at `offset`.
    fn arrived(fetcher: &Fetcher, offset: i64, records: Vec<u8>) {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let epoch = fetcher.partitions[&tp()].epoch;
        let partition = PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(offset + 10)
            .with_records(Some(Bytes::from(records)));
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![partition])]);
        let result = FetchResult {
            broker: 0,
            lane: 0,
            sent: vec![(tp(), epoch, offset)],
            response: Ok(response),
        };
        fetcher.results_tx.try_send(result).unwrap();
    }

    /// A fetch response from broker 0 with error `code` for partition t-0, sent at 0.
    fn failed(fetcher: &Fetcher, code: i16) -> FetchResult {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let partition = PartitionData::default()
            .with_partition_index(0)
            .with_error_code(code);
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![partition])]);
        FetchResult {
            broker: 0,
            lane: 0,
            sent: vec![(tp(), fetcher.partitions[&tp()].epoch, 0)],
            response: Ok(response),
        }
    }

    #[tokio::test]
    async fn only_a_stale_leader_error_refreshes_metadata_and_the_leader_stays_cached() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use crate::fake_broker::{self, Script, TopicAnswer};
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let addr = fake_broker::start(Script {
            metadata: Arc::new(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                TopicAnswer::Leaders(vec![0])
            }),
            ..Script::default()
        })
        .await;
        let cluster = Cluster::connect(crate::ClientConfig::new(&addr))
            .await
            .unwrap();
        cluster.topic("t").await.unwrap();
        let mut fetcher = Fetcher::new(cluster.clone(), ConsumerConfig::new(&addr));
        fetcher.assign(&[tp()]);
        fetcher.seek(&tp(), 0).unwrap();
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(200));
        // CORRUPT_MESSAGE: back off and fetch again from the same leader.
        fetcher.receive(failed(&fetcher, 2));
        settle().await;
        assert_eq!(asked.load(Ordering::SeqCst), 1, "no Metadata request");
        assert_eq!(cluster.cached_leader("t", 0), Some(0));
        // NOT_LEADER_OR_FOLLOWER: a refresh in the background; the leader stays usable.
        fetcher.receive(failed(&fetcher, codes::NOT_LEADER_OR_FOLLOWER));
        assert_eq!(cluster.cached_leader("t", 0), Some(0));
        settle().await;
        assert_eq!(asked.load(Ordering::SeqCst), 2, "one Metadata request");
    }

    /// Five partitions of broker 0 assigned and positioned, fetched over `lanes` lanes.
    fn five_partitions(lanes: usize) -> Fetcher {
        let mut config = ConsumerConfig::new("x");
        config.fetch_connections_per_broker = lanes;
        let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 5)]), config);
        let partitions: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("t", p)).collect();
        fetcher.assign(&partitions);
        for tp in &partitions {
            fetcher.seek(tp, 0).unwrap();
        }
        fetcher
    }

    #[test]
    fn take_rotates_so_a_deep_partition_does_not_starve_the_others() {
        let config = ConsumerConfig::new("x");
        let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 3)]), config);
        let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
        fetcher.assign(&partitions);
        for tp in &partitions {
            fetcher.seek(tp, 0).unwrap();
            let state = fetcher.partitions.get_mut(tp).unwrap();
            stage_records(state, Bytes::from(batch(0, 10)));
        }
        // Each take of 4 starts after the partition the last one ended in.
        let taken: Vec<Vec<(i32, i64)>> = (0..5)
            .map(|_| {
                let records = fetcher.take(4);
                records.iter().map(|r| (r.partition, r.offset)).collect()
            })
            .collect();
        assert_eq!(taken[0], vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert_eq!(taken[1], vec![(1, 0), (1, 1), (1, 2), (1, 3)]);
        assert_eq!(taken[2], vec![(2, 0), (2, 1), (2, 2), (2, 3)]);
        assert_eq!(taken[3], vec![(0, 4), (0, 5), (0, 6), (0, 7)]);
        assert_eq!(taken[4], vec![(1, 4), (1, 5), (1, 6), (1, 7)]);
        let taken: Vec<(i32, i64)> = fetcher
            .take(5)
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(taken, vec![(2, 4), (2, 5), (2, 6), (2, 7), (2, 8)]);
        // A partition running dry mid-take hands on to the next in the ring; the one the
        // last take ended in comes last.
        let taken: Vec<(i32, i64)> = fetcher
            .take(5)
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(taken, vec![(0, 8), (0, 9), (1, 8), (1, 9), (2, 9)]);
    }

    #[tokio::test]
    async fn zero_fetch_connections_means_one_lane() {
        let mut fetcher = five_partitions(0);
        fetcher.send_fetches().await.unwrap();
        assert_eq!(
            fetcher.busy_lanes.iter().copied().collect::<Vec<_>>(),
            vec![(0, 0)]
        );
        assert!(fetcher.partitions.values().all(|s| s.in_flight));
    }

    #[tokio::test]
    async fn each_lane_fetches_its_share_of_a_brokers_partitions() {
        let mut fetcher = five_partitions(2);
        fetcher.send_fetches().await.unwrap();
        // Both lanes of broker 0 busy, every partition in flight in one of them.
        let mut busy: Vec<(i32, usize)> = fetcher.busy_lanes.iter().copied().collect();
        busy.sort();
        assert_eq!(busy, vec![(0, 0), (0, 1)]);
        assert!(fetcher.partitions.values().all(|s| s.in_flight));
        // The offline cluster cannot connect: both fetches come back failed, each frees
        // its lane and the partitions it carried (3 + 2).
        let mut carried = Vec::new();
        for _ in 0..2 {
            let result = fetcher.results_rx.recv().await.unwrap();
            assert!(result.response.is_err());
            carried.push(result.sent.len());
            fetcher.receive(result);
        }
        carried.sort();
        assert_eq!(carried, vec![2, 3]);
        assert!(fetcher.busy_lanes.is_empty());
        assert!(fetcher.partitions.values().all(|s| !s.in_flight));
    }

    #[tokio::test]
    async fn responses_that_arrived_are_staged_without_waiting_so_the_next_fetch_can_go() {
        let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
        fetcher.assign(&[tp()]);
        fetcher.seek(&tp(), 0).unwrap();
        assert!(
            fetcher.stage_arrived().is_empty(),
            "nothing arrived: no wait"
        );
        // As `send_fetches` leaves them: the partition and its broker busy.
        fetcher.partitions.get_mut(&tp()).unwrap().in_flight = true;
        fetcher.busy_lanes.insert((0, 0));
        arrived(&fetcher, 0, batch(0, 3));
        assert!(fetcher.stage_arrived().is_empty());
        let state = &fetcher.partitions[&tp()];
        assert_eq!(state.fetch_offset, 3, "the next fetch asks from offset 3");
        assert!(!state.in_flight && fetcher.busy_lanes.is_empty());
        assert_eq!(state.high_watermark, 10);
        let offsets: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
    }

    #[test]
    fn staging_reads_headers_only_and_decoding_skips_what_precedes_the_fetch_offset() {
        let mut state = PartitionState {
            fetch_offset: 1,
            ..PartitionState::default()
        };
        let (first, second) = (batch(0, 3), batch(3, 2));
        let partial = batch(5, 4);
        let whole_bytes = first.len() + second.len();
        let blob = [first, second, partial[..partial.len() / 2].to_vec()].concat();
        stage_records(&mut state, Bytes::from(blob));
        // The next fetch may go out at once: from the first batch not fully received.
        assert_eq!(state.fetch_offset, 5);
        assert_eq!(state.buffered_bytes, whole_bytes);
        assert!(state.buffered.is_empty(), "nothing decoded yet");
        assert_eq!(decode_next(&tp(), &mut state, 1 << 20), Decoded::Records);
        assert_eq!(offsets(&state), vec![1, 2, 3, 4]);
        let sizes: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
        assert_eq!(state.buffered_bytes, sizes);
        assert_eq!(decode_next(&tp(), &mut state, 1 << 20), Decoded::Nothing);
    }

    #[test]
    fn a_corrupt_batch_keeps_what_precedes_it_and_is_fetched_again() {
        let mut state = PartitionState::default();
        let mut second = batch(2, 2);
        let last = second.len() - 1;
        second[last] ^= 0xff; // a record byte: the CRC no longer matches
        stage_records(&mut state, Bytes::from([batch(0, 2), second].concat()));
        stage_records(&mut state, Bytes::from(batch(4, 1)));
        assert_eq!(state.fetch_offset, 5);
        let decoded = decode_next(&tp(), &mut state, 1 << 20);
        assert_eq!(decoded, Decoded::Corrupt { refetch_from: 2 });
        assert_eq!(
            offsets(&state),
            vec![0, 1],
            "the good batch before it is kept"
        );
        state.in_flight = true;
        rewind(&mut state, 2, 7);
        assert_eq!(state.fetch_offset, 2);
        assert_eq!(state.epoch, 7, "a fetch in flight past it is dropped");
        assert!(!state.in_flight && state.backoff_until.is_some());
        assert!(state.undecoded.is_empty(), "later blobs are dropped too");
        let sizes: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
        assert_eq!(state.buffered_bytes, sizes);
    }
}
