//! The `consume` workload: a catch-up read of a filled topic by N consumers, each assigned
//! (no group) an equal share of the partitions, from the earliest offset to the end offset
//! the topic had when the read began. Counts every record so the run can prove that all
//! messages sent were received.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::{Admin, ClientConfig, Consumer, ConsumerConfig, OffsetReset, TopicPartition};
use serde::Serialize;

use crate::produce::{per_second, Counters};
use crate::progress::Progress;

/// What `consume` reads and how.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub topic: String,
    pub consumers: usize,
    /// The whole read must finish within this, or the report says `complete: false`.
    pub duration_max: Duration,
    /// The consumer's `partition_fetch_bytes_max`.
    pub fetch_bytes: i32,
    pub progress: bool,
}

/// The result of one `consume` run.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeReport {
    /// Records between the earliest and end offsets when the read began.
    pub messages_expected: u64,
    pub messages_received: u64,
    /// Value bytes received.
    pub bytes_received: u64,
    /// Every partition was read up to its end offset.
    pub complete: bool,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
}

/// Catch-up reads `options.topic` from `bootstrap`.
pub async fn run(bootstrap: &str, options: &ConsumeOptions) -> anyhow::Result<ConsumeReport> {
    anyhow::ensure!(options.consumers > 0, "--consumers must be > 0");
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let partitions = admin.partitions(&options.topic).await?;
    let earliest = admin.list_offsets(&partitions, EARLIEST).await?;
    let ends = admin.list_offsets(&partitions, LATEST).await?;
    let messages_expected = partitions
        .iter()
        .map(|tp| {
            let end = ends.get(tp).copied().unwrap_or(0);
            let start = earliest.get(tp).copied().unwrap_or(0);
            end.saturating_sub(start).max(0) as u64
        })
        .sum();
    let counters = Arc::new(Counters::default());
    let progress = options
        .progress
        .then(|| Progress::start("consume", counters.clone()));
    let started = Instant::now();
    let deadline = started + options.duration_max;
    let mut tasks = Vec::with_capacity(options.consumers);
    for share in 0..options.consumers {
        // Partitions i, i + N, i + 2N, … go to consumer i.
        let targets: BTreeMap<TopicPartition, i64> = partitions
            .iter()
            .skip(share)
            .step_by(options.consumers)
            .map(|tp| (tp.clone(), ends.get(tp).copied().unwrap_or(0)))
            // A partition with nothing between its earliest and end offset is already read.
            .filter(|(tp, end)| *end > earliest.get(tp).copied().unwrap_or(0))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let config = consumer_config(bootstrap, options);
        tasks.push(tokio::spawn(read_to_end(
            config,
            targets,
            deadline,
            counters.clone(),
        )));
    }
    let mut complete = true;
    for task in tasks {
        complete &= task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(progress);
    let messages_received = counters.acked.load(Ordering::Relaxed);
    let bytes_received = counters.bytes_acked.load(Ordering::Relaxed);
    Ok(ConsumeReport {
        messages_expected,
        messages_received,
        bytes_received,
        complete,
        seconds,
        messages_per_second: per_second(messages_received as f64, seconds),
        bytes_per_second: per_second(bytes_received as f64, seconds),
    })
}

fn consumer_config(bootstrap: &str, options: &ConsumeOptions) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(bootstrap);
    config.auto_commit = false;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.partition_fetch_bytes_max = options.fetch_bytes.max(1);
    config.prefetch_bytes_max = (options.fetch_bytes.max(1) as usize).saturating_mul(2);
    // Large polls: the bench counts records, it does no per-record work.
    config.max_poll_records = 100_000;
    config
}

/// Reads every partition in `targets` up to its end offset (exclusive) or until `deadline`;
/// returns whether all were read to the end.
async fn read_to_end(
    config: ConsumerConfig,
    mut targets: BTreeMap<TopicPartition, i64>,
    deadline: Instant,
    counters: Arc<Counters>,
) -> anyhow::Result<bool> {
    let mut consumer = Consumer::new(config).await?;
    let partitions: Vec<TopicPartition> = targets.keys().cloned().collect();
    consumer.assign(&partitions)?;
    consumer.seek_to_beginning(&partitions).await?;
    while !targets.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let records = consumer
            .poll((deadline - now).min(Duration::from_millis(500)))
            .await?;
        let (mut count, mut bytes) = (0u64, 0u64);
        for record in &records {
            let tp = TopicPartition::new(&record.topic, record.partition);
            let Some(end) = targets.get(&tp).copied() else {
                continue; // already read to the end: records past it are not counted
            };
            if record.offset >= end {
                continue;
            }
            count += 1;
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
            if record.offset + 1 >= end {
                targets.remove(&tp);
            }
        }
        counters.acked.fetch_add(count, Ordering::Relaxed);
        counters.bytes_acked.fetch_add(bytes, Ordering::Relaxed);
    }
    Ok(true)
}
