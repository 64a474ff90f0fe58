//! `runnel-bench`: throughput and latency of a Kafka-compatible broker, and the machine's own
//! limits measured in the same run so that results read as ratios.
//!
//! Layout:
//! - [`cli`]: the command line (`produce`, `consume`, `e2e`, `probe`) and the run of a workload.
//! - [`broker`]: `--bootstrap` or a spawned `runnel-broker` child (`--spawn-broker`).
//! - [`produce`]: N producers × P partitions, bounded by messages or seconds; publish latency.
//! - [`consume`]: catch-up read of a topic by N assigned consumers, counting every record.
//! - [`e2e`]: producers at a fixed rate and consumers together; end-to-end latency.
//! - [`histogram`]: the log-linear latency histogram and its percentiles.
//! - [`progress`]: the once-a-second progress line on stderr.
//! - [`report`]: the final table / JSON, the probes of the run and the ratios to them.
//! - [`probe`]: limit probes — loopback TCP, sequential file write, write + fsync.

pub mod broker;
pub mod cli;
pub mod consume;
pub mod e2e;
pub mod histogram;
pub mod probe;
pub mod produce;
pub mod progress;
pub mod report;
