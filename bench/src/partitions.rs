//! The `partitions` workload: many topics × partitions fan-in, in four timed steps against
//! one broker:
//!
//! 1. **baseline**: the produce options on one topic of `baseline_partitions` (8);
//! 2. **create** the T × P fan-in partitions in bounded requests ([`crate::topics`]);
//! 3. **touch**: one message to every partition, so that each is open, then
//!    `idle_duration` without traffic and the broker's resident memory (`VmRSS`);
//! 4. **fan-in**: the same produce options over all T × P partitions.
//!
//! The fan-in throughput is reported as a ratio to the baseline of the same run (issue 8:
//! 1 000 partitions ≥ 0.7 × the 8-partition figure; 10 000 partitions open, idle broker
//! RSS < 300 MiB). RSS needs the broker's pid: the spawned broker's, or `--broker-pid`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::broker::rss_bytes;
use crate::produce::{self, ProduceOptions, ProduceReport, RunBound};
use crate::topics::{create_topics, partitions_written};

/// How the workload runs besides the produce options.
#[derive(Debug, Clone)]
pub struct PartitionsOptions {
    /// The baseline topic (created with `baseline_partitions`).
    pub baseline_topic: String,
    pub baseline_partitions: i32,
    /// Creating the fan-in topics must finish within this.
    pub create_duration_max: Duration,
    /// Quiet time between the touch and the RSS reading.
    pub idle_duration: Duration,
    /// Each produce step (baseline, touch, fan-in), delivery of everything sent included,
    /// must end within this: `--seconds-max` only stops the sending, and with thousands of
    /// partitions the wait for the last acknowledgements can be far longer.
    pub phase_duration_max: Duration,
    /// The broker process whose RSS is read; `None`: no RSS check.
    pub broker_pid: Option<u32>,
}

/// What the workload measured besides the fan-in produce (which is the report's `produce`).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionsReport {
    /// Topics × partitions of the fan-in.
    pub partitions_total: u64,
    pub create_seconds: f64,
    pub create_requests: u64,
    /// Fan-in partitions holding a record after the touch (all of them, or the run fails).
    pub partitions_written: u64,
    pub touch_seconds: f64,
    pub baseline_partitions: i32,
    pub baseline: ProduceReport,
    /// Fan-in produce bytes/s ÷ baseline produce bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_baseline: Option<f64>,
    /// Why the fan-in step failed (e.g. `--phase-seconds-max`); the steps before it are
    /// still reported, and the run exits non-zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fan_in_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss: Option<BrokerRss>,
}

/// The broker's resident memory (`VmRSS`) at three points of the run, in MiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BrokerRss {
    pub pid: u32,
    /// When the workload began (right after start-up for a spawned broker).
    pub start_mib: f64,
    /// Every fan-in partition open, after `idle_seconds` without traffic.
    pub idle_mib: f64,
    pub idle_seconds: f64,
    /// Right after the fan-in produce (or its failure).
    pub after_produce_mib: f64,
}

/// Runs the four steps; `produce.topics` / `produce.partitions` are the fan-in. A failed
/// fan-in step (the slowest) is reported in `fan_in_error` with no fan-in produce report,
/// so that the RSS measured before it is not lost; an earlier failure is an error.
pub async fn run(
    bootstrap: &str,
    produce: &ProduceOptions,
    options: &PartitionsOptions,
) -> anyhow::Result<(Option<ProduceReport>, PartitionsReport)> {
    anyhow::ensure!(
        options.baseline_partitions > 0,
        "--baseline-partitions must be > 0"
    );
    let rss_start = options.broker_pid.map(rss_mib).transpose()?;
    let create_deadline = Instant::now() + options.create_duration_max;

    let baseline_topics = vec![options.baseline_topic.clone()];
    create_topics(
        bootstrap,
        &baseline_topics,
        options.baseline_partitions,
        create_deadline,
    )
    .await?;
    let baseline_options = ProduceOptions {
        topics: baseline_topics,
        partitions: options.baseline_partitions,
        ..produce.clone()
    };
    let baseline = bounded(
        "baseline",
        options,
        produce::run(bootstrap, &baseline_options),
    )
    .await?;

    let created = Instant::now();
    let create_requests = create_topics(
        bootstrap,
        &produce.topics,
        produce.partitions,
        create_deadline,
    )
    .await?;
    let create_seconds = created.elapsed().as_secs_f64();

    let (touch_seconds, partitions_written, partitions_total) =
        bounded("touch", options, touch(bootstrap, produce)).await?;
    tokio::time::sleep(options.idle_duration).await;
    let rss_idle = options.broker_pid.map(rss_mib).transpose()?;

    let fan_in = bounded("fan-in", options, produce::run(bootstrap, produce)).await;
    let rss_after = options.broker_pid.map(rss_mib).transpose()?;

    let broker_rss = match (options.broker_pid, rss_start, rss_idle, rss_after) {
        (Some(pid), Some(start_mib), Some(idle_mib), Some(after_produce_mib)) => Some(BrokerRss {
            pid,
            start_mib,
            idle_mib,
            idle_seconds: options.idle_duration.as_secs_f64(),
            after_produce_mib,
        }),
        _ => None,
    };
    let (fan_in, fan_in_error) = match fan_in {
        Ok(fan_in) => (Some(fan_in), None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    let ratio_to_baseline = fan_in
        .as_ref()
        .filter(|_| baseline.bytes_per_second > 0.0)
        .map(|f| f.bytes_per_second / baseline.bytes_per_second);
    let report = PartitionsReport {
        partitions_total,
        create_seconds,
        create_requests,
        partitions_written,
        touch_seconds,
        baseline_partitions: options.baseline_partitions,
        baseline,
        ratio_to_baseline,
        fan_in_error,
        broker_rss,
    };
    Ok((fan_in, report))
}

/// Sends one message to every fan-in partition (one producer round-robins over them) and
/// counts the partitions that now hold a record. Returns (seconds, written, total).
async fn touch(bootstrap: &str, produce: &ProduceOptions) -> anyhow::Result<(f64, u64, u64)> {
    let slots = u64::try_from(produce.partitions)?.saturating_mul(produce.topics.len() as u64);
    let started = Instant::now();
    let touched = produce::run(
        bootstrap,
        &ProduceOptions {
            producers: 1,
            // Each record addressed to the next partition: one message per partition.
            round_robin: true,
            bound: RunBound::Messages(slots),
            rate_per_second: None,
            progress: false,
            ..produce.clone()
        },
    )
    .await?;
    anyhow::ensure!(
        touched.messages_acked == slots,
        "partitions: {} of {slots} one-per-partition messages acknowledged; first error: {}",
        touched.messages_acked,
        touched.first_error.as_deref().unwrap_or("none")
    );
    let seconds = started.elapsed().as_secs_f64();
    let (written, total) = partitions_written(bootstrap, &produce.topics).await?;
    Ok((seconds, written, total))
}

/// `step` or an error once `options.phase_duration_max` has passed.
async fn bounded<T>(
    step: &str,
    options: &PartitionsOptions,
    step_future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let bound = options.phase_duration_max;
    tokio::time::timeout(bound, step_future)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "partitions: the {step} step did not finish within --phase-seconds-max ({} s)",
                bound.as_secs_f64()
            )
        })?
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(rss_bytes(pid)? as f64 / (1 << 20) as f64)
}
