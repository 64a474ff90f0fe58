//! The `produce` workload: N producer tasks (one `runnel_client::Producer` each, so one
//! connection each) send fixed-size records round-robin over T topics — keyless, so the
//! producer's sticky partitioner spreads them over the P partitions one batch at a time, or
//! addressed to each partition in turn with `round_robin` — bounded by a message count or a
//! duration, at a target rate or as fast as they can.
//!
//! Publish latency is send → delivery: taken before `send` (so back-pressure from a full
//! buffer counts, as in OpenMessaging Benchmark) and when the delivery future resolves, in a
//! collector task per producer that awaits deliveries in completion order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_client::{Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::histogram::{Histogram, Percentiles};
use crate::progress::Progress;

/// How long the final flush may run past the send deadline before the run gives up on it.
const FLUSH_GRACE: Duration = Duration::from_secs(30);

/// Deliveries are handed from a producer task to its collector in chunks of up to this
/// many (one channel send and wake-up per chunk, not per record: that was ~10 % of the
/// bench's CPU at full speed); a chunk goes before the producer sleeps for its rate.
const DELIVERY_CHUNK_RECORDS: usize = 256;
/// At full speed (no `--rate`) records that go into the producer's buffer without waiting
/// share one clock reading, at most this many: a reading per record was 2.6 % of the CPU of
/// a whole produce run (`__vdso_clock_gettime`, broker and bench on two cores, acks=1, 8
/// partitions). The shared reading is the earliest of its records' send times, so each
/// latency is measured from no later than its real start (over by at most the few hundred
/// ns the previous records of the group took to queue); any wait (buffer room, the
/// delivery queue) takes a new reading. With `--rate` every record reads the clock.
const CLOCK_READ_EVERY_RECORDS: u64 = 8;
/// Chunks handed to the collector before the producer waits (64 Ki deliveries).
const DELIVERY_QUEUE_CHUNKS_MAX: usize = 256;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunBound {
    /// This many messages in total (split evenly over the producers).
    Messages(u64),
    /// Send for this long.
    Duration(Duration),
}

/// What `produce` sends and how.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Every topic has `partitions` partitions; records go round-robin over all of them.
    pub topics: Vec<String>,
    pub producers: usize,
    pub partitions: i32,
    /// Every record names its partition, in turn; otherwise records are keyless and the
    /// producer's sticky partitioner picks (one batch per partition at a time).
    pub round_robin: bool,
    pub message_bytes: usize,
    pub acks: Acks,
    pub compression: Compression,
    /// The producer's `batch_size_bytes`; requests are up to `max(1 MiB, this)`.
    pub batch_bytes: usize,
    /// The producer's `buffer_memory_bytes`; `None`: [`BUFFER_REQUESTS`] requests' worth.
    pub buffer_bytes: Option<usize>,
    pub linger_ms: u64,
    /// The client's `in_flight_per_partition_max` (`None`: its default).
    pub in_flight_per_partition: Option<usize>,
    /// The client's `idempotence` (`None`: its default, on with acks=all).
    pub idempotence: Option<bool>,
    pub bound: RunBound,
    /// Messages per second over all producers; `None`: as fast as possible.
    pub rate_per_second: Option<f64>,
    /// Sending stops after this long whatever the bound (a message count at a low rate or a
    /// stalled broker must not run forever); the report then shows fewer messages sent.
    pub duration_max: Duration,
    /// Print a progress line to stderr each second.
    pub progress: bool,
    /// Write the send time (µs since the epoch, big-endian) into each value's first 8 bytes,
    /// for `e2e`: record timestamps are milliseconds, too coarse for sub-ms latencies.
    pub stamp_send_time: bool,
    /// Messages sent this long after the start are timed; earlier ones only counted.
    pub warmup: Duration,
    /// Where the run publishes, as it starts sending, the wall-clock instant its timing
    /// begins (start + warm-up, µs since the epoch), for readers timing end-to-end latency.
    pub timed_from_us: Option<crate::consume::TimedFromUs>,
}

/// The result of one `produce` run.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceReport {
    pub messages_sent: u64,
    pub messages_acked: u64,
    pub messages_failed: u64,
    /// The first delivery error, if any failed.
    pub first_error: Option<String>,
    pub bytes_acked: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
    /// Send → delivery, in microseconds.
    pub publish_latency_us: Percentiles,
    /// Messages sent in this first stretch of the run were not timed (publish and e2e).
    pub warmup_seconds: f64,
}

/// Counters shared by the producer tasks, their collectors and the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_acked: AtomicU64,
}

