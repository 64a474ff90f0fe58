//! The run of one workload: the broker (spawned or `--bootstrap`), the topics, the
//! workload itself, the probes, the report, and the checks that make a run fail (non-zero
//! exit) when a message was lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::broker::{default_broker_binary, SpawnedBroker};
use crate::cli::{seconds_arg, ConsumeArgs, E2eArgs, PartitionsArgs, ProduceArgs, TargetArgs};
use crate::consume;
use crate::cpu::CpuClock;
use crate::e2e;
use crate::group;
use crate::omb::OmbPreset;
use crate::partitions::{self, PartitionsOptions};
use crate::produce::{self, ProduceOptions, ProduceReport, RunBound};
use crate::report::{MaxRate, Probes, ProducerSettings, Report};
use crate::topics::create_topics;

/// Which workload a run is.
#[derive(Clone, Copy)]
pub(crate) enum Workload<'a> {
    Produce,
    Consume(&'a ConsumeArgs),
    E2e(&'a ConsumeArgs, &'a E2eArgs),
    Partitions(&'a PartitionsArgs),
    Omb(OmbPreset, &'a ConsumeArgs),
}

impl Workload<'_> {
    fn name(&self) -> &'static str {
        match self {
            Workload::Produce => "produce",
            Workload::Consume(_) => "consume",
            Workload::E2e(..) => "e2e",
            Workload::Partitions(_) => "partitions",
            Workload::Omb(..) => "omb",
        }
    }
}

/// `<prefix>-<pid>-<nanoseconds>`: a name no earlier run used.
pub(crate) fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs `workload`, then the probes; prints the report; fails when messages were lost.
pub(crate) async fn run_workload(
    workload: Workload<'_>,
    target: &TargetArgs,
    produce: &ProduceArgs,
) -> anyhow::Result<()> {
    if target.probe {
        // The workload starts on a settled disk, as each file probe does.
        crate::probe::settle_disk();
    }
    let spawned = match target.spawn_broker {
        true => {
            let binary = target
                .broker_bin
                .clone()
                .unwrap_or_else(default_broker_binary);
            Some(SpawnedBroker::start(&binary, &target.broker_args)?)
        }
        false => None,
    };
    let bootstrap = spawned
        .as_ref()
        .map_or(target.bootstrap.clone(), |b| b.bootstrap().to_owned());
    let topic = target
        .topic
        .clone()
        .unwrap_or_else(|| unique_name("runnel-bench"));
    // One topic keeps its name; more get `-0`, `-1`, … appended.
    let topics: Vec<String> = match produce.topics {
        0 | 1 => vec![topic.clone()],
        n => (0..n).map(|i| format!("{topic}-{i}")).collect(),
    };
    let create_deadline = Instant::now() + seconds_arg(target.create_seconds_max);
    let produce_options = produce.options(&topics, !target.quiet);
    let mut report = Report {
        workload: workload.name(),
        preset: None,
        bootstrap: bootstrap.clone(),
        topic: topics[0].clone(),
        topics: topics.len(),
        partitions: produce.partitions,
        message_bytes: produce.message_bytes,
        producer: ProducerSettings::of(&produce::producer_config(&bootstrap, &produce_options)),
        produce: None,
        consume: None,
        fan_in: None,
        max_rate: None,
        probes: None,
        ratios: None,
        cpu: Vec::new(),
    };
    let broker_pid = spawned
        .as_ref()
        .map(SpawnedBroker::pid)
        .or(target.broker_pid);
    match workload {
        Workload::Produce => {
            create_topics(&bootstrap, &topics, produce.partitions, create_deadline).await?;
            let clock = CpuClock::start(broker_pid);
            let produced = produce::run(&bootstrap, &produce_options).await?;
            report.cpu.push(clock.stop("produce", produced.bytes_acked));
            report.produce = Some(produced);
        }
        Workload::Consume(consume) => {
            create_topics(&bootstrap, &topics, produce.partitions, create_deadline).await?;
            let clock = CpuClock::start(broker_pid);
            let produced = produce::run(&bootstrap, &produce_options).await?;
            report.cpu.push(clock.stop("produce", produced.bytes_acked));
            report.produce = Some(produced);
            let options = consume.options(&topics, !target.quiet);
            let clock = CpuClock::start(broker_pid);
            let consumed = match &options.group_id {
                Some(group_id) => group::run(&bootstrap, &options, group_id).await?,
                None => consume::run(&bootstrap, &options).await?,
            };
            report
                .cpu
                .push(clock.stop("consume", consumed.bytes_received));
            report.consume = Some(consumed);
        }
        Workload::E2e(consume, e2e_args) => {
            create_topics(&bootstrap, &topics, produce.partitions, create_deadline).await?;
            let mut produce_options = produce_options;
            if let Some(percent) = e2e_args.rate_percent_of_max {
                let max_topics: Vec<String> = topics.iter().map(|t| format!("{t}-max")).collect();
                create_topics(&bootstrap, &max_topics, produce.partitions, create_deadline).await?;
                let max_produce = ProduceOptions {
                    bound: RunBound::Duration(seconds_arg(e2e_args.max_seconds)),
                    rate_per_second: None,
                    warmup: Duration::ZERO,
                    ..produce.options(&max_topics, !target.quiet)
                };
                let max_consume =
                    alongside(consume.options(&max_topics, !target.quiet), &max_produce);
                let (produced, consumed) =
                    e2e::run_at_any_rate(&bootstrap, &max_produce, &max_consume).await?;
                let max_rate = MaxRate::of(percent, &max_topics[0], &produced, &consumed)?;
                produce_options.rate_per_second = Some(max_rate.rate_per_second);
                report.max_rate = Some(max_rate);
            }
            let options = alongside(consume.options(&topics, !target.quiet), &produce_options);
            let clock = CpuClock::start(broker_pid);
            let (produced, consumed) = e2e::run(&bootstrap, &produce_options, &options).await?;
            report.cpu.push(clock.stop("e2e", produced.bytes_acked));
            report.produce = Some(produced);
            report.consume = Some(consumed);
        }
        Workload::Omb(preset, consume) => {
            report.preset = Some(preset.name());
            create_topics(&bootstrap, &topics, produce.partitions, create_deadline).await?;
            let options = alongside(consume.options(&topics, !target.quiet), &produce_options);
            let clock = CpuClock::start(broker_pid);
            let (produced, consumed) =
                e2e::run_at_any_rate(&bootstrap, &produce_options, &options).await?;
            report.cpu.push(clock.stop("e2e", produced.bytes_acked));
            report.produce = Some(produced);
            report.consume = Some(consumed);
        }
        Workload::Partitions(args) => {
            let options = PartitionsOptions {
                baseline_topic: format!("{topic}-baseline"),
                baseline_partitions: args.baseline_partitions,
                create_duration_max: create_deadline.saturating_duration_since(Instant::now()),
                idle_duration: seconds_arg(args.idle_seconds),
                phase_duration_max: seconds_arg(args.phase_seconds_max),
                broker_pid,
            };
            let (fan_in, fan_in_report) =
                partitions::run(&bootstrap, &produce_options, &options).await?;
            report.produce = fan_in;
            report.fan_in = Some(fan_in_report);
        }
    }
    if target.probe {
        let dir = target
            .probe_dir
            .clone()
            .or_else(|| spawned.as_ref().map(|b| b.data_dir().to_owned()))
            .unwrap_or_else(|| PathBuf::from("."));
        let duration = seconds_arg(target.probe_seconds).max(Duration::from_millis(10));
        report.probes = Some(Probes::measure(&dir, produce.batch_bytes, duration)?);
        report.compute_ratios();
    }
    report.print(target.json)?;
    verify(
        &report,
        produce.messages.filter(|_| produce.seconds.is_none()),
    )
}

