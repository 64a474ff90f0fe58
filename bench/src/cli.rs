//! The `runnel-bench` command line: argument types, their conversion to each workload's
//! options, and the dispatch of each subcommand (the run itself is [`crate::run`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use runnel_client::{Acks, Compression};

use crate::consume::ConsumeOptions;
use crate::omb::{OmbPreset, OMB_SECONDS_DEFAULT};
use crate::probe::{self, ProbeBounds};
use crate::produce::{ProduceOptions, RunBound};
use crate::run::{run_workload, Workload};

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
    /// Producers at a fixed --rate (or --rate-percent-of-max) and consumers together;
    /// end-to-end latency.
    ///
    /// Example: runnel-bench e2e --spawn-broker --rate-percent-of-max 50 --seconds 10
    E2e {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
        #[command(flatten)]
        e2e: E2eArgs,
    },
    /// Produce fan-in over --topics × --partitions as a ratio to an 8-partition baseline of
    /// the same run, and the broker's idle RSS with every partition open.
    ///
    /// Example: runnel-bench partitions --spawn-broker --partitions 1000 --seconds 5
    Partitions {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        partitions: PartitionsArgs,
    },
    /// An OpenMessaging Benchmark workload shape: e2e (producers and consumers together) on
    /// the preset's topics × partitions with 1 KiB messages, one producer and one consumer per
    /// topic, at max rate (or --rate) for 10 s (or --seconds / --messages).
    ///
    /// Example: runnel-bench omb 1-topic-100-partitions-1kb --spawn-broker --probe
    Omb {
        preset: OmbPreset,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Measure this machine's limits: loopback TCP, file write (page cache), write + fsync,
    /// and memory copies over working sets of 16 MiB, 256 MiB and 1 GiB.
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
pub(crate) struct TargetArgs {
    /// Kafka bootstrap address (ignored with --spawn-broker).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(crate) bootstrap: String,
    /// Run a runnel-broker child process for this run (temp data dir, free loopback ports).
    #[arg(long)]
    pub(crate) spawn_broker: bool,
    /// The broker binary for --spawn-broker [default: runnel-broker next to this executable,
    /// else on PATH].
    #[arg(long)]
    pub(crate) broker_bin: Option<PathBuf>,
    /// An extra flag for the spawned broker (repeatable), e.g.
    /// `--broker-arg=--group-initial-rebalance-delay-ms=0`.
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    pub(crate) broker_args: Vec<String>,
    /// Topic to use; created with --partitions if missing [default: a new runnel-bench-* topic].
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// Creating the run's topics must finish within this many seconds (10 000 partitions
    /// take a while).
    #[arg(long, default_value_t = 300.0)]
    pub(crate) create_seconds_max: f64,
    /// Also run the limit probes (chunk = --batch-bytes) and print throughput as ratios.
    #[arg(long)]
    pub(crate) probe: bool,
    /// Each probe's time bound, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) probe_seconds: f64,
    /// Directory for the file probes [default: the spawned broker's data dir, else "."].
    #[arg(long)]
    pub(crate) probe_dir: Option<PathBuf>,
    /// The broker's process id, with --bootstrap (--spawn-broker knows its child's): its
    /// CPU time per GB is reported beside this process's, and (`partitions`) its RSS.
    #[arg(long)]
    pub(crate) broker_pid: Option<u32>,
    /// Worker threads of this process's runtime [default: one per producer (per consumer
    /// too for `consume`), at most one per CPU]. The clients share the machine with the
    /// broker on loopback; see [`runtime`].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
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
#[derive(Debug, Clone, Args)]
pub(crate) struct ConsumeArgs {
    /// Consumers reading the topic (each assigned every N-th partition).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// `consume` only: the consumers join this consumer group (subscribe) instead of being
    /// assigned partitions [without a value: a new runnel-bench-* group]. Use a group
    /// with no committed offsets for the topic.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    group: Option<String>,
    /// The consumer's per-partition fetch size, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    fetch_bytes: i32,
    /// Upper bound on the whole read, in seconds (e2e and omb, which read while they send:
    /// on the read after the send's own bound).
    #[arg(long, default_value_t = 120.0)]
    consume_seconds_max: f64,
}

impl ConsumeArgs {
    pub(crate) fn options(&self, topics: &[String], progress: bool) -> ConsumeOptions {
        let group_id = self.group.as_ref().map(|group| match group.as_str() {
            "" => crate::run::unique_name("runnel-bench-group"),
            named => named.to_owned(),
        });
        ConsumeOptions {
            topics: topics.to_vec(),
            consumers: self.consumers,
            duration_max: seconds_arg(self.consume_seconds_max),
            fetch_bytes: self.fetch_bytes,
            progress,
            group_id,
        }
    }
}

/// The `e2e` workload's own options.
#[derive(Debug, Args)]
pub(crate) struct E2eArgs {
    /// Instead of --rate: first run producers and consumers together as fast as they go
    /// for --max-seconds (on topics of their own, named `<topic>-max`), then run at this
    /// percentage of the produce rate that run reached (e.g. 50 for "latency at 50 % of
    /// max throughput"). The max-rate run also warms the broker up.
    #[arg(long, conflicts_with = "rate", value_parser = percent)]
    pub(crate) rate_percent_of_max: Option<f64>,
    /// How long the max-rate run sends, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) max_seconds: f64,
}

/// A percentage in (0, 100].
fn percent(arg: &str) -> Result<f64, String> {
    match arg.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!("{arg}: give a percentage above 0 and at most 100")),
    }
}

