//! Kafka API handlers: one file per API, and the dispatcher — the only `match` on API key.
//!
//! CONTRACT: every handler file exposes
//! `pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: XRequest) -> XResponse`
//! (synchronous apply), except those that must wait (produce with acks=all, fetch long-poll),
//! which return a [`Completion`]. Handlers never panic on client input; storage errors become
//! error codes through [`errors`] only. JoinGroup alone also takes the connection's client
//! host (the member's host that DescribeGroups reports).
//!
//! [`dispatch`] runs a handler's synchronous apply step on the connection's task (so one
//! connection's requests are applied in arrival order) and hands back the [`Completion`]
//! the connection awaits, concurrently with later requests, before answering in order.

pub mod errors;
pub mod leader_epoch;

pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
mod broker_configs;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod fetch;
mod fetch_session;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod replicas;

// Consumer groups (coordinator in `crate::groups`).
pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod sync_group;

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::groups::GroupCoordinator;
use crate::log::LogManager;
use crate::net::file_sends::FileSends;
use crate::producers::ProducerRegistry;

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
    /// Topic configs whose broker-wide default the operator set (flag, environment or
    /// properties file), and the broker-only settings set (`node.id`, `num.partitions`,
    /// `auto.create.topics.enable`): DescribeConfigs reports them as STATIC_BROKER_CONFIG.
    pub static_config_keys: std::collections::BTreeSet<String>,
    /// [`crate::config::BrokerConfig::static_unit_configs`]: the unit-suffixed time settings
    /// the operator gave, each under its Kafka name.
    pub static_unit_configs: std::collections::BTreeMap<&'static str, String>,
    /// Producer ids and per-partition sequence state (idempotent producer).
    pub producers: Arc<ProducerRegistry>,
    /// The consumer group coordinator (groups, committed offsets).
    pub groups: Arc<GroupCoordinator>,
    /// This broker's metrics (its own recorder; see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
    /// Bytes handlers may decompress at once, across all connections (`decompression_bytes_max`).
    pub decompression_budget: crate::budget::DecompressionBudget,
    /// Threads a large produce request's partitions are appended on, side by side.
    pub append_pool: crate::append_pool::AppendPool,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: Arc<crate::fetch_sessions::FetchSessions>,
}

/// A handler's answer: ready now, after waiting (fsync, long-poll), or never.
// `Ready` is large, but each Completion is moved once per request; boxing would add an
// allocation to every answer.
#[allow(clippy::large_enum_variant)]
pub enum Completion {
    Ready(Answer),
    Pending(BoxFuture<'static, Answer>),
    /// The request is applied and the client expects no answer (produce with acks=0).
    NoResponse,
    /// The client expects no answer but must learn of a failure: close the connection
    /// (Kafka's answer to a failed acks=0 produce, so the client refreshes metadata).
    CloseConnection,
}

impl Completion {
    /// An answer now, with nothing sent from files.
    pub fn ready(body: ResponseKind) -> Completion {
        Completion::Ready(body.into())
    }

    /// An answer when `body` resolves, with nothing sent from files.
    pub fn pending(body: impl Future<Output = ResponseKind> + Send + 'static) -> Completion {
        Completion::Pending(body.map(Answer::from).boxed())
    }
}

/// A response body and the records in it that go out from segment files, not from memory
/// (a Fetch's large batches: [`crate::net::file_sends`]; empty for every other API).
pub struct Answer {
    pub body: ResponseKind,
    pub sends: FileSends,
}

impl From<ResponseKind> for Answer {
    fn from(body: ResponseKind) -> Answer {
        Answer {
            body,
            sends: FileSends::default(),
        }
    }
}

/// Why a decoded request has no handler.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The decoder only lets through what the versions table lists, so this is a broker bug
    /// (a table entry without a handler); the connection is closed.
    #[error("no handler for API key {0}")]
    Unsupported(i16),
}

