//! Kafka API handlers: one file per API, and the dispatcher — the only `match` on API key.
//!
//! CONTRACT: every handler file exposes
//! `pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: XRequest) -> XResponse`
//! (synchronous apply), except those that must wait (produce with acks=all, fetch long-poll),
//! which return a [`Completion`]. Handlers never panic on client input; storage errors become
//! error codes through [`errors`] only.

pub mod errors;

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod alter_configs;
pub mod incremental_alter_configs;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::ResponseKind;

use crate::log::LogManager;

/// What every handler may read: the storage engine and this broker's identity.
pub struct BrokerContext {
    pub logs: Arc<LogManager>,
    pub node_id: i32,
    /// Host and port clients are told to connect to (Metadata, DescribeCluster).
    pub advertised_host: String,
    pub advertised_port: i32,
    pub cluster_id: String,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `num.partitions` for auto-created topics
    pub default_partitions: i32,
}

/// A handler's answer: ready now, or after waiting (fsync, long-poll).
pub enum Completion {
    Ready(ResponseKind),
    Pending(BoxFuture<'static, ResponseKind>),
}