/// The `partitions` workload's own options.
#[derive(Debug, Args)]
pub(crate) struct PartitionsArgs {
    /// Partitions of the baseline topic the fan-in is compared with.
    #[arg(long, default_value_t = 8)]
    pub(crate) baseline_partitions: i32,
    /// Seconds without traffic before the broker's RSS is read, with every partition open.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) idle_seconds: f64,
    /// Each produce step (baseline, one message per partition, fan-in) must end within this
    /// many seconds, delivery of everything sent included (the run fails otherwise).
    #[arg(long, default_value_t = 600.0)]
    pub(crate) phase_seconds_max: f64,
}

/// What the producers send.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProduceArgs {
    /// Producer tasks, one client (connection) each.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Topics to spread the records over (fan-in: e.g. `--topics 10 --partitions 10`).
    #[arg(long, default_value_t = 1)]
    pub(crate) topics: usize,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 8)]
    pub(crate) partitions: i32,
    /// Address every record to the next partition in turn (the worst case for batching)
    /// instead of leaving keyless records to the producer's sticky partitioner, which fills
    /// one partition's batch before moving on (Kafka's default, and what OpenMessaging
    /// Benchmark measures).
    #[arg(long)]
    pub(crate) round_robin: bool,
    #[arg(long, default_value_t = 1000)]
    pub(crate) message_bytes: usize,
    #[arg(long, value_enum, default_value = "1")]
    acks: AcksArg,
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Producer batch size in bytes (also the probes' chunk size).
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) batch_bytes: usize,
    /// Each producer's buffer of records sent but not yet acknowledged (Kafka's
    /// `buffer.memory`) [default: 8 requests: 8 × max(1 MiB, --batch-bytes)].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    buffer_bytes: Option<u64>,
    /// How long a producer batch waits for more records (OpenMessaging Benchmark's Kafka
    /// driver uses 1 ms; a full batch goes at once regardless).
    #[arg(long, default_value_t = 1)]
    linger_ms: u64,
    /// Batches of one partition in flight at once (the client's
    /// `in_flight_per_partition_max`) [default: the client's, 5 when idempotent, else 1].
    /// Above 1 without idempotence a retried batch can land after later ones, as with
    /// Java's `max.in.flight.requests.per.connection` > 1 without idempotence.
    #[arg(long,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    in_flight_per_partition: Option<usize>,
    /// The producer's idempotence (`true` needs `--acks all`) [default: the client's, on
    /// with acks=all].
    #[arg(long)]
    idempotence: Option<bool>,
    /// Messages to send in total [default: 100000 unless --seconds is given].
    #[arg(long, conflicts_with = "seconds")]
    pub(crate) messages: Option<u64>,
    /// Send for this many seconds instead of a message count.
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Target messages per second over all producers [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
    /// Sending stops after this many seconds whatever the bound; a --messages run that
    /// stops early fails.
    #[arg(long, default_value_t = 600.0)]
    seconds_max: f64,
    /// Latencies of messages sent in the first this-many seconds are left out of the
    /// percentiles (they are still sent, counted and checked). OpenMessaging Benchmark
    /// warms up for a minute; the first second of a fresh topic pays for new files,
    /// buffers and page-cache pages on both sides.
    #[arg(long, default_value_t = 0.0)]
    warmup_seconds: f64,
}

