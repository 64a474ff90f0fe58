//! `consume --group`: a catch-up read by N consumers that join one consumer group
//! (`subscribe`) instead of being assigned partitions, as an application would read.
//!
//! The group's delivery is at-least-once: when a rebalance moves a partition, its new owner
//! starts at the last committed offset, so records can arrive twice (auto-commit is on, so
//! positions are committed when partitions are revoked). `Coverage` therefore keeps one
//! bit per expected offset: `messages_received` counts distinct offsets and a record seen
//! again is counted as a duplicate. The read is complete when every offset between the
//! topic's start and end offsets (taken before the consumers start) was received by some
//! member, whichever it was.
//!
//! The group join (including the broker's `group.initial.rebalance.delay.ms`, 3 s by
//! default and extended for each member that joins during it) is reported separately as the
//! time to the first record; the read throughput runs from the first record to the last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use runnel_client::consumer::RebalanceListener;
use runnel_client::{Consumer, ConsumerRecord, TopicPartition};
use serde::Serialize;
use tokio::sync::watch;

use crate::consume::{consumer_config, topic_offsets, ConsumeOptions, ConsumeReport, Offsets};
use crate::produce::{per_second, Counters};
use crate::progress::Progress;

/// Most offsets one run tracks (one bit each: 128 MiB of bitmap at the bound).
const COVERAGE_OFFSETS_MAX: u64 = 1 << 30;
/// Longest single `poll`, so that the end of the read is noticed promptly.
const POLL_SLICE_MS: u64 = 100;
/// How long leaving the group may take per consumer once the read is over.
const CLOSE_WAIT_MS_MAX: u64 = 5_000;

/// The group-specific part of a `consume --group` report.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group_id: String,
    /// Consumers subscribed → first record received by any member: the group join.
    /// `None` when no record arrived.
    pub first_record_seconds: Option<f64>,
    /// Consumers subscribed → the read complete (or stopped): join plus read.
    pub total_seconds: f64,
    /// Records received again (after a rebalance moved their partition); not counted in
    /// `messages_received` or `bytes_received`.
    pub duplicates: u64,
    /// Group joins completed over all members: one per member when the group formed in
    /// one rebalance, more when it rebalanced during the read.
    pub joins: u64,
    /// Members that received at least one record.
    pub members_receiving: usize,
}

/// Reads every partition of `options.topics` from its start to its current end offset with
/// `options.consumers` members of group `group_id` (use a group without committed offsets
/// for these topics, or the read cannot be complete).
pub async fn run(
    bootstrap: &str,
    options: &ConsumeOptions,
    group_id: &str,
) -> anyhow::Result<ConsumeReport> {
    anyhow::ensure!(options.consumers > 0, "--consumers must be > 0");
    let (starts, ends) = topic_offsets(bootstrap, &options.topics).await?;
    let coverage = Coverage::new(&starts, &ends)?;
    let (done, _) = watch::channel(coverage.is_complete());
    let shared = Shared {
        coverage: Arc::new(Mutex::new(coverage)),
        done: Arc::new(done),
        counters: Arc::new(Counters::default()),
        joins: Arc::new(AtomicU64::new(0)),
    };
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    let mut consumers = Vec::with_capacity(options.consumers);
    for _ in 0..options.consumers {
        let mut config = consumer_config(bootstrap, options);
        config.group_id = Some(group_id.to_owned());
        // Commit on revocation, so a partition's next owner resumes near where it was.
        config.auto_commit = true;
        let mut consumer = Consumer::new(config).await?;
        consumer.set_rebalance_listener(Box::new(JoinCounter(shared.joins.clone())));
        consumer.subscribe(&topics)?;
        consumers.push(consumer);
    }
    let progress = options
        .progress
        .then(|| Progress::start("consume", shared.counters.clone()));
    // The clock starts before the first poll, which is where the group join happens.
    let started = Instant::now();
    let deadline = started + options.duration_max;
    let tasks = consumers.into_iter().map(|consumer| {
        let reader = GroupReader {
            consumer,
            shared: shared.clone(),
            deadline,
        };
        tokio::spawn(reader.run())
    });
    let (outcomes, first_error) = wait_for_readers(tasks.collect(), &shared.done).await;
    let stopped = Instant::now();
    drop(progress);
    let members_receiving = outcomes.iter().filter(|(_, received)| *received).count();
    close_all(outcomes.into_iter().map(|(consumer, _)| consumer)).await;
    if let Some(error) = first_error {
        return Err(error);
    }
    let coverage = lock(&shared.coverage)?;
    let first = coverage.first_record_at;
    let last = coverage.completed_at.unwrap_or(stopped);
    let seconds = first.map_or(0.0, |first| last.duration_since(first).as_secs_f64());
    Ok(ConsumeReport {
        messages_expected: coverage.expected,
        messages_received: coverage.distinct,
        bytes_received: coverage.bytes,
        complete: coverage.is_complete(),
        seconds,
        messages_per_second: per_second(coverage.distinct as f64, seconds),
        bytes_per_second: per_second(coverage.bytes as f64, seconds),
        end_to_end_latency_us: None,
        group: Some(GroupReport {
            group_id: group_id.to_owned(),
            first_record_seconds: first.map(|f| f.duration_since(started).as_secs_f64()),
            total_seconds: last.duration_since(started).as_secs_f64(),
            duplicates: coverage.duplicates,
            joins: shared.joins.load(Ordering::Relaxed),
            members_receiving,
        }),
    })
}

