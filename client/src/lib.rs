//! `runnel-client`: an async (tokio) Kafka client — producer, consumer, admin — for Runnel
//! and any Kafka-compatible broker, plus the `runnel` CLI (`src/main.rs`, `src/cli/`).
//!
//! Layout:
//! - [`error`]: the one [`Error`] enum, with [`Error::is_retriable`].
//! - [`conn`]: one TCP connection, pipelined requests matched by correlation id, bounded.
//! - [`versions`]: the client's API version ranges and negotiation with ApiVersions.
//! - [`cluster`]: bootstrap, metadata cache, one connection per broker.
//! - [`partitioner`]: Kafka's murmur2 default partitioner.
//! - [`producer`]: batching accumulator + sender task.
//! - [`consumer`]: assignment, group membership, assignors, fetch pipeline and sessions.
//! - [`admin`]: topics, configs, groups, offsets and lag.
//! - `retry`: the time-bounded retry loop of group offset calls (consumer and admin).

pub mod admin;
pub mod cluster;
pub mod conn;
pub mod consumer;
pub mod error;
mod frame_buffers;
pub mod offsets;
pub mod partitioner;
pub mod producer;
mod retry;
pub mod versions;

#[cfg(test)]
mod fake_broker;

pub use kafka_protocol as kafka;

pub use admin::Admin;
pub use cluster::{ClientConfig, Cluster, PartitionInfo, TopicInfo};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};
pub use error::{Error, Result};
pub use producer::{
    Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