/// The run fails (non-zero exit) when a send failed, fewer than `messages_requested` were
/// sent (--seconds-max stopped it), a sent message was not read back, or (`partitions`) a
/// partition was left without a record.
fn verify(report: &Report, messages_requested: Option<u64>) -> anyhow::Result<()> {
    if let Some(p) = &report.produce {
        verify_produce("produce", p, messages_requested)?;
    }
    if let Some(f) = &report.fan_in {
        if let Some(error) = &f.fan_in_error {
            anyhow::bail!("{error}");
        }
        verify_produce("baseline", &f.baseline, messages_requested)?;
        anyhow::ensure!(
            f.partitions_written == f.partitions_total,
            "partitions: {} of {} partitions hold a record after one message to each",
            f.partitions_written,
            f.partitions_total
        );
    }
    if let (Some(p), Some(c)) = (&report.produce, &report.consume) {
        anyhow::ensure!(
            c.complete && c.messages_received == c.messages_expected,
            "consume: {} of {} expected messages received",
            c.messages_received,
            c.messages_expected
        );
        anyhow::ensure!(
            c.messages_received >= p.messages_acked,
            "consume: {} received but {} were acknowledged",
            c.messages_received,
            p.messages_acked
        );
    }
    Ok(())
}

fn verify_produce(
    phase: &str,
    p: &ProduceReport,
    messages_requested: Option<u64>,
) -> anyhow::Result<()> {
    if let Some(requested) = messages_requested {
        anyhow::ensure!(
            p.messages_sent == requested,
            "{phase}: --seconds-max stopped the run after {} of {requested} messages",
            p.messages_sent
        );
    }
    anyhow::ensure!(
        p.messages_failed == 0 && p.messages_acked == p.messages_sent,
        "{phase}: {} sent, {} acknowledged, {} failed",
        p.messages_sent,
        p.messages_acked,
        p.messages_failed
    );
    Ok(())
}

/// The read bound of a workload whose consumers read while the producers send (e2e, omb):
/// `--consume-seconds-max` counts after the send's own bound (its `--seconds`, or
/// `--seconds-max` for a message count), so a send longer than it is not cut short by a
/// bound meant for the read's tail.
pub(crate) fn alongside(
    mut consume: consume::ConsumeOptions,
    produce: &ProduceOptions,
) -> consume::ConsumeOptions {
    let send = match produce.bound {
        RunBound::Duration(duration) => duration.min(produce.duration_max),
        RunBound::Messages(_) => produce.duration_max,
    };
    consume.duration_max = consume.duration_max.saturating_add(send);
    consume
}