/// State shared by the members of one read.
#[derive(Clone)]
struct Shared {
    coverage: Arc<Mutex<Coverage>>,
    /// Set once every expected offset was received (or a member failed): everyone stops.
    done: Arc<watch::Sender<bool>>,
    counters: Arc<Counters>,
    joins: Arc<AtomicU64>,
}

/// Counts the group joins a member completed.
struct JoinCounter(Arc<AtomicU64>);

impl RebalanceListener for JoinCounter {
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}

    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// One group member's read.
struct GroupReader {
    consumer: Consumer,
    shared: Shared,
    deadline: Instant,
}

impl GroupReader {
    /// Polls until the read is complete (by any member) or the deadline; returns the
    /// consumer, to leave the group once every member stopped, and whether it got records.
    async fn run(mut self) -> anyhow::Result<(Consumer, bool)> {
        let mut done = self.shared.done.subscribe();
        let mut received_any = false;
        loop {
            let now = Instant::now();
            if *done.borrow() || now >= self.deadline {
                break;
            }
            let slice = (self.deadline - now).min(Duration::from_millis(POLL_SLICE_MS));
            let records = tokio::select! {
                polled = self.consumer.poll(slice) => polled?,
                // A member can wait in JoinGroup for the others to rejoin; once the read is
                // complete they never will, so do not wait for the rebalance timeout.
                _ = done.wait_for(|done| *done) => break,
                _ = tokio::time::sleep_until(self.deadline.into()) => break,
            };
            if records.is_empty() {
                continue;
            }
            received_any = true;
            let mut coverage = lock(&self.shared.coverage)?;
            let (messages, bytes) = coverage.record(&records, Instant::now());
            let complete = coverage.is_complete();
            drop(coverage);
            let counters = &self.shared.counters;
            counters.acked.fetch_add(messages, Ordering::Relaxed);
            counters.bytes_acked.fetch_add(bytes, Ordering::Relaxed);
            if complete {
                self.shared.done.send_replace(true);
            }
        }
        Ok((self.consumer, received_any))
    }
}

/// Waits for every member; the first failure stops the others (a dead member's partitions
/// would only move after its session timeout) and is returned alongside the survivors.
async fn wait_for_readers(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<(Consumer, bool)>>>,
    done: &watch::Sender<bool>,
) -> (Vec<(Consumer, bool)>, Option<anyhow::Error>) {
    let mut pending: FuturesUnordered<_> = tasks.into_iter().collect();
    let mut outcomes = Vec::new();
    let mut first_error = None;
    while let Some(joined) = pending.next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => {
                done.send_replace(true);
                first_error.get_or_insert(error);
            }
        }
    }
    (outcomes, first_error)
}

/// Leaves the group with every consumer at once, each bounded by [`CLOSE_WAIT_MS_MAX`].
/// Failures are ignored: the read is over, and a member that could not leave only costs
/// the broker a session timeout.
async fn close_all(consumers: impl Iterator<Item = Consumer>) {
    let closing: FuturesUnordered<_> = consumers
        .map(|consumer| {
            tokio::time::timeout(Duration::from_millis(CLOSE_WAIT_MS_MAX), consumer.close())
        })
        .collect();
    closing.for_each(|_| async {}).await;
}

fn lock(coverage: &Mutex<Coverage>) -> anyhow::Result<std::sync::MutexGuard<'_, Coverage>> {
    coverage
        .lock()
        .map_err(|_| anyhow::anyhow!("a group member panicked while counting records"))
}

/// Which offsets of each partition were received: one bit per offset in `[start, end)`.
#[derive(Debug)]
struct Coverage {
    /// Topic → partition → its offsets (looked up by `&str`, no allocation per record).
    topics: HashMap<String, HashMap<i32, PartitionCoverage>>,
    expected: u64,
    distinct: u64,
    duplicates: u64,
    /// Value bytes of the distinct records.
    bytes: u64,
    first_record_at: Option<Instant>,
    completed_at: Option<Instant>,
}

#[derive(Debug)]
struct PartitionCoverage {
    start: i64,
    end: i64,
    seen: Vec<u64>,
}

