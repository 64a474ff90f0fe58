//! `runnel-bench`: throughput and latency of a Kafka-compatible broker, and the machine's own
//! limits measured in the same run so that results read as ratios.
//!
//! Layout:
//! - [`cli`]: the command line (`produce`, `consume`, `e2e`, `partitions`, `omb`, `probe`).
//! - [`run`]: the run of a workload: broker, topics, workload, probes, report, checks.
//! - [`broker`]: `--bootstrap` or a spawned `runnel-broker` child (`--spawn-broker`); its RSS.
//! - [`cpu`]: CPU-seconds per gigabyte of each phase, of this process and of the broker.
//! - [`topics`]: topic creation in bounded requests; which partitions hold records.
//! - [`produce`]: N producers × P partitions, bounded by messages or seconds; publish latency.
//! - [`consume`]: catch-up read of a topic by N assigned consumers, counting every record.
//! - [`group`]: `consume --group`: the N consumers join one group; distinct offsets,
//!   duplicates after rebalances, time to the first record (the join).
//! - [`e2e`]: producers at a fixed rate and consumers together; end-to-end latency.
//! - [`partitions`]: fan-in over many topics × partitions as a ratio to an 8-partition
//!   baseline of the same run; idle broker RSS with every partition open.
//! - [`omb`]: OpenMessaging Benchmark's standard shapes as presets of `e2e`.
//! - [`histogram`]: the log-linear latency histogram and its percentiles.
//! - [`progress`]: the once-a-second progress line on stderr.
//! - [`report`]: the final table / JSON, the probes of the run and the ratios to them.
//! - [`probe`]: limit probes — loopback TCP, sequential file write, write + fsync.

pub mod broker;
pub mod cli;
pub mod consume;
pub mod cpu;
pub mod e2e;
pub mod group;
pub mod histogram;
pub mod omb;
pub mod partitions;
pub mod probe;
pub mod produce;
pub mod progress;
pub mod report;
pub mod run;
pub mod topics;
