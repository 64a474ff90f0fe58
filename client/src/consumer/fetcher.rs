//! The fetch pipeline: per assigned partition a position (next record to hand out) and a
//! fetch offset (next record to ask for), a buffer of fetched records, and at most one Fetch
//! in flight per broker. Fetches go out as soon as a partition's buffer is below
//! `prefetch_bytes_max`, so the next records are on their way while the application works
//! through the current ones. A seek bumps the partition's epoch: late responses for the
//! old position are dropped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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
    buffered_bytes: usize,
    pub high_watermark: i64,
}

struct FetchResult {
    broker: i32,
    /// (partition, epoch, fetch offset) as sent.
    sent: Vec<(TopicPartition, u64, i64)>,
    response: Result<FetchResponse>,
}

pub struct Fetcher {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    results_tx: mpsc::Sender<FetchResult>,
    results_rx: mpsc::Receiver<FetchResult>,
    busy_brokers: HashSet<i32>,
    next_epoch: u64,
}

impl Fetcher {
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Fetcher {
        // One result per broker at most is outstanding, so this never fills for long.
        let (results_tx, results_rx) = mpsc::channel(64);
        Fetcher {
            cluster,
            config,
            partitions: BTreeMap::new(),
            results_tx,
            results_rx,
            busy_brokers: HashSet::new(),
            next_epoch: 1,
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

    /// Sends a Fetch to every idle broker that leads a partition wanting data.
    pub async fn send_fetches(&mut self) -> Result<()> {
        let mut by_broker: HashMap<i32, Vec<(TopicPartition, u64, i64)>> = HashMap::new();
        let now = tokio::time::Instant::now();
        for (tp, state) in &self.partitions {
            let wants = state.position.is_some()
                && !state.paused
                && !state.in_flight
                && state.backoff_until.is_none_or(|until| until <= now)
                && state.buffered_bytes < self.config.prefetch_bytes_max;
            if !wants {
                continue;
            }
            let leader = self.cluster.leader(&tp.topic, tp.partition).await?;
            if self.busy_brokers.contains(&leader) {
                continue;
            }
            by_broker.entry(leader).or_default().push((
                tp.clone(),
                state.epoch,
                state.fetch_offset,
            ));
        }
        for (broker, sent) in by_broker {
            for (tp, _, _) in &sent {
                if let Some(state) = self.partitions.get_mut(tp) {
                    state.in_flight = true;
                }
            }
            self.busy_brokers.insert(broker);
            let request = self.request(&sent);
            let cluster = self.cluster.clone();
            let results = self.results_tx.clone();
            tokio::spawn(async move {
                let response = match cluster.broker(broker).await {
                    Ok(conn) => conn.send(&request).await,
                    Err(e) => Err(e),
                };
                let _ = results
                    .send(FetchResult {
                        broker,
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
        let result = match tokio::time::timeout_at(deadline, self.results_rx.recv()).await {
            Ok(Some(result)) => result,
            _ => return Vec::new(),
        };
        self.busy_brokers.remove(&result.broker);
        let mut reset = Vec::new();
        let response = match result.response {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(broker = result.broker, error = %e, "fetch failed");
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
                        buffer_records(&tp, state, records, self.config.record_bytes_max);
                    }
                }
                codes::OFFSET_OUT_OF_RANGE => {
                    state.position = None;
                    reset.push(tp);
                }
                _ => {
                    tracing::debug!(%tp, code, "fetch error; refreshing metadata");
                    state.backoff_until = Some(backoff());
                    self.cluster.forget_topic(&tp.topic);
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

    /// Up to `max` buffered records of unpaused partitions, advancing their positions.
    pub fn take(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        for state in self.partitions.values_mut() {
            if state.paused {
                continue;
            }
            while out.len() < max {
                let Some(record) = state.buffered.pop_front() else {
                    break;
                };
                state.buffered_bytes = state.buffered_bytes.saturating_sub(record.size_bytes());
                state.position = Some(record.offset + 1);
                out.push(record);
            }
        }
        out
    }
}

/// Pause after a failed fetch, so a broken partition does not spin the poll loop.
const FETCH_BACKOFF_MS: u64 = 100;

fn backoff() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_millis(FETCH_BACKOFF_MS)
}

/// Decodes a fetched records blob into the partition's buffer, skipping records before the
/// fetch offset (a compressed batch can start earlier) and control batches.
fn buffer_records(tp: &TopicPartition, state: &mut PartitionState, records: Bytes, max: usize) {
    // One shared name for every record of this fetch, not a copy per record.
    let topic: Arc<str> = Arc::from(tp.topic.as_str());
    for batch in BatchSplitter::new(records) {
        let Ok(batch) = batch else { break }; // a partial batch at the end is normal
        if batch.verify_crc().is_err() {
            tracing::warn!(%tp, offset = batch.base_offset(), "CRC mismatch; refetching");
            return;
        }
        let next = batch.next_offset();
        if batch.is_control() || next <= state.fetch_offset {
            state.fetch_offset = state.fetch_offset.max(next);
            continue;
        }
        let Ok(iter) = runnel_protocol::records::records(&batch, max) else {
            tracing::warn!(%tp, offset = batch.base_offset(), "undecodable batch");
            return;
        };
        for record in iter {
            let Ok(record) = record else { return };
            if record.offset < state.fetch_offset {
                continue;
            }
            let record = ConsumerRecord::from_wire(&topic, tp.partition, record);
            state.buffered_bytes += record.size_bytes();
            state.buffered.push_back(record);
        }
        state.fetch_offset = next;
    }
}