impl Coverage {
    /// Offsets `[starts[tp], ends[tp])` of every partition in `starts`.
    fn new(starts: &Offsets, ends: &Offsets) -> anyhow::Result<Coverage> {
        let mut topics: HashMap<String, HashMap<i32, PartitionCoverage>> = HashMap::new();
        let mut expected = 0u64;
        for (tp, start) in starts {
            let end = ends.get(tp).copied().unwrap_or(*start).max(*start);
            let count = u64::try_from(end - start)?;
            expected = expected.saturating_add(count);
            anyhow::ensure!(
                expected <= COVERAGE_OFFSETS_MAX,
                "consume --group tracks at most {COVERAGE_OFFSETS_MAX} offsets per run"
            );
            let words = usize::try_from(count.div_ceil(64))?;
            let partition = PartitionCoverage {
                start: *start,
                end,
                seen: vec![0; words],
            };
            let TopicPartition {
                topic,
                partition: index,
            } = tp;
            topics
                .entry(topic.clone())
                .or_default()
                .insert(*index, partition);
        }
        Ok(Coverage {
            topics,
            expected,
            distinct: 0,
            duplicates: 0,
            bytes: 0,
            first_record_at: None,
            completed_at: None,
        })
    }

    fn is_complete(&self) -> bool {
        debug_assert!(self.distinct <= self.expected);
        self.distinct == self.expected
    }

    /// Marks `records` received at `now`; returns the distinct (messages, value bytes) they
    /// added. Records outside the expected offsets are ignored.
    fn record(&mut self, records: &[ConsumerRecord], now: Instant) -> (u64, u64) {
        let (mut messages, mut bytes) = (0u64, 0u64);
        for record in records {
            let Some(partition) = self
                .topics
                .get_mut(&*record.topic)
                .and_then(|t| t.get_mut(&record.partition))
            else {
                continue;
            };
            if record.offset < partition.start || record.offset >= partition.end {
                continue;
            }
            // In range, so the index is below `end - start`, which fitted a usize above.
            let index = (record.offset - partition.start) as u64;
            let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
            if partition.seen[word] & bit != 0 {
                self.duplicates += 1;
                continue;
            }
            partition.seen[word] |= bit;
            messages += 1;
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        self.distinct += messages;
        self.bytes += bytes;
        if !records.is_empty() {
            self.first_record_at.get_or_insert(now);
        }
        if self.is_complete() {
            self.completed_at.get_or_insert(now);
        }
        (messages, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(&str, i32, i64)]) -> Offsets {
        entries
            .iter()
            .map(|(topic, partition, offset)| (TopicPartition::new(topic, *partition), *offset))
            .collect()
    }

    fn records(topic: &str, partition: i32, offsets: std::ops::Range<i64>) -> Vec<ConsumerRecord> {
        offsets
            .map(|offset| ConsumerRecord {
                topic: topic.into(),
                partition,
                offset,
                value: Some(bytes::Bytes::from_static(b"abc")),
                ..ConsumerRecord::default()
            })
            .collect()
    }

    #[test]
    fn redelivered_offsets_count_as_duplicates_not_messages() {
        let starts = offsets(&[("t", 0, 0), ("t", 1, 10)]);
        let ends = offsets(&[("t", 0, 100), ("t", 1, 80)]);
        let mut coverage = Coverage::new(&starts, &ends).unwrap();
        assert_eq!(coverage.expected, 170);
        let now = Instant::now();
        assert_eq!(coverage.record(&records("t", 0, 0..70), now), (70, 210));
        // A rebalance hands partition 0 to another member, which resumes at 50.
        assert_eq!(coverage.record(&records("t", 0, 50..100), now), (30, 90));
        assert_eq!(coverage.duplicates, 20);
        assert!(!coverage.is_complete());
        assert_eq!(coverage.record(&records("t", 1, 10..80), now), (70, 210));
        assert!(coverage.is_complete());
        assert_eq!((coverage.distinct, coverage.bytes), (170, 510));
        assert!(coverage.completed_at.is_some());
    }

    #[test]
    fn records_outside_the_read_are_ignored() {
        let mut coverage =
            Coverage::new(&offsets(&[("t", 0, 5)]), &offsets(&[("t", 0, 10)])).unwrap();
        let now = Instant::now();
        assert_eq!(coverage.record(&records("t", 0, 0..5), now), (0, 0));
        assert_eq!(coverage.record(&records("t", 0, 10..20), now), (0, 0));
        assert_eq!(coverage.record(&records("t", 1, 5..10), now), (0, 0));
        assert_eq!(coverage.record(&records("u", 0, 5..10), now), (0, 0));
        assert_eq!((coverage.distinct, coverage.duplicates), (0, 0));
        assert_eq!(coverage.record(&records("t", 0, 5..10), now), (5, 15));
        assert!(coverage.is_complete());
    }

    #[test]
    fn an_empty_read_is_complete_from_the_start() {
        let coverage = Coverage::new(&offsets(&[("t", 0, 7)]), &offsets(&[("t", 0, 7)])).unwrap();
        assert!(coverage.is_complete());
    }
}