/// The producer's default buffer, in requests of `max_request_bytes`: the five a
/// connection has in flight and the ones being filled behind them. More only queues: at
/// full speed the buffer stays full, every record waits behind all of it, and each batch
/// is cold in the CPU caches by the time the socket copies it. One producer, 8 partitions,
/// 1 MiB batches, 11 alternating pairs of the same build: 8 MiB a mean 1.156 GB/s against
/// 64 MiB 1.053 (better in 10 of 11; the bench's CPU per GB 0.54–0.74 against 0.67–0.80),
/// acks=all the same (0.84–0.88 against 0.81–0.88), publish p50 on 1 000 partitions
/// 6.5 ms against 62 ms; 4 MiB starved the connection (BENCHMARKS.md, session 24).
pub const BUFFER_REQUESTS: usize = 8;

/// The producer config every workload uses for these options.
pub fn producer_config(bootstrap: &str, options: &ProduceOptions) -> ProducerConfig {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = options.acks;
    config.compression = options.compression;
    config.linger_ms = options.linger_ms;
    config.in_flight_per_partition_max = options.in_flight_per_partition;
    config.idempotence = options.idempotence;
    config.batch_size_bytes = options.batch_bytes.max(1);
    config.max_request_bytes = config.batch_size_bytes.max(1 << 20);
    // One smaller than a request is refused by the producer, naming both.
    config.buffer_memory_bytes =
        (options.buffer_bytes).unwrap_or(config.max_request_bytes.saturating_mul(BUFFER_REQUESTS));
    config
}

/// Runs the workload against `bootstrap`; the topic must exist with `options.partitions`.
pub async fn run(bootstrap: &str, options: &ProduceOptions) -> anyhow::Result<ProduceReport> {
    anyhow::ensure!(options.producers > 0, "--producers must be > 0");
    anyhow::ensure!(options.partitions > 0, "--partitions must be > 0");
    anyhow::ensure!(!options.topics.is_empty(), "no topic to produce to");
    anyhow::ensure!(
        !options.stamp_send_time || options.message_bytes >= 8,
        "--message-bytes must be >= 8 to carry the send time"
    );
    let counters = Arc::new(Counters::default());
    let mut producers = Vec::with_capacity(options.producers);
    for _ in 0..options.producers {
        producers.push(Producer::new(producer_config(bootstrap, options)).await?);
    }
    let payload = Bytes::from(vec![b'x'; options.message_bytes]);
    let progress = options
        .progress
        .then(|| Progress::start("produce", counters.clone()));
    let started = Instant::now();
    if let Some(timed_from_us) = &options.timed_from_us {
        let warmup_us = u64::try_from(options.warmup.as_micros()).unwrap_or(u64::MAX);
        let from_us = crate::consume::now_us().saturating_add(warmup_us);
        timed_from_us.store(from_us, Ordering::Relaxed);
    }
    let mut tasks = Vec::with_capacity(options.producers);
    for (index, producer) in producers.into_iter().enumerate() {
        let task = ProducerTask {
            index,
            producer,
            options: options.clone(),
            payload: payload.clone(),
            counters: counters.clone(),
            started,
        };
        tasks.push(tokio::spawn(task.run()));
    }
    let mut latency = Histogram::new();
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await??;
        latency.merge(&outcome.latency);
        first_error = first_error.or(outcome.first_error);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(progress);
    let bytes_acked = counters.bytes_acked.load(Ordering::Relaxed);
    let messages_acked = counters.acked.load(Ordering::Relaxed);
    Ok(ProduceReport {
        messages_sent: counters.sent.load(Ordering::Relaxed),
        messages_acked,
        messages_failed: counters.failed.load(Ordering::Relaxed),
        first_error,
        bytes_acked,
        seconds,
        messages_per_second: per_second(messages_acked as f64, seconds),
        bytes_per_second: per_second(bytes_acked as f64, seconds),
        publish_latency_us: latency.percentiles(),
        warmup_seconds: options.warmup.as_secs_f64(),
    })
}

pub fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

struct ProducerTask {
    index: usize,
    producer: Producer,
    options: ProduceOptions,
    payload: Bytes,
    counters: Arc<Counters>,
    started: Instant,
}

struct TaskOutcome {
    latency: Histogram,
    first_error: Option<String>,
}

impl ProducerTask {
    /// This producer's share of a message bound (the first ones take the remainder).
    fn quota(&self) -> u64 {
        match self.options.bound {
            RunBound::Messages(total) => {
                let n = self.options.producers as u64;
                total / n + u64::from((self.index as u64) < total % n)
            }
            RunBound::Duration(_) => u64::MAX,
        }
    }

