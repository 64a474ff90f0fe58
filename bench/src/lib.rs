//! `runnel-bench`: throughput and latency of a Kafka-compatible broker, and the machine's own
//! limits measured in the same run so that results read as ratios.
//!
//! Layout:
//! - [`probe`]: limit probes — loopback TCP, sequential file write, write + fsync.
//!
//! The produce / consume / end-to-end workloads run on `runnel-client` (issue 8).

pub mod probe;
