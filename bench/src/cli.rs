//! The `runnel-bench` command line: argument types and the dispatch of each subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use runnel_client::admin::NewTopic;
use runnel_client::{Acks, Admin, ClientConfig, Compression};

use crate::broker::{default_broker_binary, SpawnedBroker};
use crate::consume::{self, ConsumeOptions};
use crate::e2e;
use crate::probe::{self, ProbeBounds};
use crate::produce::{self, ProduceOptions, RunBound};
use crate::report::{Probes, Report};

#[derive(Debug, Parser)]
#[command(
    name = "runnel-bench",
    version,
    about = "Runnel benchmark and machine-limit probes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N producers send to a P-partition topic; msgs/s, MiB/s and publish latency.
    ///
    /// Example: runnel-bench produce --spawn-broker --partitions 8 --seconds 10 --probe
    Produce {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
    },
    /// Fills a topic (the produce options), then N consumers read it all back (catch-up).
    ///
    /// Example: runnel-bench consume --spawn-broker --messages 1000000 --consumers 1 --probe
    Consume {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Producers at a fixed --rate and consumers together; end-to-end latency.
    ///
    /// Example: runnel-bench e2e --spawn-broker --rate 50000 --seconds 10
    E2e {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Measure this machine's limits: loopback TCP, file write (page cache), write + fsync.
    ///
    /// Example: runnel-bench probe --dir ./data --chunk-bytes 1048576 --seconds 3
    Probe {
        /// Directory on the disk under test (the broker's data directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Bytes per write (use the workload's request or batch size).
        #[arg(long, default_value_t = 1 << 20)]
        chunk_bytes: usize,
        /// Upper bound on each probe's bytes.
        #[arg(long, default_value_t = 4 << 30)]
        total_bytes_max: u64,
        /// Upper bound on each probe's time, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Which broker, which topic, and what to print.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Kafka bootstrap address (ignored with --spawn-broker).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Run a runnel-broker child process for this run (temp data dir, free loopback ports).
    #[arg(long)]
    spawn_broker: bool,
    /// The broker binary for --spawn-broker [default: runnel-broker next to this executable,
    /// else on PATH].
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Topic to use; created with --partitions if missing [default: a new runnel-bench-* topic].
    #[arg(long)]
    topic: Option<String>,
    /// Also run the limit probes (chunk = --batch-bytes) and print throughput as ratios.
    #[arg(long)]
    probe: bool,
    /// Each probe's time bound, in seconds.
    #[arg(long, default_value_t = 2.0)]
    probe_seconds: f64,
    /// Directory for the file probes [default: the spawned broker's data dir, else "."].
    #[arg(long)]
    probe_dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AcksArg {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all")]
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// How the consumers read.
#[derive(Debug, Args)]
struct ConsumeArgs {
    /// Consumers reading the topic (each assigned every N-th partition).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// The consumer's per-partition fetch size, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    fetch_bytes: i32,
    /// Upper bound on the whole read, in seconds.
    #[arg(long, default_value_t = 120.0)]
    consume_seconds_max: f64,
}

impl ConsumeArgs {
    fn options(&self, topics: &[String], progress: bool) -> ConsumeOptions {
        ConsumeOptions {
            topics: topics.to_vec(),
            consumers: self.consumers,
            duration_max: Duration::from_secs_f64(self.consume_seconds_max.max(0.0)),
            fetch_bytes: self.fetch_bytes,
            progress,
        }
    }
}

/// Which workload a run is.
enum Workload<'a> {
    Produce,
    Consume(&'a ConsumeArgs),
    E2e(&'a ConsumeArgs),
}

impl Workload<'_> {
    fn name(&self) -> &'static str {
        match self {
            Workload::Produce => "produce",
            Workload::Consume(_) => "consume",
            Workload::E2e(_) => "e2e",
        }
    }
}

/// What the producers send.
#[derive(Debug, Args)]
struct ProduceArgs {
    /// Producer tasks, one client (connection) each.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Topics to spread the records over (fan-in: e.g. `--topics 10 --partitions 10`).
    #[arg(long, default_value_t = 1)]
    topics: usize,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Address every record to the next partition in turn (the worst case for batching)
    /// instead of leaving keyless records to the producer's sticky partitioner, which fills
    /// one partition's batch before moving on (Kafka's default, and what OpenMessaging
    /// Benchmark measures).
    #[arg(long)]
    round_robin: bool,
    #[arg(long, default_value_t = 1000)]
    message_bytes: usize,
    #[arg(long, value_enum, default_value = "1")]
    acks: AcksArg,
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Producer batch size in bytes (also the probes' chunk size).
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// How long a producer batch waits for more records (OpenMessaging Benchmark's Kafka
    /// driver uses 1 ms; a full batch goes at once regardless).
    #[arg(long, default_value_t = 1)]
    linger_ms: u64,
    /// Messages to send in total [default: 100000 unless --seconds is given].
    #[arg(long, conflicts_with = "seconds")]
    messages: Option<u64>,
    /// Send for this many seconds instead of a message count.
    #[arg(long)]
    seconds: Option<f64>,
    /// Target messages per second over all producers [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
    /// Sending stops after this many seconds whatever the bound; a --messages run that
    /// stops early fails.
    #[arg(long, default_value_t = 600.0)]
    seconds_max: f64,
}

impl ProduceArgs {
    fn options(&self, topics: &[String], progress: bool) -> ProduceOptions {
        let bound = match (self.messages, self.seconds) {
            (_, Some(seconds)) => RunBound::Duration(Duration::from_secs_f64(seconds.max(0.0))),
            (messages, None) => RunBound::Messages(messages.unwrap_or(100_000)),
        };
        ProduceOptions {
            topics: topics.to_vec(),
            producers: self.producers,
            partitions: self.partitions,
            round_robin: self.round_robin,
            message_bytes: self.message_bytes,
            acks: match self.acks {
                AcksArg::None => Acks::None,
                AcksArg::Leader => Acks::Leader,
                AcksArg::All => Acks::All,
            },
            compression: match self.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Snappy => Compression::Snappy,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Zstd => Compression::Zstd,
            },
            batch_bytes: self.batch_bytes,
            linger_ms: self.linger_ms,
            bound,
            rate_per_second: self.rate,
            duration_max: Duration::from_secs_f64(self.seconds_max.max(0.0)),
            progress,
            stamp_send_time: false,
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Produce { target, produce } => {
            runtime.block_on(run_workload(Workload::Produce, &target, &produce))
        }
        Command::Consume {
            target,
            produce,
            consume,
        } => runtime.block_on(run_workload(Workload::Consume(&consume), &target, &produce)),
        Command::E2e {
            target,
            produce,
            consume,
        } => runtime.block_on(run_workload(Workload::E2e(&consume), &target, &produce)),
        Command::Probe {
            dir,
            chunk_bytes,
            total_bytes_max,
            seconds,
            json,
        } => {
            let bounds = ProbeBounds {
                chunk_bytes,
                total_bytes_max,
                duration_max: Duration::from_secs_f64(seconds.max(0.01)),
            };
            let results = [
                ("loopback_tcp", probe::loopback_tcp(bounds)?),
                ("file_write", probe::file_write(&dir, bounds)?),
                ("file_write_fsync", probe::file_write_fsync(&dir, bounds)?),
            ];
            probe::print_results(&results, chunk_bytes, json)
        }
    }
}

/// Produces (and for `consume`, reads back), then probes; fails when messages were lost.
async fn run_workload(
    workload: Workload<'_>,
    target: &TargetArgs,
    produce: &ProduceArgs,
) -> anyhow::Result<()> {
    let spawned = match target.spawn_broker {
        true => {
            let binary = target
                .broker_bin
                .clone()
                .unwrap_or_else(default_broker_binary);
            Some(SpawnedBroker::start(&binary)?)
        }
        false => None,
    };
    let bootstrap = spawned
        .as_ref()
        .map_or(target.bootstrap.clone(), |b| b.bootstrap().to_owned());
    let topic = target.topic.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("runnel-bench-{}-{nanos}", std::process::id())
    });
    // One topic keeps its name; more get `-0`, `-1`, … appended.
    let topics: Vec<String> = match produce.topics {
        0 | 1 => vec![topic.clone()],
        n => (0..n).map(|i| format!("{topic}-{i}")).collect(),
    };
    ensure_topics(&bootstrap, &topics, produce.partitions).await?;
    let mut report = Report {
        workload: workload.name(),
        bootstrap: bootstrap.clone(),
        topic: topics[0].clone(),
        topics: topics.len(),
        partitions: produce.partitions,
        message_bytes: produce.message_bytes,
        produce: None,
        consume: None,
        probes: None,
        ratios: None,
    };
    let produce_options = produce.options(&topics, !target.quiet);
    match workload {
        Workload::Produce => {
            report.produce = Some(produce::run(&bootstrap, &produce_options).await?);
        }
        Workload::Consume(consume) => {
            report.produce = Some(produce::run(&bootstrap, &produce_options).await?);
            let options = consume.options(&topics, !target.quiet);
            report.consume = Some(consume::run(&bootstrap, &options).await?);
        }
        Workload::E2e(consume) => {
            let options = consume.options(&topics, !target.quiet);
            let (produced, consumed) = e2e::run(&bootstrap, &produce_options, &options).await?;
            report.produce = Some(produced);
            report.consume = Some(consumed);
        }
    }
    if target.probe {
        let dir = target
            .probe_dir
            .clone()
            .or_else(|| spawned.as_ref().map(|b| b.data_dir().to_owned()))
            .unwrap_or_else(|| PathBuf::from("."));
        let duration = Duration::from_secs_f64(target.probe_seconds.max(0.01));
        report.probes = Some(Probes::measure(&dir, produce.batch_bytes, duration)?);
        report.compute_ratios();
    }
    report.print(target.json)?;
    verify(
        &report,
        produce.messages.filter(|_| produce.seconds.is_none()),
    )
}

/// Creates each of `topics` that does not exist yet.
async fn ensure_topics(bootstrap: &str, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let mut missing = Vec::new();
    for topic in topics {
        if admin.describe_topic(topic).await.is_err() {
            missing.push(NewTopic::new(topic, partitions));
        }
    }
    if !missing.is_empty() {
        admin.create_topics(&missing).await?;
    }
    Ok(())
}

/// The run fails (non-zero exit) when a send failed, fewer than `messages_requested` were
/// sent (--seconds-max stopped it), or a sent message was not read back.
fn verify(report: &Report, messages_requested: Option<u64>) -> anyhow::Result<()> {
    if let (Some(p), Some(requested)) = (&report.produce, messages_requested) {
        anyhow::ensure!(
            p.messages_sent == requested,
            "produce: --seconds-max stopped the run after {} of {requested} messages",
            p.messages_sent
        );
    }
    if let Some(p) = &report.produce {
        anyhow::ensure!(
            p.messages_failed == 0 && p.messages_acked == p.messages_sent,
            "produce: {} sent, {} acknowledged, {} failed",
            p.messages_sent,
            p.messages_acked,
            p.messages_failed
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