    /// Counts the deliveries in `chunk` (if any) as sent and hands them to the collector;
    /// `chunk` starts over empty.
    async fn hand_over(
        &self,
        to: &mpsc::Sender<Deliveries>,
        chunk: &mut Deliveries,
    ) -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(chunk, Vec::with_capacity(DELIVERY_CHUNK_RECORDS));
        self.counters
            .sent
            .fetch_add(full.len() as u64, Ordering::Relaxed);
        to.send(full)
            .await
            .map_err(|_| anyhow::anyhow!("delivery collector stopped early"))
    }

    async fn run(self) -> anyhow::Result<TaskOutcome> {
        let (deliveries, queue) = mpsc::channel(DELIVERY_QUEUE_CHUNKS_MAX);
        let collector = tokio::spawn(collect(
            queue,
            self.counters.clone(),
            self.options.message_bytes as u64,
            self.started + self.options.warmup,
        ));
        let deadline = match self.options.bound {
            RunBound::Duration(d) => self.started + d.min(self.options.duration_max),
            RunBound::Messages(_) => self.started + self.options.duration_max,
        };
        // Each producer sends its share of the rate, evenly spaced.
        let interval = match self.options.rate_per_second.filter(|rate| *rate > 0.0) {
            Some(rate) => Some(
                Duration::try_from_secs_f64(self.options.producers as f64 / rate)
                    .map_err(|_| anyhow::anyhow!("--rate {rate} gives no usable send interval"))?,
            ),
            None => None,
        };
        // The next record's (topic, partition) slot, stepped per record: record i goes to
        // slot (index + i) mod (topics × partitions), with no division per record.
        let mut slot = Slot::start(
            self.index,
            self.options.partitions,
            self.options.topics.len(),
        );
        // Shared names: a record clones a pointer, not the topic name.
        let topics: Vec<Arc<str>> = self
            .options
            .topics
            .iter()
            .map(|t| t.as_str().into())
            .collect();
        let quota = self.quota();
        // Wall-clock time is derived from the monotonic reading each record takes anyway:
        // a clock read per record is what the sending loop costs most after the record
        // itself (`__vdso_clock_gettime` was 5 % of this process, two to three reads per
        // record: the send time, the stamp, the producer's CreateTime).
        let (wall_base_us, instant_base) = (crate::consume::now_us(), Instant::now());
        let mut sent = 0u64;
        let mut chunk = Vec::with_capacity(DELIVERY_CHUNK_RECORDS);
        // The last clock reading and how many records have used it (see
        // `CLOCK_READ_EVERY_RECORDS`); `None` after anything that may have waited.
        let mut clock: Option<(Instant, u64)> = None;
        while sent < quota {
            if let Some(interval) = interval {
                let due = self.started + interval.mul_f64(sent as f64);
                if due > Instant::now() {
                    self.hand_over(&deliveries, &mut chunk).await?;
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            // One clock read serves the deadline, the latency start, the stamp and the
            // record's timestamp — of this record, or at full speed of the next few too.
            let sent_at = match clock {
                Some((read_at, uses)) if interval.is_none() && uses < CLOCK_READ_EVERY_RECORDS => {
                    clock = Some((read_at, uses + 1));
                    read_at
                }
                _ => {
                    let now = Instant::now();
                    clock = Some((now, 1));
                    now
                }
            };
            if sent_at >= deadline {
                break;
            }
            let since_base_us = sent_at.saturating_duration_since(instant_base).as_micros();
            let wall_us = wall_base_us.saturating_add(since_base_us as u64);
            let topic = &topics[slot.topic];
            let partition = slot.partition;
            slot.step();
            let value = match self.options.stamp_send_time {
                true => stamped(&self.payload, wall_us),
                false => self.payload.clone(),
            };
            let record =
                ProducerRecord::new(topic.clone(), value).with_timestamp((wall_us / 1000) as i64);
            let record = match self.options.round_robin {
                true => record.with_partition(partition),
                false => record,
            };
            let mut send = std::pin::pin!(self.producer.send(record));
            let delivery = match futures::poll!(&mut send) {
                Poll::Ready(delivery) => delivery?,
                Poll::Pending => {
                    // Waiting for buffer room: the next record reads the clock again.
                    clock = None;
                    send.await?
                }
            };
            sent += 1;
            chunk.push((sent_at, delivery));
            if chunk.len() >= DELIVERY_CHUNK_RECORDS {
                self.hand_over(&deliveries, &mut chunk).await?;
                clock = None;
            }
        }
        self.hand_over(&deliveries, &mut chunk).await?;
        drop(deliveries);
        // The wait for the last acknowledgements is bounded too: past `duration_max` plus a
        // grace, the producer is dropped, which completes every record still queued with
        // `Closed` (counted as failed), so the collector ends.
        let flush_bound = deadline.saturating_duration_since(Instant::now()) + FLUSH_GRACE;
        let flushed = tokio::time::timeout(flush_bound, self.producer.flush()).await;
        drop(self.producer);
        let mut outcome = collector.await?;
        match flushed {
            Ok(result) => result?,
            Err(_) => {
                let error = format!("the final flush did not finish within {flush_bound:?}");
                outcome.first_error.get_or_insert(error);
            }
        }
        Ok(outcome)
    }
}

/// A producer's place in the round over topics × partitions.
#[derive(Debug, PartialEq, Eq)]
struct Slot {
    topic: usize,
    partition: i32,
    partitions: i32,
    topics: usize,
}

impl Slot {
    /// Slot `index` of `topics` × `partitions` (each at least 1), wrapping.
    fn start(index: usize, partitions: i32, topics: usize) -> Slot {
        let (partitions, topics) = (partitions.max(1), topics.max(1));
        let per_topic = partitions as usize;
        let slot = index % (per_topic * topics);
        Slot {
            topic: slot / per_topic,
            partition: (slot % per_topic) as i32,
            partitions,
            topics,
        }
    }

    fn step(&mut self) {
        self.partition += 1;
        if self.partition >= self.partitions {
            self.partition = 0;
            self.topic += 1;
            if self.topic >= self.topics {
                self.topic = 0;
            }
        }
    }
}

type Deliveries = Vec<(Instant, DeliveryFuture)>;

/// A copy of `payload` (at least 8 bytes) with `wall_us` (µs since the epoch) in its first
/// 8 bytes.
fn stamped(payload: &Bytes, wall_us: u64) -> Bytes {
    let mut value = bytes::BytesMut::from(payload.as_ref());
    value[..8].copy_from_slice(&wall_us.to_be_bytes());
    value.freeze()
}

/// Awaits deliveries in send order and records each one's latency as send → the moment its
/// batch was acknowledged ([`DeliveryFuture::completed_at`]), so noticing a completion late
/// (behind an earlier record of a slower partition) does not inflate it. In-order waiting
/// costs a slot in a chunk per record instead of a future-set entry and a wake-up per
/// record; the shared counters move once per chunk.
/// Only records sent at or after `timed_from` are timed (the rest are the warm-up).
async fn collect(
    mut queue: mpsc::Receiver<Deliveries>,
    counters: Arc<Counters>,
    message_bytes: u64,
    timed_from: Instant,
) -> TaskOutcome {
    let mut latency = Histogram::new();
    let mut first_error = None;
    while let Some(chunk) = queue.recv().await {
        let (mut acked, mut failed) = (0u64, 0u64);
        for (sent_at, mut delivery) in chunk {
            match (&mut delivery).await {
                Ok(_) => {
                    if sent_at >= timed_from {
                        let acked_at = delivery.completed_at().unwrap_or_else(Instant::now);
                        let elapsed = acked_at.saturating_duration_since(sent_at);
                        latency.record(elapsed.as_micros() as u64);
                    }
                    acked += 1;
                }
                Err(error) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
        counters.acked.fetch_add(acked, Ordering::Relaxed);
        counters
            .bytes_acked
            .fetch_add(acked * message_bytes, Ordering::Relaxed);
        counters.failed.fetch_add(failed, Ordering::Relaxed);
    }
    TaskOutcome {
        latency,
        first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stepping visits the slots in the order `(index + i) mod slots` would, wrapping over
    /// partitions, then topics.
    #[test]
    fn slots_step_as_the_modulo_would() {
        for (index, partitions, topics) in
            [(0usize, 8i32, 1usize), (3, 4, 3), (11, 1, 5), (7, 3, 2)]
        {
            let per_topic = partitions as usize;
            let slots = per_topic * topics;
            let mut slot = Slot::start(index, partitions, topics);
            for i in 0..3 * slots {
                let expected = (index + i) % slots;
                assert_eq!(slot.topic, expected / per_topic, "{index} {i}");
                assert_eq!(slot.partition as usize, expected % per_topic, "{index} {i}");
                slot.step();
            }
        }
    }
}