/// Applies one request and returns how it completes. The only `match` on the request kind.
pub fn dispatch(
    ctx: &BrokerContext,
    header: &RequestHeader,
    client_host: &str,
    request: RequestKind,
) -> Result<Completion, DispatchError> {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    let ready = Completion::ready;
    let completion = match request {
        Rq::ApiVersions(r) => ready(Rs::ApiVersions(api_versions::handle(ctx, header, r))),
        Rq::Metadata(r) => ready(Rs::Metadata(metadata::handle(ctx, header, r))),
        Rq::Produce(r) => produce::handle(ctx, header, r),
        Rq::Fetch(r) => fetch::handle(ctx, header, r),
        Rq::ListOffsets(r) => ready(Rs::ListOffsets(list_offsets::handle(ctx, header, r))),
        Rq::CreateTopics(r) => ready(Rs::CreateTopics(create_topics::handle(ctx, header, r))),
        Rq::DeleteTopics(r) => delete_topics::handle(ctx, header, r),
        Rq::CreatePartitions(r) => ready(Rs::CreatePartitions(create_partitions::handle(
            ctx, header, r,
        ))),
        Rq::InitProducerId(r) => {
            ready(Rs::InitProducerId(init_producer_id::handle(ctx, header, r)))
        }
        Rq::DescribeConfigs(r) => ready(Rs::DescribeConfigs(describe_configs::handle(
            ctx, header, r,
        ))),
        Rq::AlterConfigs(r) => ready(Rs::AlterConfigs(alter_configs::handle(ctx, header, r))),
        Rq::IncrementalAlterConfigs(r) => ready(Rs::IncrementalAlterConfigs(
            incremental_alter_configs::handle(ctx, header, r),
        )),
        Rq::DeleteRecords(r) => ready(Rs::DeleteRecords(delete_records::handle(ctx, header, r))),
        Rq::DescribeCluster(r) => ready(Rs::DescribeCluster(describe_cluster::handle(
            ctx, header, r,
        ))),
        Rq::DescribeLogDirs(r) => ready(Rs::DescribeLogDirs(describe_log_dirs::handle(
            ctx, header, r,
        ))),
        Rq::OffsetForLeaderEpoch(r) => ready(Rs::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(ctx, header, r),
        )),
        Rq::DescribeAcls(r) => ready(Rs::DescribeAcls(describe_acls::handle(ctx, header, r))),
        Rq::CreateAcls(r) => ready(Rs::CreateAcls(create_acls::handle(ctx, header, r))),
        Rq::DeleteAcls(r) => ready(Rs::DeleteAcls(delete_acls::handle(ctx, header, r))),
        Rq::ElectLeaders(r) => ready(Rs::ElectLeaders(elect_leaders::handle(ctx, header, r))),
        Rq::ListPartitionReassignments(r) => ready(Rs::ListPartitionReassignments(
            list_partition_reassignments::handle(ctx, header, r),
        )),
        Rq::AlterPartitionReassignments(r) => ready(Rs::AlterPartitionReassignments(
            alter_partition_reassignments::handle(ctx, header, r),
        )),
        Rq::AlterReplicaLogDirs(r) => ready(Rs::AlterReplicaLogDirs(
            alter_replica_log_dirs::handle(ctx, header, r),
        )),
        Rq::DescribeClientQuotas(r) => ready(Rs::DescribeClientQuotas(
            describe_client_quotas::handle(ctx, header, r),
        )),
        Rq::AlterClientQuotas(r) => ready(Rs::AlterClientQuotas(alter_client_quotas::handle(
            ctx, header, r,
        ))),
        Rq::DescribeProducers(r) => ready(Rs::DescribeProducers(describe_producers::handle(
            ctx, header, r,
        ))),
        Rq::DescribeUserScramCredentials(r) => ready(Rs::DescribeUserScramCredentials(
            describe_user_scram_credentials::handle(ctx, header, r),
        )),
        Rq::AlterUserScramCredentials(r) => ready(Rs::AlterUserScramCredentials(
            alter_user_scram_credentials::handle(ctx, header, r),
        )),
        Rq::DescribeTransactions(r) => ready(Rs::DescribeTransactions(
            describe_transactions::handle(ctx, header, r),
        )),
        Rq::DescribeTopicPartitions(r) => ready(Rs::DescribeTopicPartitions(
            describe_topic_partitions::handle(ctx, header, r),
        )),
        Rq::ListTransactions(r) => ready(Rs::ListTransactions(list_transactions::handle(
            ctx, header, r,
        ))),
        Rq::FindCoordinator(r) => ready(Rs::FindCoordinator(find_coordinator::handle(
            ctx, header, r,
        ))),
        Rq::JoinGroup(r) => join_group::handle(ctx, header, client_host, r),
        Rq::SyncGroup(r) => sync_group::handle(ctx, header, r),
        Rq::Heartbeat(r) => ready(Rs::Heartbeat(heartbeat::handle(ctx, header, r))),
        Rq::LeaveGroup(r) => ready(Rs::LeaveGroup(leave_group::handle(ctx, header, r))),
        Rq::OffsetCommit(r) => offset_commit::handle(ctx, header, r),
        Rq::OffsetFetch(r) => ready(Rs::OffsetFetch(offset_fetch::handle(ctx, header, r))),
        Rq::DescribeGroups(r) => ready(Rs::DescribeGroups(describe_groups::handle(ctx, header, r))),
        Rq::ListGroups(r) => ready(Rs::ListGroups(list_groups::handle(ctx, header, r))),
        Rq::DeleteGroups(r) => delete_groups::handle(ctx, header, r),
        Rq::OffsetDelete(r) => offset_delete::handle(ctx, header, r),
        _ => return Err(DispatchError::Unsupported(header.request_api_key)),
    };
    Ok(completion)
}