impl ProduceArgs {
    pub(crate) fn options(&self, topics: &[String], progress: bool) -> ProduceOptions {
        let bound = match (self.messages, self.seconds) {
            (_, Some(seconds)) => RunBound::Duration(seconds_arg(seconds)),
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
            buffer_bytes: (self.buffer_bytes)
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX)),
            linger_ms: self.linger_ms,
            in_flight_per_partition: self.in_flight_per_partition,
            idempotence: self.idempotence,
            bound,
            rate_per_second: self.rate,
            duration_max: seconds_arg(self.seconds_max),
            progress,
            stamp_send_time: false,
            warmup: seconds_arg(self.warmup_seconds),
            timed_from_us: None,
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    // Parsed through `ArgMatches` so that `omb` can tell flags given from defaults.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Produce { target, produce } => runtime(&target, produce.producers)?
            .block_on(run_workload(Workload::Produce, &target, &produce)),
        Command::Consume {
            target,
            produce,
            consume,
        } => runtime(&target, produce.producers.max(consume.consumers))?.block_on(run_workload(
            Workload::Consume(&consume),
            &target,
            &produce,
        )),
        Command::E2e {
            target,
            produce,
            consume,
            e2e,
        } => {
            anyhow::ensure!(consume.group.is_none(), "--group is for `consume` only");
            // The consumers run on a runtime of their own (`e2e::consume_on_own_runtime`).
            runtime(&target, produce.producers)?.block_on(run_workload(
                Workload::E2e(&consume, &e2e),
                &target,
                &produce,
            ))
        }
        Command::Partitions {
            target,
            produce,
            partitions,
        } => runtime(&target, produce.producers)?.block_on(run_workload(
            Workload::Partitions(&partitions),
            &target,
            &produce,
        )),
        Command::Omb {
            preset,
            target,
            produce,
            consume,
        } => {
            let given = matches
                .subcommand_matches("omb")
                .map_or(Vec::new(), given_on_command_line);
            let (produce, consume) = apply_preset(preset, &given, &produce, &consume)?;
            let workload = Workload::Omb(preset, &consume);
            runtime(&target, produce.producers)?.block_on(run_workload(workload, &target, &produce))
        }
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
                duration_max: seconds_arg(seconds).max(Duration::from_millis(10)),
            };
            let results = [
                ("loopback_tcp", probe::loopback_tcp(bounds)?),
                ("file_write", probe::file_write(&dir, bounds)?),
                ("file_write_fsync", probe::file_write_fsync(&dir, bounds)?),
                ("memory_copy_16MiB", probe::memory_copy(16 << 20, bounds)),
                ("memory_copy_256MiB", probe::memory_copy(256 << 20, bounds)),
                ("memory_copy_1GiB", probe::memory_copy(1 << 30, bounds)),
            ];
            probe::print_results(&results, chunk_bytes, json)
        }
    }
}

/// The runtime the workload's clients run on, with [`runtime_threads`] workers.
fn runtime(target: &TargetArgs, clients: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads(target.threads, clients, cpus))
        .enable_all()
        .build()
}

/// `--threads` workers, else one per client, at most one per CPU. A producer is a task that
/// builds batches and one that sends them, as the Java client's application and sender
/// threads; on the 2-CPU machine the bench shares with the broker, a second worker for one
/// producer moved its tasks between threads (cross-CPU wake-ups) and took CPU from the
/// broker: one producer, 8 partitions, alternating, 1.07–1.18 GB/s with two workers
/// against 1.16–1.25 with one (better in 5 of 6 pairs), CPU per GB of the bench 0.63–0.72
/// against 0.58–0.69 and of the broker 0.70–0.77 against 0.66–0.70.
fn runtime_threads(flag: Option<u16>, clients: usize, cpus: usize) -> usize {
    flag.map_or(clients.clamp(1, cpus.max(1)), usize::from)
}

/// A seconds flag as a `Duration`: negative or NaN → 0, above a day (or infinite) → a
/// day, so that no flag can panic `Duration` or overflow a deadline.
pub(crate) fn seconds_arg(seconds: f64) -> Duration {
    const DAY_SECONDS: f64 = 86_400.0;
    match seconds.is_nan() {
        true => Duration::ZERO,
        false => Duration::from_secs_f64(seconds.clamp(0.0, DAY_SECONDS)),
    }
}

/// The ids of the arguments given on the command line (not defaults).
fn given_on_command_line(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// The produce and consume options of an `omb` preset. The preset fixes the shape (topics,
/// partitions, message size: giving them is an error) and sets one producer and one
/// consumer per topic and a 10 s run unless those flags were `given`.
fn apply_preset(
    preset: OmbPreset,
    given: &[String],
    produce: &ProduceArgs,
    consume: &ConsumeArgs,
) -> anyhow::Result<(ProduceArgs, ConsumeArgs)> {
    let is_given = |id: &str| given.iter().any(|g| g == id);
    for fixed in ["topics", "partitions", "message_bytes"] {
        anyhow::ensure!(
            !is_given(fixed),
            "omb {} fixes --{}; use `e2e` for other shapes",
            preset.name(),
            fixed.replace('_', "-")
        );
    }
    anyhow::ensure!(consume.group.is_none(), "--group is for `consume` only");
    let shape = preset.shape();
    let mut produce = produce.clone();
    let mut consume = consume.clone();
    produce.topics = shape.topics;
    produce.partitions = shape.partitions;
    produce.message_bytes = shape.message_bytes;
    if !is_given("producers") {
        produce.producers = shape.clients;
    }
    if !is_given("consumers") {
        consume.consumers = shape.clients;
    }
    if produce.messages.is_none() && produce.seconds.is_none() {
        produce.seconds = Some(OMB_SECONDS_DEFAULT);
    }
    Ok((produce, consume))
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
