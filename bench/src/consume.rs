//! Reading a topic back, for two workloads:
//!
//! - `consume`: a catch-up read of a filled topic by N consumers, from the earliest offset
//!   to the end offset the topic had when the read began.
//! - `e2e` (see [`crate::e2e`]): consumers start at the end offsets, read while the
//!   producers send, and learn where to stop only when the producers are done.
//!
//! Each consumer is assigned (no group) every N-th partition and counts every record up to
//! its partition's end offset, so a run can prove that all messages sent were received.
//! `consume --group` joins the consumers to one consumer group instead: see [`crate::group`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::{Admin, ClientConfig, Consumer, ConsumerConfig, OffsetReset, TopicPartition};
use serde::Serialize;
use tokio::sync::watch;

use crate::histogram::{Histogram, Percentiles};
use crate::produce::{per_second, Counters};
use crate::progress::Progress;

/// Offsets by partition (start or end of a read).
pub type Offsets = BTreeMap<TopicPartition, i64>;

/// What the consumers read and how.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub topics: Vec<String>,
    pub consumers: usize,
    /// The whole read must finish within this, or the report says `complete: false`.
    pub duration_max: Duration,
    /// The consumer's `partition_fetch_bytes_max`.
    pub fetch_bytes: i32,
    pub progress: bool,
    /// `consume` only: join this consumer group (subscribe) instead of assigning
    /// partitions; see [`crate::group`].
    pub group_id: Option<String>,
}

/// The result of one read.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeReport {
    /// Records between the start and end offsets of the read.
    pub messages_expected: u64,
    pub messages_received: u64,
    /// Value bytes received.
    pub bytes_received: u64,
    /// Every partition was read up to its end offset.
    pub complete: bool,
    /// From when every consumer is positioned (with `group`: from the first record) to the
    /// last record expected.
    pub seconds: f64,
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
    /// `e2e` only: producer's send time (stamped in the value) → received, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_latency_us: Option<Percentiles>,
    /// `consume --group` only: the group join and redeliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::group::GroupReport>,
}

/// Consumers started on a topic; [`Readers::finish`] waits for them.
pub struct Readers {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<(bool, Histogram)>>>,
    starts: Offsets,
    counters: Arc<Counters>,
    progress: Option<Progress>,
    started: Instant,
    record_latency: bool,
}

/// From when a reader times end-to-end latency: messages whose send stamp (µs since the
/// epoch) is earlier are counted but not timed — the run's warm-up. Set by the run once
/// its producers start.
pub type TimedFromUs = Arc<AtomicU64>;

/// Catch-up reads `options.topic` from its earliest to its current end offsets.
pub async fn run(bootstrap: &str, options: &ConsumeOptions) -> anyhow::Result<ConsumeReport> {
    let (starts, ends) = topic_offsets(bootstrap, &options.topics).await?;
    let (_ends_tx, ends_rx) = watch::channel(Some(Arc::new(ends.clone())));
    let readers = Readers::start(bootstrap, options, starts, ends_rx, None).await?;
    readers.finish(&ends).await
}

/// The earliest and latest offsets of every partition of `topics`.
pub async fn topic_offsets(
    bootstrap: &str,
    topics: &[String],
) -> anyhow::Result<(Offsets, Offsets)> {
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let mut partitions = Vec::new();
    for topic in topics {
        partitions.extend(admin.partitions(topic).await?);
    }
    let earliest = admin.list_offsets(&partitions, EARLIEST).await?;
    let latest = admin.list_offsets(&partitions, LATEST).await?;
    Ok((earliest, latest))
}

impl Readers {
    /// Starts `options.consumers` consumers at `starts`; each stops once `ends` holds end
    /// offsets and it has read its partitions up to them (or at the deadline).
    pub async fn start(
        bootstrap: &str,
        options: &ConsumeOptions,
        starts: Offsets,
        ends: watch::Receiver<Option<Arc<Offsets>>>,
        latency_from: Option<TimedFromUs>,
    ) -> anyhow::Result<Readers> {
        let record_latency = latency_from.is_some();
        anyhow::ensure!(options.consumers > 0, "--consumers must be > 0");
        let counters = Arc::new(Counters::default());
        let label = if record_latency { "e2e" } else { "consume" };
        let progress = options
            .progress
            .then(|| Progress::start(label, counters.clone()));
        let mut consumers = Vec::with_capacity(options.consumers);
        for share in 0..options.consumers {
            // Partitions i, i + N, i + 2N, … go to consumer i.
            let mine: Offsets = starts
                .iter()
                .skip(share)
                .step_by(options.consumers)
                .map(|(tp, start)| (tp.clone(), *start))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut consumer = Consumer::new(consumer_config(bootstrap, options)).await?;
            let partitions: Vec<TopicPartition> = mine.keys().cloned().collect();
            consumer.assign(&partitions)?;
            for (tp, start) in &mine {
                consumer.seek(tp, *start)?;
            }
            consumers.push((consumer, mine));
        }
        // The clock starts once every consumer is connected and positioned.
        let started = Instant::now();
        let deadline = started + options.duration_max;
        let tasks = consumers
            .into_iter()
            .map(|(consumer, next)| {
                let reader = Reader {
                    consumer,
                    next,
                    ends: ends.clone(),
                    deadline,
                    counters: counters.clone(),
                    latency_from: latency_from.clone(),
                };
                tokio::spawn(reader.run())
            })
            .collect();
        Ok(Readers {
            tasks,
            starts,
            counters,
            progress,
            started,
            record_latency,
        })
    }

