//! `runnel-broker`: a Kafka-wire-compatible, log-based partitioned message broker.
//!
//! Layout (the data path is net → api → log, four hops each way):
//! - [`config`]: command-line flags / `RUNNEL_*` environment, defaults.
//! - [`net`]: the Kafka TCP server: connections, framing, pipelining, shutdown.
//! - [`api`]: one file per Kafka API and the dispatcher.
//! - [`groups`]: the consumer group coordinator and committed offsets (`__consumer_offsets`).
//! - [`log`]: the storage engine (partition logs, segments, indexes, recovery, retention).
//! - [`producers`]: idempotent producers: producer ids and per-partition sequence state.
//! - [`budget`]: the broker-wide bound on bytes decompressed at once by request handlers.
//! - [`metrics`]: Prometheus metrics (`/metrics`), consumer lag.
//! - [`http`]: the HTTP server: `/metrics`, the JSON admin API, health checks.

pub mod api;
pub mod append_pool;
pub mod budget;
pub mod config;
pub mod fetch_sessions;
pub mod groups;
pub mod http;
pub mod log;
pub mod metrics;
pub mod net;
pub mod producers;
