//! `runnel-broker`: a Kafka-wire-compatible, log-based partitioned message broker.
//!
//! Layout (the data path is net → api → log, four hops each way):
//! - [`config`]: command-line flags / `RUNNEL_*` environment, defaults.
//! - [`net`]: the Kafka TCP server: connections, framing, pipelining, shutdown.
//! - [`api`]: one file per Kafka API and the dispatcher.
//! - [`groups`]: the consumer group coordinator and committed offsets (`__consumer_offsets`).
//! - [`log`]: the storage engine (partition logs, segments, indexes, recovery, retention).
//! - [`producers`]: idempotent producers: producer ids and per-partition sequence state.

pub mod api;
pub mod config;
pub mod groups;
pub mod log;
pub mod net;
pub mod producers;