    /// Waits for every consumer and reports; `ends` are the offsets they read up to.
    pub async fn finish(self, ends: &Offsets) -> anyhow::Result<ConsumeReport> {
        let messages_expected = self
            .starts
            .iter()
            .map(|(tp, start)| {
                let end = ends.get(tp).copied().unwrap_or(*start);
                end.saturating_sub(*start).max(0) as u64
            })
            .sum();
        let mut complete = true;
        let mut latency = Histogram::new();
        for task in self.tasks {
            let (done, histogram) = task.await??;
            complete &= done;
            latency.merge(&histogram);
        }
        let seconds = self.started.elapsed().as_secs_f64();
        drop(self.progress);
        let messages_received = self.counters.acked.load(Ordering::Relaxed);
        let bytes_received = self.counters.bytes_acked.load(Ordering::Relaxed);
        Ok(ConsumeReport {
            messages_expected,
            messages_received,
            bytes_received,
            complete,
            seconds,
            messages_per_second: per_second(messages_received as f64, seconds),
            bytes_per_second: per_second(bytes_received as f64, seconds),
            end_to_end_latency_us: self.record_latency.then(|| latency.percentiles()),
            group: None,
        })
    }
}

/// The consumer config of every reader (with `group_id` unset; `crate::group` sets it).
pub fn consumer_config(bootstrap: &str, options: &ConsumeOptions) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(bootstrap);
    config.auto_commit = false;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.partition_fetch_bytes_max = options.fetch_bytes.max(1);
    config.prefetch_bytes_max = (options.fetch_bytes.max(1) as usize).saturating_mul(2);
    // Large polls: the bench counts records, it does no per-record work.
    config.max_poll_records = 100_000;
    config
}

/// One consumer's read of its partitions.
struct Reader {
    consumer: Consumer,
    /// The next offset expected per partition.
    next: Offsets,
    ends: watch::Receiver<Option<Arc<Offsets>>>,
    deadline: Instant,
    counters: Arc<Counters>,
    latency_from: Option<TimedFromUs>,
}

impl Reader {
    /// Returns whether every partition was read to its end, and the e2e latencies.
    async fn run(mut self) -> anyhow::Result<(bool, Histogram)> {
        let mut latency = Histogram::new();
        loop {
            let ends = self.ends.borrow().clone();
            if let Some(ends) = &ends {
                let done = self
                    .next
                    .iter()
                    .all(|(tp, next)| *next >= ends.get(tp).copied().unwrap_or(0));
                if done {
                    return Ok((true, latency));
                }
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Ok((false, latency));
            }
            let records = self
                .consumer
                .poll((self.deadline - now).min(Duration::from_millis(100)))
                .await?;
            let received_us = now_us();
            let timed_from_us = self
                .latency_from
                .as_ref()
                .map(|from| from.load(Ordering::Relaxed));
            let (mut count, mut bytes) = (0u64, 0u64);
            // Records arrive in runs of one partition (their topic one shared name): look
            // the partition up and note how far it was read once per run, not once per
            // record (the bench must cost less than what it measures).
            let mut run: Option<Run> = None;
            for record in &records {
                let same = run.as_ref().is_some_and(|run| {
                    run.partition == record.partition
                        && (Arc::ptr_eq(&run.topic, &record.topic) || run.topic == record.topic)
                });
                if !same {
                    if let Some(done) = run.take() {
                        done.note(&mut self.next);
                    }
                    let tp = TopicPartition::new(&record.topic, record.partition);
                    let end = ends.as_ref().and_then(|e| e.get(&tp).copied());
                    run = Some(Run {
                        topic: record.topic.clone(),
                        partition: record.partition,
                        end,
                        next: None,
                    });
                }
                let Some(run) = run.as_mut() else { continue };
                // Records past the end offset are not part of this run's count.
                if run.end.is_some_and(|end| record.offset >= end) {
                    continue;
                }
                let next = record.offset.saturating_add(1);
                run.next = Some(run.next.map_or(next, |seen| seen.max(next)));
                count += 1;
                bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
                if let Some(from_us) = timed_from_us {
                    let sent_us = record.value.as_deref().and_then(read_stamp);
                    if let Some(sent_us) = sent_us.filter(|sent_us| *sent_us >= from_us) {
                        latency.record(received_us.saturating_sub(sent_us));
                    }
                }
            }
            if let Some(done) = run {
                done.note(&mut self.next);
            }
            self.counters.acked.fetch_add(count, Ordering::Relaxed);
            self.counters
                .bytes_acked
                .fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// A poll's records of one partition, in a row.
struct Run {
    topic: Arc<str>,
    partition: i32,
    /// The partition's end offset for this run (records at or past it are not counted).
    end: Option<i64>,
    /// One past the highest offset counted.
    next: Option<i64>,
}

impl Run {
    /// Notes in `next` (the next offset expected per partition) how far this run read.
    fn note(self, next: &mut Offsets) {
        let Some(read_to) = self.next else { return };
        if let Some(expected) = next.get_mut(&TopicPartition::new(&self.topic, self.partition)) {
            *expected = (*expected).max(read_to);
        }
    }
}

/// Microseconds since the Unix epoch (the clock the producers stamp values with).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The send time a producer wrote into the first 8 bytes of a value (big-endian µs).
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let stamp: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}
